from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import BigInteger, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.core.db import fetch_all_in_request
from app.core.pagination import after
from app.regions.models import OrganizerGrant, Region


async def get(session: AsyncSession, region_id: int) -> Region | None:
    return await session.get(Region, region_id)


async def list_children(
    session: AsyncSession,
    *,
    parent_id: int | None,
    kind: str | None,
    after_id: int | None,
    limit: int,
) -> Sequence[Region]:
    query = select(Region)
    if parent_id is not None:
        query = query.where(Region.parent_id == parent_id)
    elif kind is None:
        query = query.where(Region.parent_id.is_(None))  # the top of the tree
    # ``kind`` alone: every region of that kind (e.g. all communities, for a picker).
    if kind is not None:
        query = query.where(Region.kind == kind)
    if after_id is not None:
        query = query.where(after([Region.id], [after_id]))
    return (await session.scalars(query.order_by(Region.id).limit(limit))).all()


async def name_taken(session: AsyncSession, *, parent_id: int | None, name: str) -> bool:
    query = select(Region.id).where(Region.name == name)
    query = query.where(
        Region.parent_id.is_(None) if parent_id is None else Region.parent_id == parent_id
    )
    return (await session.scalar(query.limit(1))) is not None


async def grants_with_regions(
    session: AsyncSession, user_id: int
) -> Sequence[tuple[OrganizerGrant, Region]]:
    query = (
        select(OrganizerGrant, Region)
        .join(Region, Region.id == OrganizerGrant.region_id)
        .where(OrganizerGrant.user_id == user_id)
        .order_by(OrganizerGrant.id)
    )
    return [(grant, region) for grant, region in (await session.execute(query)).all()]


async def get_grant(
    session: AsyncSession, *, user_id: int, region_id: int
) -> OrganizerGrant | None:
    return await session.scalar(
        select(OrganizerGrant).where(
            OrganizerGrant.user_id == user_id, OrganizerGrant.region_id == region_id
        )
    )


async def list_grants_of_region(
    session: AsyncSession, *, region_id: int, after_id: int | None, limit: int
) -> Sequence[tuple[OrganizerGrant, User]]:
    query = (
        select(OrganizerGrant, User)
        .join(User, User.id == OrganizerGrant.user_id)
        .where(OrganizerGrant.region_id == region_id)
    )
    if after_id is not None:
        query = query.where(after([OrganizerGrant.id], [after_id]))
    rows = await session.execute(query.order_by(OrganizerGrant.id).limit(limit))
    return [(grant, user) for grant, user in rows.all()]


# Asked on nearly every request: one fixed statement, run on the driver under asyncpg.
_ADMIN_FLAG_AND_GRANTS = (
    select(User.is_admin, Region.id, Region.kind)
    .select_from(User)
    .outerjoin(OrganizerGrant, OrganizerGrant.user_id == User.id)
    .outerjoin(Region, Region.id == OrganizerGrant.region_id)
    .where(User.id == bindparam("user_id", type_=BigInteger))
    .order_by(OrganizerGrant.id)
)


async def admin_flag_and_grants(
    session: AsyncSession, user_id: int
) -> tuple[bool, list[tuple[int, str]]] | None:
    """The user's admin flag and granted (region id, kind) pairs in one query; None when
    the user does not exist."""
    rows = await fetch_all_in_request(session, _ADMIN_FLAG_AND_GRANTS, {"user_id": user_id})
    if not rows:
        return None
    grants = [(region_id, kind) for _admin, region_id, kind in rows if region_id is not None]
    return bool(rows[0][0]), grants
