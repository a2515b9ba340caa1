from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, insert, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.claims.models import Claim, ClaimStatus
from app.core.pagination import after
from app.regions.access import Scope
from app.regions.models import Region
from app.wishes.models import PUBLIC_STATUSES, ContactAccess, Wish, WishStatus


async def get(session: AsyncSession, wish_id: int) -> Wish | None:
    return await session.get(Wish, wish_id, populate_existing=True)


def in_subtree(kind: str, region_id: int) -> ColumnElement[bool]:
    """Wishes in the subtree of a region of ``kind``."""
    column: Any = getattr(Wish, f"{kind}_id")
    return column == region_id  # type: ignore[no-any-return]


def visible_to(scope: Scope) -> ColumnElement[bool]:
    """What a user may see: open/claimed wishes, their own, those they claimed, and every
    wish in the regions they organize."""
    if scope.is_admin:
        return true()
    return or_(
        Wish.status.in_(PUBLIC_STATUSES),
        Wish.resident_id == scope.user_id,
        Wish.creator_id == scope.user_id,
        Wish.id.in_(select(Claim.wish_id).where(Claim.member_id == scope.user_id)),
        *[in_subtree(grant.kind, grant.region_id) for grant in scope.grants],
    )


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
) -> Sequence[Wish]:
    query = select(Wish).where(visible_to(scope))
    if statuses:
        query = query.where(Wish.status.in_(statuses))
    if category is not None:
        query = query.where(Wish.category == category)
    if region is not None:
        query = query.where(in_subtree(region.kind, region.id))
    if mine:
        query = query.where(
            or_(Wish.resident_id == scope.user_id, Wish.creator_id == scope.user_id)
        )
    if after_id is not None:
        query = query.where(after([Wish.id], [after_id], descending=True))
    return (await session.scalars(query.order_by(Wish.id.desc()).limit(limit))).all()


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


async def expire_overdue(session: AsyncSession, now: datetime) -> int:
    """Wishes whose deadline passed with nothing claimed become ``expired``."""
    expired = await session.scalars(
        update(Wish)
        .where(
            Wish.status.in_([WishStatus.open.value, WishStatus.pending_review.value]),
            Wish.deadline.is_not(None),
            Wish.deadline <= now,
            Wish.slots_claimed == 0,
        )
        .values(
            status=WishStatus.expired.value, closed_at=now, updated_at=now, version=Wish.version + 1
        )
        .returning(Wish.id)
        .execution_options(synchronize_session=False)
    )
    return len(expired.all())


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
