from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, false, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.core.pagination import after
from app.members.models import Member, MemberArea, MemberResource, MemberResourceRegion
from app.regions.models import Region


async def get(session: AsyncSession, user_id: int) -> Member | None:
    return await session.get(Member, user_id)


async def get_with_name(session: AsyncSession, user_id: int) -> tuple[Member, str] | None:
    row = (
        await session.execute(
            select(Member, User.display_name)
            .join(User, User.id == Member.user_id)
            .where(Member.user_id == user_id)
            # Conditional UPDATEs bypass the identity map: read the row as it is now.
            .execution_options(populate_existing=True)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def transition(
    session: AsyncSession,
    user_id: int,
    *,
    from_statuses: Iterable[str],
    values: dict[str, Any],
) -> bool:
    """Change a member only if its status is still one of ``from_statuses``."""
    changed = await session.scalar(
        update(Member)
        .where(Member.user_id == user_id, Member.status.in_(list(from_statuses)))
        .values(**values)
        .returning(Member.user_id)
        .execution_options(synchronize_session=False)
    )
    return changed is not None


async def lock(session: AsyncSession, user_id: int) -> Member | None:
    return await session.scalar(
        select(Member)
        .where(Member.user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def set_capacity(
    session: AsyncSession, user_id: int, *, capacity: int, now: datetime
) -> None:
    """Only the limit changes: claims already held stay, even above a lowered capacity."""
    await session.execute(
        update(Member)
        .where(Member.user_id == user_id)
        .values(capacity=capacity, updated_at=now)
        .execution_options(synchronize_session=False)
    )


async def list_in_regions(
    session: AsyncSession,
    *,
    level_filters: list[tuple[str, int]] | None,
    region_filter: tuple[str, int] | None,
    status: str | None,
    after_id: int | None,
    limit: int,
) -> Sequence[tuple[Member, str]]:
    """Members whose home community lies in the given subtrees (None: everywhere)."""
    query = (
        select(Member, User.display_name)
        .join(User, User.id == Member.user_id)
        .join(Region, Region.id == Member.community_id)
    )
    if level_filters is not None:
        clauses = [getattr(Region, f"{kind}_id") == region_id for kind, region_id in level_filters]
        query = query.where(or_(*clauses) if clauses else false())
    if region_filter is not None:
        kind, region_id = region_filter
        query = query.where(getattr(Region, f"{kind}_id") == region_id)
    if status is not None:
        query = query.where(Member.status == status)
    if after_id is not None:
        query = query.where(after([Member.user_id], [after_id]))
    rows = await session.execute(query.order_by(Member.user_id).limit(limit))
    return [(member, name) for member, name in rows.all()]


async def roster(session: AsyncSession, member_id: int) -> list[tuple[MemberResource, list[int]]]:
    resources = (
        await session.scalars(
            select(MemberResource)
            .where(MemberResource.member_id == member_id)
            .order_by(MemberResource.position)
        )
    ).all()
    regions: dict[int, list[int]] = {resource.id: [] for resource in resources}
    if resources:
        rows = await session.execute(
            select(MemberResourceRegion.resource_id, MemberResourceRegion.region_id)
            .where(MemberResourceRegion.resource_id.in_(list(regions)))
            .order_by(MemberResourceRegion.region_id)
        )
        for resource_id, region_id in rows.all():
            regions[resource_id].append(region_id)
    return [(resource, regions[resource.id]) for resource in resources]


async def lock_member(session: AsyncSession, member_id: int) -> None:
    """Hold the member's row (FOR NO KEY UPDATE, what an UPDATE of it takes), so that two
    replacements of one roster queue instead of interleaving their deletes and inserts.
    SQLite's write transactions are serialized anyway."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            select(Member.user_id)
            .where(Member.user_id == member_id)
            .with_for_update(key_share=True)
        )


async def replace_roster(
    session: AsyncSession, member_id: int, entries: list[tuple[dict[str, Any], list[int]]]
) -> None:
    await session.execute(delete(MemberResource).where(MemberResource.member_id == member_id))
    for position, (values, region_ids) in enumerate(entries):
        resource_id = await session.scalar(
            insert(MemberResource)
            .values(member_id=member_id, position=position, **values)
            .returning(MemberResource.id)
        )
        if region_ids:
            await session.execute(
                insert(MemberResourceRegion),
                [{"resource_id": resource_id, "region_id": rid} for rid in region_ids],
            )


async def rebuild_areas(session: AsyncSession, member_id: int, region_ids: set[int]) -> None:
    await session.execute(delete(MemberArea).where(MemberArea.member_id == member_id))
    if region_ids:
        await session.execute(
            insert(MemberArea),
            [{"member_id": member_id, "region_id": rid} for rid in sorted(region_ids)],
        )


async def service_region_ids(session: AsyncSession, member_id: int) -> set[int]:
    rows = await session.scalars(
        select(MemberResourceRegion.region_id)
        .join(MemberResource, MemberResource.id == MemberResourceRegion.resource_id)
        .where(MemberResource.member_id == member_id)
    )
    return set(rows)


async def existing_region_ids(session: AsyncSession, region_ids: Iterable[int]) -> set[int]:
    wanted = list(set(region_ids))
    if not wanted:
        return set()
    return set(await session.scalars(select(Region.id).where(Region.id.in_(wanted))))


async def area_region_ids(session: AsyncSession, member_id: int) -> set[int]:
    return set(
        await session.scalars(select(MemberArea.region_id).where(MemberArea.member_id == member_id))
    )
