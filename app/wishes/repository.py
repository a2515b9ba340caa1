from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    bindparam,
    case,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.claims.models import Claim, ClaimStatus
from app.core.db import fetch_all_in_request
from app.core.pagination import after
from app.regions.access import Scope
from app.regions.models import OrganizerGrant, Region, RegionKind
from app.wishes.models import PUBLIC_STATUSES, ContactAccess, Wish, WishStatus


async def get(session: AsyncSession, wish_id: int) -> Wish | None:
    return await session.get(Wish, wish_id, populate_existing=True)


def in_subtree(kind: str, region_id: int | ColumnElement[int]) -> ColumnElement[bool]:
    """Wishes in the subtree of a region of ``kind``."""
    column: Any = getattr(Wish, f"{kind}_id")
    return column == region_id  # type: ignore[no-any-return]


_LIVE_CLAIM = (ClaimStatus.active.value, ClaimStatus.fulfilled.value)


@dataclass(frozen=True)
class _PageShape:
    """What a listing statement looks like apart from its parameter values: few shapes
    exist, so each is built and compiled once."""

    is_admin: bool
    is_organizer: bool
    statuses: int  # how many statuses the filter names (0: no filter)
    category: bool
    region_kind: str | None
    mine: bool
    after: bool


def _either(column: Any, values: Iterable[str]) -> ColumnElement[bool]:
    """``column IN (values)`` as plain equalities: a fixed statement (no expanding IN)."""
    return or_(*[column == value for value in values])


@functools.cache  # at most 2·2·9·2·5·2·2 shapes, and few of them in use
def _page_statement(shape: _PageShape) -> Select[Any]:
    """Wishes the user may see, newest first, each with its community's name and whether
    the user holds an active claim on it: the whole page in one statement.

    Visible: open/claimed wishes, the user's own, those they hold a live claim on, and (for
    an organizer) every wish under a granted region; an admin sees all. The grants are a
    subquery rather than one condition per grant, so the statement does not depend on how
    many a user holds (a region id is unique across levels, so matching any level column is
    matching the grant's level)."""
    user = bindparam("user_id", type_=BigInteger)
    community = aliased(Region)
    active_claim = (
        select(Claim.id)
        .where(
            Claim.wish_id == Wish.id,
            Claim.member_id == user,
            Claim.status == ClaimStatus.active.value,
        )
        .exists()
    )
    query = (
        select(
            *Wish.__table__.columns,
            community.name.label("community_name"),
            active_claim.label("active_claim"),
        )
        .select_from(Wish)
        .outerjoin(community, community.id == Wish.community_id)
    )
    if not shape.is_admin:
        visible = [
            _either(Wish.status, PUBLIC_STATUSES),
            Wish.resident_id == user,
            Wish.creator_id == user,
            Wish.id.in_(
                select(Claim.wish_id).where(
                    Claim.member_id == user, _either(Claim.status, _LIVE_CLAIM)
                )
            ),
        ]
        if shape.is_organizer:
            granted = select(OrganizerGrant.region_id).where(OrganizerGrant.user_id == user)
            visible += [getattr(Wish, f"{kind}_id").in_(granted) for kind in RegionKind.__members__]
        query = query.where(or_(*visible))
    if shape.statuses:
        query = query.where(
            or_(*[Wish.status == bindparam(f"wanted_status_{i}") for i in range(shape.statuses)])
        )
    if shape.category:
        query = query.where(Wish.category == bindparam("category"))
    if shape.region_kind is not None:
        query = query.where(in_subtree(shape.region_kind, bindparam("region_id", type_=BigInteger)))
    if shape.mine:
        query = query.where(or_(Wish.resident_id == user, Wish.creator_id == user))
    if shape.after:
        query = query.where(
            after([Wish.id], [bindparam("after_id", type_=BigInteger)], descending=True)
        )
    return query.order_by(Wish.id.desc()).limit(bindparam("limit", type_=Integer))


async def list_visible(
    session: AsyncSession,
    *,
    scope: Scope,
    statuses: list[str] | None,
    category: str | None,
    region: Region | None,
    mine: bool,
    after_id: int | None,
    limit: int,
) -> list[Any]:
    """A page of the wishes ``scope`` may see, as rows: a wish's columns as attributes
    (read like a ``Wish``; they are not ORM objects), plus ``community_name`` and
    ``active_claim`` (whether the user holds an active claim on it)."""
    statuses = sorted(set(statuses or ()))
    shape = _PageShape(
        is_admin=scope.is_admin,
        is_organizer=scope.is_organizer,
        statuses=len(statuses),
        category=category is not None,
        region_kind=region.kind if region is not None else None,
        mine=mine,
        after=after_id is not None,
    )
    params: dict[str, Any] = {
        "user_id": scope.user_id,
        "category": category,
        "region_id": region.id if region is not None else None,
        "after_id": after_id,
        "limit": limit,
    }
    params.update({f"wanted_status_{i}": status for i, status in enumerate(statuses)})
    return await fetch_all_in_request(session, _page_statement(shape), params)


async def transition(
    session: AsyncSession,
    wish_id: int,
    *,
    from_statuses: Iterable[str],
    values: dict[str, Any],
    extra_conditions: Iterable[ColumnElement[bool]] = (),
) -> bool:
    """Move a wish to new values only if it is still in one of ``from_statuses``: the
    condition and the change are one statement, so two reviewers cannot both succeed."""
    changed = await session.scalar(
        update(Wish)
        .where(Wish.id == wish_id, Wish.status.in_(list(from_statuses)), *extra_conditions)
        .values(version=Wish.version + 1, **values)
        .returning(Wish.id)
        .execution_options(synchronize_session=False)
    )
    return changed is not None


def _overdue(now: datetime) -> list[Any]:
    """Wishes past their deadline (the last moment to claim them) with nothing left in
    hand: nothing claimed, or every claimed slot fulfilled (a shared wish that got part of
    its helpers). One with active claims waits for them (they keep their own deadlines)."""
    return [
        Wish.status.in_([WishStatus.open.value, WishStatus.pending_review.value]),
        Wish.deadline.is_not(None),
        Wish.deadline <= now,
        or_(Wish.slots_claimed == 0, Wish.slots_claimed == Wish.slots_fulfilled),
    ]


async def overdue_exists(session: AsyncSession, now: datetime) -> bool:
    """Whether ``expire_overdue`` has anything to do (read from the open wishes' deadline
    index)."""
    return (await session.scalar(select(Wish.id).where(*_overdue(now)).limit(1))) is not None


async def expire_overdue(
    session: AsyncSession, now: datetime, *, wish_ids: Sequence[int] | None = None
) -> list[Any]:
    """Past its deadline a wish with nothing claimed becomes ``expired``; one whose claimed
    slots are all fulfilled becomes ``fulfilled`` as far as it got (its resident confirms
    and thanks the helpers who came). All such wishes, or only these."""
    nothing_claimed = Wish.slots_claimed == 0
    only = [Wish.id.in_(list(wish_ids))] if wish_ids is not None else []
    ended = await session.execute(
        update(Wish)
        .where(*_overdue(now), *only)
        .values(
            status=case(
                (nothing_claimed, WishStatus.expired.value), else_=WishStatus.fulfilled.value
            ),
            closed_at=case((nothing_claimed, now), else_=Wish.closed_at),
            fulfilled_at=case((nothing_claimed, Wish.fulfilled_at), else_=now),
            updated_at=now,
            version=Wish.version + 1,
        )
        .returning(
            Wish.id,
            Wish.status,
            Wish.title,
            Wish.resident_id,
            Wish.creator_id,
            Wish.slots_fulfilled,
            Wish.slots_total,
        )
        .execution_options(synchronize_session=False)
    )
    return list(ended.all())


async def wishes_with_active_claim(
    session: AsyncSession, member_id: int, wish_ids: Iterable[int]
) -> set[int]:
    ids = list(wish_ids)
    if not ids:
        return set()
    rows = await session.scalars(
        select(Claim.wish_id).where(
            Claim.member_id == member_id,
            Claim.wish_id.in_(ids),
            Claim.status == ClaimStatus.active.value,
        )
    )
    return set(rows)


async def region_names(session: AsyncSession, region_ids: Iterable[int]) -> dict[int, str]:
    ids = list(set(region_ids))
    if not ids:
        return {}
    rows = await session.execute(select(Region.id, Region.name).where(Region.id.in_(ids)))
    return {row.id: row.name for row in rows}


async def record_contact_access(
    session: AsyncSession, *, viewer_id: int, reads: list[tuple[int, str]], now: datetime
) -> None:
    if reads:
        await session.execute(
            insert(ContactAccess),
            [
                {"wish_id": wish_id, "viewer_id": viewer_id, "reason": reason, "created_at": now}
                for wish_id, reason in reads
            ],
        )
