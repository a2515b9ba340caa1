"""Sync queries. ``since`` is a token's base: rows stamped at or after it have changed (or
may have: duplicates are harmless, misses are not). ``None`` means a full snapshot."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, text, union, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from app.claims.models import Claim, ClaimStatus
from app.members.models import Member
from app.notifications.models import Notification
from app.wishes.models import NEVER_PUBLISHED, Wish, WishStatus

LIVE_CLAIM_STATUSES = (ClaimStatus.active.value, ClaimStatus.fulfilled.value)
_PAST_OPEN = (
    WishStatus.open.value,
    WishStatus.claimed.value,
    WishStatus.fulfilled.value,
    WishStatus.confirmed.value,
)

# The read point, in the reading transaction: the first version this snapshot may not
# contain. PostgreSQL: the snapshot's xmin (every transaction with a smaller id had ended when
# the snapshot was taken, so it is visible if it committed). SQLite: one past the counter
# (writers are serialized, so a writer this snapshot cannot see stamps above it).
_READ_POINT = {
    "postgresql": text(
        "SELECT epoch, pg_snapshot_xmin(pg_current_snapshot())::text::bigint "
        "FROM sync_state WHERE id = 1"
    ),
    "sqlite": text("SELECT epoch, counter + 1 FROM sync_state WHERE id = 1"),
}


@dataclass(frozen=True)
class ReadPoint:
    epoch: str
    version: int


async def read_point(session: AsyncSession) -> ReadPoint:
    connection = await session.connection()
    row = (await connection.execute(_READ_POINT[connection.dialect.name])).one()
    return ReadPoint(epoch=row[0], version=int(row[1]))


async def communities_of(session: AsyncSession, user_id: int) -> list[int]:
    """A member's home community and the communities of the wishes for the user (as the
    resident, in any state): where their feed of open wishes comes from."""
    rows = await session.scalars(
        union(
            select(Member.community_id).where(Member.user_id == user_id),
            select(Wish.community_id).where(
                Wish.resident_id == user_id, Wish.community_id.is_not(None)
            ),
        )
    )
    return sorted({community for community in rows if community is not None})


def _ever_published() -> ColumnElement[bool]:
    """Open once: in a state only an open wish reaches, or cancelled or expired after a
    review (a wish cancelled or expired while pending review never was)."""
    return or_(
        Wish.status.in_(_PAST_OPEN),
        and_(Wish.status.not_in(NEVER_PUBLISHED), Wish.reviewed_at.is_not(None)),
    )


def _candidate_ids(user_id: int, communities: Sequence[int], since: int | None) -> Any:
    """Ids of the wishes to look at, as a union of indexed lookups (an OR of them would
    scan every wish). Full snapshot (``since`` None): the sync set, i.e. the user's own
    wishes (resident or creator), those they hold a live claim on, the open ones of their
    communities. Delta: the wishes the client may hold or should now hold (their own, any
    they ever claimed, their communities' wishes that were ever open) that changed since,
    or whose claim by the user did."""
    changed: list[ColumnElement[bool]] = [] if since is None else [Wish.sync_version >= since]
    arms: list[Any] = [
        select(Wish.id).where(Wish.resident_id == user_id, *changed),
        select(Wish.id).where(Wish.creator_id == user_id, *changed),
    ]
    if since is None:
        arms.append(
            select(Claim.wish_id).where(
                Claim.member_id == user_id, Claim.status.in_(LIVE_CLAIM_STATUSES)
            )
        )
    else:
        arms.append(
            select(Claim.wish_id).where(Claim.member_id == user_id, Claim.sync_version >= since)
        )
        arms.append(
            select(Claim.wish_id)
            .join(Wish, Wish.id == Claim.wish_id)
            .where(Claim.member_id == user_id, Wish.sync_version >= since)
        )
    if communities:
        published = Wish.status == WishStatus.open.value if since is None else _ever_published()
        arms.append(select(Wish.id).where(Wish.community_id.in_(communities), published, *changed))
    return union_all(*arms).subquery("candidates")


async def wishes(
    session: AsyncSession,
    *,
    user_id: int,
    communities: Sequence[int],
    since: int | None,
    after_id: int,
    limit: int,
) -> Sequence[Wish]:
    """By id, after ``after_id``: see ``_candidate_ids`` (the caller sorts a delta's wishes
    into updates and tombstones)."""
    candidates = _candidate_ids(user_id, communities, since)
    query = (
        select(Wish)
        .where(Wish.id.in_(select(candidates.c[0])), Wish.id > after_id)
        .order_by(Wish.id)
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(query)).all()


async def live_claimed(session: AsyncSession, user_id: int, wish_ids: Iterable[int]) -> set[int]:
    ids = list(wish_ids)
    if not ids:
        return set()
    rows = await session.scalars(
        select(Claim.wish_id).where(
            Claim.member_id == user_id,
            Claim.wish_id.in_(ids),
            Claim.status.in_(LIVE_CLAIM_STATUSES),
        )
    )
    return set(rows)


async def claims(
    session: AsyncSession, *, user_id: int, since: int | None, after_id: int, limit: int
) -> Sequence[tuple[Claim, Wish]]:
    """The user's claims by id, each with its wish (a claim shows a brief of it, so a change
    of the wish is a change of the claim)."""
    query = (
        select(Claim, Wish)
        .join(Wish, Wish.id == Claim.wish_id)
        .where(Claim.member_id == user_id, Claim.id > after_id)
    )
    if since is not None:
        query = query.where(or_(Claim.sync_version >= since, Wish.sync_version >= since))
    rows = await session.execute(
        query.order_by(Claim.id).limit(limit).execution_options(populate_existing=True)
    )
    return [(claim, wish) for claim, wish in rows.all()]


async def notifications(
    session: AsyncSession, *, user_id: int, since: int | None, after_id: int, limit: int
) -> Sequence[Notification]:
    query = select(Notification).where(Notification.user_id == user_id, Notification.id > after_id)
    if since is not None:
        query = query.where(Notification.sync_version >= since)
    return (
        await session.scalars(
            query.order_by(Notification.id).limit(limit).execution_options(populate_existing=True)
        )
    ).all()
