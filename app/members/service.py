"""Member profiles: apply, review (approve / suspend), capacity, and the resource roster."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.categories.service import require_known
from app.core.actor import Actor
from app.core.conditional import check_if_match, content_etag
from app.core.db import utcnow
from app.core.errors import Conflict, Forbidden, InvalidState, NotFound, ValidationFailed
from app.members import repository
from app.members.models import Member, MemberResource, MemberStatus
from app.members.schemas import ResourceIn
from app.regions import repository as regions_repository
from app.regions.access import scope_of
from app.regions.models import Region, RegionKind


async def _community(session: AsyncSession, community_id: int) -> Region:
    region = await regions_repository.get(session, community_id)
    if region is None:
        raise NotFound(resource="region")
    if region.kind != RegionKind.community:
        raise ValidationFailed("not_a_community")
    return region


async def apply(
    session: AsyncSession, actor: Actor, *, community_id: int, capacity: int
) -> tuple[Member, str]:
    await _community(session, community_id)
    if await repository.get(session, actor.user_id) is not None:
        raise Conflict("already_member")
    member = Member(
        user_id=actor.user_id,
        community_id=community_id,
        status=MemberStatus.pending.value,
        capacity=capacity,
        active_claims=0,
    )
    session.add(member)
    try:
        await session.flush()
    except IntegrityError as exc:  # applied twice at once
        raise Conflict("already_member") from exc
    await repository.rebuild_areas(session, actor.user_id, {community_id})
    return await get_member(session, actor, user_id=actor.user_id)


async def _load(session: AsyncSession, user_id: int) -> tuple[Member, str]:
    found = await repository.get_with_name(session, user_id)
    if found is None:
        raise NotFound(resource="member")
    return found


async def _require_scope_over_member(session: AsyncSession, actor: Actor, member: Member) -> None:
    community = await regions_repository.get(session, member.community_id)
    scope = await scope_of(session, actor)
    if community is None or not scope.covers(community):
        raise Forbidden(reason="out_of_scope")


async def get_member(session: AsyncSession, actor: Actor, *, user_id: int) -> tuple[Member, str]:
    member, name = await _load(session, user_id)
    if user_id != actor.user_id:
        await _require_scope_over_member(session, actor, member)
    return member, name


async def _review(
    session: AsyncSession,
    actor: Actor,
    *,
    user_id: int,
    from_statuses: tuple[str, ...],
    to_status: MemberStatus,
    action: str,
) -> tuple[Member, str]:
    member, _ = await _load(session, user_id)
    await _require_scope_over_member(session, actor, member)
    now = utcnow()
    changed = await repository.transition(
        session,
        user_id,
        from_statuses=from_statuses,
        values={
            "status": to_status.value,
            "reviewed_by": actor.user_id,
            "reviewed_at": now,
            "updated_at": now,
        },
    )
    current = await _load(session, user_id)
    if not changed:
        raise InvalidState(resource="member", current_state=current[0].status, action=action)
    return current


async def approve(session: AsyncSession, actor: Actor, *, user_id: int) -> tuple[Member, str]:
    """pending → active, and suspended → active (reinstating)."""
    return await _review(
        session,
        actor,
        user_id=user_id,
        from_statuses=(MemberStatus.pending.value, MemberStatus.suspended.value),
        to_status=MemberStatus.active,
        action="approve",
    )


async def suspend(session: AsyncSession, actor: Actor, *, user_id: int) -> tuple[Member, str]:
    """Blocks new claims; claims already held stay and may still be fulfilled."""
    return await _review(
        session,
        actor,
        user_id=user_id,
        from_statuses=(MemberStatus.pending.value, MemberStatus.active.value),
        to_status=MemberStatus.suspended,
        action="suspend",
    )


def member_etag(member: Member) -> str:
    """Members have no version column (the claim statement changes ``active_claims``
    without one): the tag digests the fields a member profile shows."""
    return content_etag(
        "member",
        member.user_id,
        member.status,
        member.capacity,
        member.active_claims,
        member.community_id,
        member.updated_at.isoformat() if member.updated_at else None,
    )


async def set_capacity(
    session: AsyncSession,
    actor: Actor,
    *,
    user_id: int,
    capacity: int,
    if_match: list[str] | None = None,
) -> tuple[Member, str]:
    member, _ = await _load(session, user_id)
    await _require_scope_over_member(session, actor, member)
    if if_match is not None:
        # Lock the row, so the profile compared is the one changed.
        locked = await repository.lock(session, user_id)
        if locked is None:
            raise NotFound(resource="member")
        check_if_match(if_match, member_etag(locked))
    await repository.set_capacity(session, user_id, capacity=capacity, now=utcnow())
    return await _load(session, user_id)


async def list_members(
    session: AsyncSession,
    actor: Actor,
    *,
    status: MemberStatus | None,
    region_id: int | None,
    after_id: int | None,
    limit: int,
) -> Sequence[tuple[Member, str]]:
    scope = await scope_of(session, actor)
    if not scope.is_admin and not scope.is_organizer:
        raise Forbidden()
    region_filter = None
    if region_id is not None:
        region = await regions_repository.get(session, region_id)
        if region is None:
            raise NotFound(resource="region")
        if not scope.covers(region):
            raise Forbidden(reason="out_of_scope")
        region_filter = (region.kind, region.id)
    return await repository.list_in_regions(
        session,
        level_filters=None
        if scope.is_admin
        else [(grant.kind, grant.region_id) for grant in scope.grants],
        region_filter=region_filter,
        status=status.value if status else None,
        after_id=after_id,
        limit=limit,
    )


async def get_roster(
    session: AsyncSession, actor: Actor, *, user_id: int
) -> list[tuple[MemberResource, list[int]]]:
    await get_member(session, actor, user_id=user_id)
    return await repository.roster(session, user_id)


async def replace_roster(
    session: AsyncSession, actor: Actor, *, entries: list[ResourceIn]
) -> list[tuple[MemberResource, list[int]]]:
    member, _ = await _load(session, actor.user_id)
    await repository.lock_member(session, actor.user_id)
    await require_known(session, {entry.category for entry in entries})
    wanted_regions = {rid for entry in entries for rid in entry.service_region_ids}
    missing = wanted_regions - await repository.existing_region_ids(session, wanted_regions)
    if missing:
        raise ValidationFailed("unknown_region", region_ids=", ".join(map(str, sorted(missing))))
    rows: list[tuple[dict[str, Any], list[int]]] = [
        (
            {
                "category": entry.category,
                "title": entry.title,
                "description": entry.description,
                "quantity": entry.quantity,
            },
            sorted(set(entry.service_region_ids)),
        )
        for entry in entries
    ]
    await repository.replace_roster(session, actor.user_id, rows)
    await repository.rebuild_areas(session, actor.user_id, {member.community_id} | wanted_regions)
    return await repository.roster(session, actor.user_id)
