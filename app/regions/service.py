"""Region tree and organizer grants. Writes are admin-only."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.core.actor import Actor
from app.core.errors import Conflict, NotFound, ValidationFailed
from app.regions import repository
from app.regions.access import require_admin
from app.regions.models import PARENT_KIND, OrganizerGrant, Region, RegionKind


def place_in_tree(region: Region, parent: Region | None) -> None:
    """Copy the parent's level ids and record the region's own (needs ``region.id``)."""
    for level in RegionKind:
        setattr(region, f"{level.value}_id", parent.level_id(level.value) if parent else None)
    setattr(region, f"{region.kind}_id", region.id)


async def create_region(
    session: AsyncSession, actor: Actor, *, kind: RegionKind, name: str, parent_id: int | None
) -> Region:
    await require_admin(session, actor)
    expected_parent = PARENT_KIND[kind]
    parent: Region | None = None
    if parent_id is not None:
        parent = await repository.get(session, parent_id)
        if parent is None:
            raise NotFound(resource="region")
    if (parent.kind if parent else None) != (expected_parent.value if expected_parent else None):
        raise ValidationFailed(
            "invalid_region_parent",
            # A district is the root: its message says to leave parent_id out.
            reason=None if expected_parent else "district_takes_no_parent",
            kind=kind.value,
            expected_parent=expected_parent.value if expected_parent else "",
        )
    if await repository.name_taken(session, parent_id=parent_id, name=name):
        raise Conflict("region_name_taken")
    region = Region(kind=kind.value, name=name, parent_id=parent_id)
    session.add(region)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent create of the same name won the race
        raise Conflict("region_name_taken") from exc
    place_in_tree(region, parent)
    await session.flush()
    return region


async def get_region(session: AsyncSession, region_id: int) -> Region:
    region = await repository.get(session, region_id)
    if region is None:
        raise NotFound(resource="region")
    return region


async def list_regions(
    session: AsyncSession,
    *,
    parent_id: int | None,
    kind: RegionKind | None,
    after_id: int | None,
    limit: int,
) -> Sequence[Region]:
    if parent_id is not None:
        await get_region(session, parent_id)
    return await repository.list_children(
        session,
        parent_id=parent_id,
        kind=kind.value if kind else None,
        after_id=after_id,
        limit=limit,
    )


async def grant_organizer(
    session: AsyncSession, actor: Actor, *, region_id: int, user_id: int
) -> tuple[OrganizerGrant, User]:
    await require_admin(session, actor)
    await get_region(session, region_id)
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(resource="user")
    if await repository.get_grant(session, user_id=user_id, region_id=region_id):
        raise Conflict("grant_exists")
    grant = OrganizerGrant(user_id=user_id, region_id=region_id, granted_by=actor.user_id)
    session.add(grant)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("grant_exists") from exc
    return grant, user


async def revoke_organizer(
    session: AsyncSession, actor: Actor, *, region_id: int, user_id: int
) -> None:
    await require_admin(session, actor)
    grant = await repository.get_grant(session, user_id=user_id, region_id=region_id)
    if grant is None:
        raise NotFound(resource="grant")
    await session.delete(grant)
    await session.flush()


async def list_organizers(
    session: AsyncSession, actor: Actor, *, region_id: int, after_id: int | None, limit: int
) -> Sequence[tuple[OrganizerGrant, User]]:
    await require_admin(session, actor)
    await get_region(session, region_id)
    return await repository.list_grants_of_region(
        session, region_id=region_id, after_id=after_id, limit=limit
    )
