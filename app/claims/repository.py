"""Claim statements. Every counter moves through a conditional UPDATE … RETURNING whose
WHERE clause *is* the invariant, so the database, not Python, decides who wins a race:

* ``wishes.slots_claimed + n <= slots_total`` (invariant 1, backed by a CHECK),
* ``members.active_claims < capacity`` and ``status = 'active'`` (invariants 2 and 4),
* the partial unique index on live (wish, member) claims (invariant 3).

Lock order is always wish → claim → member, in every transaction that touches more than
one of them, so concurrent claims, withdrawals and fulfilments queue instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.claims.models import Claim, ClaimStatus
from app.core.pagination import after
from app.members.models import Member, MemberArea, MemberStatus
from app.wishes.models import Wish, WishStatus


@dataclass(frozen=True)
class WishLevels:
    """The region ids of the wish just claimed, from the district down."""

    ids: tuple[int, ...]


async def take_wish_slots(
    session: AsyncSession, *, wish_id: int, slots: int, now: datetime, claimer_id: int
) -> WishLevels | None:
    """Add ``slots`` to an open wish if they fit; None if they don't (or it isn't open, is
    past its deadline, or is the claimer's own)."""
    row = (
        await session.execute(
            update(Wish)
            .where(
                Wish.id == wish_id,
                Wish.status == WishStatus.open.value,
                Wish.slots_claimed + slots <= Wish.slots_total,
                (Wish.deadline.is_(None)) | (Wish.deadline > now),
                (Wish.resident_id.is_(None)) | (Wish.resident_id != claimer_id),
            )
            .values(
                slots_claimed=Wish.slots_claimed + slots,
                # SET expressions see the old row: this is "full after this claim".
                status=case(
                    (Wish.slots_claimed + slots == Wish.slots_total, WishStatus.claimed.value),
                    else_=Wish.status,
                ),
                version=Wish.version + 1,
                updated_at=now,
            )
            .returning(Wish.district_id, Wish.street_id, Wish.community_id, Wish.grid_id)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if row is None:
        return None
    return WishLevels(ids=tuple(level for level in row if level is not None))


async def take_member_capacity(
    session: AsyncSession, *, member_id: int, area_ids: Sequence[int] | None
) -> bool:
    """Count one more active claim for an active member under capacity (and, for a direct
    claim, whose area includes one of ``area_ids``)."""
    conditions = [
        Member.user_id == member_id,
        Member.status == MemberStatus.active.value,
        Member.active_claims < Member.capacity,
    ]
    if area_ids is not None:
        conditions.append(
            exists().where(MemberArea.member_id == member_id, MemberArea.region_id.in_(area_ids))
        )
    taken = await session.scalar(
        update(Member)
        .where(*conditions)
        .values(active_claims=Member.active_claims + 1)
        .returning(Member.user_id)
        .execution_options(synchronize_session=False)
    )
    return taken is not None


async def insert_claim(session: AsyncSession, values: dict[str, Any]) -> Claim:
    """Raises IntegrityError when a live claim for (wish, member) exists."""
    claim: Claim | None = await session.scalar(insert(Claim).values(**values).returning(Claim))
    assert claim is not None
    return claim


async def lock_wish(session: AsyncSession, wish_id: int) -> Wish | None:
    """Take the wish's row lock first (PostgreSQL; SQLite already holds the write lock)."""
    return await session.scalar(
        select(Wish)
        .where(Wish.id == wish_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def end_active_claim(
    session: AsyncSession, *, claim_id: int, values: dict[str, Any]
) -> Claim | None:
    """Move an active claim to an ended state; None if it is no longer active."""
    return await session.scalar(
        update(Claim)
        .where(Claim.id == claim_id, Claim.status == ClaimStatus.active.value)
        .values(version=Claim.version + 1, **values)
        .returning(Claim)
        .execution_options(populate_existing=True)
    )


async def give_back_slots(
    session: AsyncSession, *, wish_id: int, slots: int, now: datetime
) -> None:
    """A withdrawn, revoked or released claim's slots return; a full wish reopens."""
    await session.execute(
        update(Wish)
        .where(Wish.id == wish_id)
        .values(
            slots_claimed=Wish.slots_claimed - slots,
            status=case(
                (Wish.status == WishStatus.claimed.value, WishStatus.open.value),
                else_=Wish.status,
            ),
            version=Wish.version + 1,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )


async def count_fulfilled_slots(
    session: AsyncSession, *, wish_id: int, slots: int, now: datetime
) -> None:
    """Record fulfilled slots; the wish is ``fulfilled`` once every slot is (which implies all
    slots are taken and no claim is still active)."""
    full = Wish.slots_fulfilled + slots == Wish.slots_total
    await session.execute(
        update(Wish)
        .where(Wish.id == wish_id)
        .values(
            slots_fulfilled=Wish.slots_fulfilled + slots,
            status=case((full, WishStatus.fulfilled.value), else_=Wish.status),
            fulfilled_at=case((full, now), else_=Wish.fulfilled_at),
            version=Wish.version + 1,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )


async def release_member_capacity(session: AsyncSession, member_ids: Sequence[int]) -> None:
    # One statement per member, in id order, so two transactions never lock members in
    # opposite orders.
    for member_id in sorted(member_ids):
        await session.execute(
            update(Member)
            .where(Member.user_id == member_id)
            .values(active_claims=Member.active_claims - 1)
            .execution_options(synchronize_session=False)
        )


async def end_all_active_claims_of_wish(
    session: AsyncSession, *, wish_id: int, values: dict[str, Any]
) -> list[int]:
    """End every active claim of a wish; returns the members whose capacity frees up."""
    rows = await session.scalars(
        update(Claim)
        .where(Claim.wish_id == wish_id, Claim.status == ClaimStatus.active.value)
        .values(version=Claim.version + 1, **values)
        .returning(Claim.member_id)
        .execution_options(synchronize_session=False)
    )
    return list(rows)


async def get(session: AsyncSession, claim_id: int) -> Claim | None:
    return await session.get(Claim, claim_id, populate_existing=True)


async def live_claim_exists(session: AsyncSession, *, wish_id: int, member_id: int) -> bool:
    found = await session.scalar(
        select(Claim.id).where(
            Claim.wish_id == wish_id,
            Claim.member_id == member_id,
            Claim.status.in_([ClaimStatus.active.value, ClaimStatus.fulfilled.value]),
        )
    )
    return found is not None


async def member_has_area(
    session: AsyncSession, *, member_id: int, area_ids: Sequence[int]
) -> bool:
    found = await session.scalar(
        select(MemberArea.id).where(
            MemberArea.member_id == member_id, MemberArea.region_id.in_(list(area_ids))
        )
    )
    return found is not None


async def list_for_member(
    session: AsyncSession,
    *,
    member_id: int,
    statuses: list[str] | None,
    after_id: int | None,
    limit: int,
) -> Sequence[tuple[Claim, Wish]]:
    query = (
        select(Claim, Wish).join(Wish, Wish.id == Claim.wish_id).where(Claim.member_id == member_id)
    )
    if statuses:
        query = query.where(Claim.status.in_(statuses))
    if after_id is not None:
        query = query.where(after([Claim.id], [after_id], descending=True))
    rows = await session.execute(query.order_by(Claim.id.desc()).limit(limit))
    return [(claim, wish) for claim, wish in rows.all()]


async def list_for_wish(
    session: AsyncSession, *, wish_id: int, after_id: int | None, limit: int
) -> Sequence[tuple[Claim, str]]:
    query = (
        select(Claim, User.display_name)
        .join(User, User.id == Claim.member_id)
        .where(Claim.wish_id == wish_id)
    )
    if after_id is not None:
        query = query.where(after([Claim.id], [after_id]))
    rows = await session.execute(query.order_by(Claim.id).limit(limit))
    return [(claim, name) for claim, name in rows.all()]
