"""Claim statements. Every counter moves through a conditional UPDATE … RETURNING whose
WHERE clause *is* the invariant, so the database, not Python, decides who wins a race:

* ``wishes.slots_claimed + n <= slots_total`` (invariant 1, backed by a CHECK),
* ``members.active_claims < capacity`` and ``status = 'active'`` (invariants 2 and 4),
* the partial unique index on live (wish, member) claims (invariant 3).

Lock order is always wish → claim → member, in every transaction that touches more than
one of them, so concurrent claims, withdrawals and fulfilments queue instead of deadlocking.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    Table,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.claims.deadlines import ClaimPeriods
from app.claims.models import Claim, ClaimStatus
from app.core.db import UTCDateTime, fetch_one_in_request, orm_from_row
from app.core.pagination import after
from app.events.models import ClaimEvent, ClaimEventParticipant
from app.members.models import Member, MemberArea, MemberStatus
from app.notifications import repository as notifications_repository
from app.notifications.models import NotificationKind
from app.wishes.models import Wish, WishStatus


@dataclass(frozen=True)
class WishLevels:
    """The wish just claimed: its region ids from the district down, its category and its
    deadline (what the claim's deadline is chosen from)."""

    ids: tuple[int, ...]
    category: str
    deadline: datetime | None


# The hot path's statements are built once, on the tables (Core, not the ORM), with bind
# parameters: building a statement and routing it through the ORM cost more CPU per claim
# than the SQL itself.
_wishes = cast(Table, Wish.__table__)
_members = cast(Table, Member.__table__)
_claims = cast(Table, Claim.__table__)
_areas = cast(Table, MemberArea.__table__)
_events = cast(Table, ClaimEvent.__table__)
_participants = cast(Table, ClaimEventParticipant.__table__)


class EventClaim(enum.StrEnum):
    """Which claims a statement makes: ``direct`` (and match) claims only on wishes in no
    live event; ``rush`` claims only on wishes pooled in that event, while it is live and
    in rush mode, within the member's quota; ``allocation`` claims are made by the closing
    transaction (which holds the event) on wishes still pooled in it, within the quota."""

    direct = "direct"
    rush = "rush"
    allocation = "allocation"


def _wish_conditions(kind: EventClaim, wish_id: Any) -> list[Any]:
    """When a wish may take ``:slots`` more for ``:claimer_id`` this way (see ``EventClaim``)."""
    conditions = [
        _wishes.c.id == wish_id,
        _wishes.c.status == WishStatus.open.value,
        _wishes.c.slots_claimed + bindparam("slots") <= _wishes.c.slots_total,
        (_wishes.c.deadline.is_(None)) | (_wishes.c.deadline > bindparam("now")),
        # Not the claimer's own: neither the resident nor whoever published it for them.
        (_wishes.c.resident_id.is_(None)) | (_wishes.c.resident_id != bindparam("claimer_id")),
        _wishes.c.creator_id != bindparam("claimer_id"),
    ]
    if kind is EventClaim.direct:
        # A wish pooled in a live event is claimable only through that event.
        conditions.append(_wishes.c.event_id.is_(None))
    else:
        conditions.append(_wishes.c.event_id == bindparam("pool_event_id"))
    if kind is EventClaim.rush:
        conditions.append(_takes_rush_claims())
    return conditions


def _takes_rush_claims() -> Any:
    """The event ``:pool_event_id`` is live, in rush mode and not past its end."""
    return exists().where(
        _events.c.id == bindparam("pool_event_id"),
        _events.c.status == "live",
        _events.c.mode == "rush",
        (_events.c.ends_at.is_(None)) | (_events.c.ends_at > bindparam("now")),
    )


def _take_wish_slots(kind: EventClaim, *conditions: Any) -> Any:
    """Add ``:slots`` to the wish: only if it meets the conditions (``_wish_conditions``)."""
    return (
        update(_wishes)
        .where(*(conditions or _wish_conditions(kind, bindparam("wish_id"))))
        .values(
            slots_claimed=_wishes.c.slots_claimed + bindparam("slots"),
            # SET expressions see the old row: this is "full after this claim".
            status=case(
                (
                    _wishes.c.slots_claimed + bindparam("slots") == _wishes.c.slots_total,
                    WishStatus.claimed.value,
                ),
                else_=_wishes.c.status,
            ),
            version=_wishes.c.version + 1,
            updated_at=bindparam("now"),
        )
        .returning(
            _wishes.c.id,
            _wishes.c.district_id,
            _wishes.c.street_id,
            _wishes.c.community_id,
            _wishes.c.grid_id,
            _wishes.c.category,
            _wishes.c.deadline,
            # For the owner's notification (RETURNING gives the status after this claim).
            _wishes.c.title,
            _wishes.c.status,
            _wishes.c.resident_id,
            _wishes.c.creator_id,
        )
    )


_TAKE_WISH_SLOTS = {kind: _take_wish_slots(kind) for kind in EventClaim}

_MEMBER_CONDITIONS = (
    _members.c.user_id == bindparam("member_id"),
    _members.c.status == MemberStatus.active.value,
    _members.c.active_claims < _members.c.capacity,
)
_TAKE_CAPACITY_ANYWHERE = (
    update(_members)
    .where(*_MEMBER_CONDITIONS)
    .values(active_claims=_members.c.active_claims + 1)
    .returning(_members.c.user_id)
)
_TAKE_CAPACITY_IN_AREA = (
    update(_members)
    .where(
        *_MEMBER_CONDITIONS,
        exists().where(
            _areas.c.member_id == bindparam("member_id"),
            _areas.c.region_id.in_(bindparam("area_ids", expanding=True)),
        ),
    )
    .values(active_claims=_members.c.active_claims + 1)
    .returning(_members.c.user_id)
)
_INSERT_CLAIM = insert(_claims).returning(*_claims.c)
_EVENT_QUOTA = (
    select(_events.c.per_member_quota)
    .where(_events.c.id == bindparam("pool_event_id"))
    .scalar_subquery()
)


def _take_quota(dialect_insert: Any, member_ids: Any) -> Any:
    """Count one more live event claim for the member, only while under the event's quota
    (invariant 4): an upsert whose DO UPDATE has the quota as its WHERE, so it returns no
    row when the member is at the quota."""
    statement = dialect_insert(_participants).from_select(
        ["event_id", "member_id", "claims"],
        select(bindparam("pool_event_id", type_=BigInteger()), member_ids, literal(1)),
    )
    return statement.on_conflict_do_update(
        index_elements=[_participants.c.event_id, _participants.c.member_id],
        set_={"claims": _participants.c.claims + 1},
        where=_participants.c.claims < _EVENT_QUOTA,
    ).returning(_participants.c.member_id)


_TAKE_QUOTA_SQLITE = _take_quota(
    sqlite_insert, select(bindparam("member_id", type_=BigInteger())).scalar_subquery()
)


@dataclass(frozen=True)
class WishSeen:
    """The wish as the claim statement's snapshot saw it (PostgreSQL), and whether the
    event took claims then: enough to explain the common refusal, a full wish, without
    reading again; and whether the claimer holds it already. ``status`` None: no such
    wish."""

    status: str | None
    slots_claimed: int
    slots_total: int
    resident_id: int | None
    creator_id: int | None
    event_id: int | None
    event_takes_claims: bool
    held: bool = False  # the claimer holds a live claim on it already

    def full_for(self, claimer_id: int, slots: int, event_id: int | None) -> bool:
        """Whether "wish_full" is the answer the full explanation would give: a published
        wish, not the claimer's own nor held by them already, claimable this way (directly:
        in no event; in an event: pooled in it while it takes claims), too full for
        ``slots``."""
        return (
            self.status in (WishStatus.open.value, WishStatus.claimed.value)
            and not self.held
            and claimer_id not in (self.resident_id, self.creator_id)
            and self.event_id == event_id
            and self.event_takes_claims
            and (
                self.status == WishStatus.claimed.value
                or self.slots_claimed + slots > self.slots_total
            )
        )


@dataclass(frozen=True)
class ClaimAttempt:
    """What one claim attempt did: whether the wish could take the slots, the member the
    capacity and (for an event claim) the member's quota, and the claim row when all did;
    on PostgreSQL also the wish as the attempt saw it. A refused attempt must be rolled back
    by the caller (on SQLite the wish's slots may have been taken within the transaction;
    PostgreSQL's statement writes nothing when it refuses)."""

    wish_taken: bool
    capacity_taken: bool
    claim: Claim | None
    quota_taken: bool = True
    seen: WishSeen | None = None


def claim_deadline(category: Any, categories: tuple[str, ...]) -> Any:
    """The new claim's deadline, from the wish row being claimed: the end of its category's
    period (bind parameters ``deadline_0``… for ``categories``, else ``deadline_default``:
    ``ClaimPeriods.params()``, computed in Python, so no database date arithmetic).
    ``ClaimPeriods.deadline_for`` is the same rule."""
    period_end: Any = bindparam("deadline_default", type_=UTCDateTime())
    if categories:
        period_end = case(
            *(
                (category == literal(slug), bindparam(f"deadline_{index}", type_=UTCDateTime()))
                for index, slug in enumerate(categories)
            ),
            else_=period_end,
        )
    return period_end


def _claim_in_one_statement(
    anywhere: bool,
    kind: EventClaim = EventClaim.direct,
    deadline_categories: tuple[str, ...] = (),
    outbox: bool = False,
) -> Any:
    """PostgreSQL: the steps below as one statement (data-modifying CTEs), one round trip,
    that writes all or nothing, so it may also run as a transaction of its own.

    First it checks, locking each row in the lock order (wish, member, then the quota row):
    the wish's and the member's conditions on their rows, each check only if the one before
    passed (``SELECT … FOR NO KEY UPDATE``, the lock an UPDATE takes, waits for a concurrent
    writer and checks the row as that writer left it; it lets other transactions insert rows
    that refer to them, whose foreign-key checks take KEY SHARE). The quota row is the first
    write: counted up only while under the quota, only when both checks passed. The wish
    and member are then counted up only if everything passed; they are locked by this
    statement, so those writes cannot fail. The claim is inserted with them, and the owner's
    notification (and push outbox row, with ``outbox``) with the claim. Only the claim INSERT
    can still fail (a live claim on the wish by the member: a unique violation), which undoes
    the whole statement."""
    wish_checked = (
        select(
            _wishes.c.id,
            _wishes.c.district_id,
            _wishes.c.street_id,
            _wishes.c.community_id,
            _wishes.c.grid_id,
        )
        .where(*_wish_conditions(kind, bindparam("wish_id")))
        .with_for_update(of=_wishes, key_share=True)
        .cte("wl")
    )
    member_conditions = [*_MEMBER_CONDITIONS, exists(select(wish_checked.c.id))]
    if not anywhere:
        member_conditions.append(
            exists(
                select(_areas.c.id)
                .select_from(_areas.join(wish_checked, true()))
                .where(
                    _areas.c.member_id == bindparam("member_id"),
                    or_(
                        _areas.c.region_id == wish_checked.c.district_id,
                        _areas.c.region_id == wish_checked.c.street_id,
                        _areas.c.region_id == wish_checked.c.community_id,
                        _areas.c.region_id == wish_checked.c.grid_id,
                    ),
                )
            )
        )
    member_checked = (
        select(_members.c.user_id)
        .where(*member_conditions)
        .with_for_update(of=_members, key_share=True)
        .cte("ml")
    )
    passed: Any = member_checked.c.user_id
    quota = None
    if kind is not EventClaim.direct:
        quota = _take_quota(pg_insert, member_checked.c.user_id).cte("q")
        passed = quota.c.member_id
    wish = _take_wish_slots(kind, _wishes.c.id == bindparam("wish_id"), exists(select(passed))).cte(
        "w"
    )
    member = (
        update(_members)
        .where(_members.c.user_id == bindparam("member_id"), exists(select(wish.c.id)))
        .values(active_claims=_members.c.active_claims + 1)
        .returning(_members.c.user_id)
        .cte("m")
    )
    takers = wish.join(member, true())
    claim = (
        insert(_claims)
        .from_select(
            [
                "wish_id",
                "member_id",
                "slots",
                "status",
                "source",
                "event_id",
                "created_at",
                "updated_at",
                "version",
                "deadline",
            ],
            select(
                wish.c.id,
                member.c.user_id,
                bindparam("slots", type_=Integer()),
                literal(ClaimStatus.active.value),
                bindparam("source", type_=String()),
                bindparam("pool_event_id", type_=BigInteger()),
                bindparam("now", type_=UTCDateTime()),
                bindparam("now", type_=UTCDateTime()),
                literal(1),
                claim_deadline(wish.c.category, deadline_categories),
            ).select_from(takers),
        )
        .returning(*_claims.c)
        .cte("c")
    )
    notice = notifications_repository.inbox_rows_cte(
        select(
            func.coalesce(wish.c.resident_id, wish.c.creator_id),
            literal(NotificationKind.wish_claimed.value),
            notifications_repository.wish_notice_data(
                wish.c.id,
                wish.c.title,
                wish.c.status,
                claim_id=sql_cast(claim.c.id, String()),
                slots=claim.c.slots,
                source=claim.c.source,
                event_id=sql_cast(claim.c.event_id, String()),
            ),
            bindparam("now", type_=UTCDateTime()),
        ).select_from(claim.join(wish, true())),
        outbox=outbox,
        name="n",
    )
    anchor_row = select(literal(1).label("one")).subquery("one")
    quota_taken = (
        select(func.count()).select_from(quota).scalar_subquery()
        if quota is not None
        else literal(1)
    )
    # The wish as this statement's snapshot saw it, to explain a refusal (``WishSeen``),
    # and whether the claimer holds it already (a probe of the live-claim unique index).
    seen = _wishes.alias("seen")
    held = _claims.alias("held")
    held_already = exists(
        select(held.c.id).where(
            held.c.wish_id == bindparam("wish_id"),
            held.c.member_id == bindparam("member_id"),
            # Inline constants: the partial unique index's own predicate, so the probe uses it.
            held.c.status.in_([literal_column("'active'"), literal_column("'fulfilled'")]),
        )
    )
    return select(
        select(func.count()).select_from(wish_checked).scalar_subquery().label("wish_taken"),
        select(func.count()).select_from(member_checked).scalar_subquery().label("capacity_taken"),
        quota_taken.label("quota_taken"),
        select(func.count()).select_from(notice).scalar_subquery().label("notified"),
        seen.c.status.label("seen_status"),
        seen.c.slots_claimed.label("seen_slots_claimed"),
        seen.c.slots_total.label("seen_slots_total"),
        seen.c.resident_id.label("seen_resident_id"),
        seen.c.creator_id.label("seen_creator_id"),
        seen.c.event_id.label("seen_event_id"),
        (_takes_rush_claims() if kind is EventClaim.rush else literal(True)).label(
            "seen_event_takes_claims"
        ),
        held_already.label("seen_held"),
        *claim.c,
    ).select_from(
        anchor_row.outerjoin(claim, true()).outerjoin(seen, seen.c.id == bindparam("wish_id"))
    )


async def take_wish_slots(
    session: AsyncSession,
    *,
    wish_id: int,
    slots: int,
    now: datetime,
    claimer_id: int,
    kind: EventClaim = EventClaim.direct,
    event_id: int | None = None,
) -> WishLevels | None:
    """Add ``slots`` to an open wish if they fit; None if they don't (or it isn't open, is
    past its deadline, is the claimer's own, or is not claimable this way: see
    ``EventClaim``)."""
    connection = await session.connection()
    row = (
        await connection.execute(
            _TAKE_WISH_SLOTS[kind],
            {
                "wish_id": wish_id,
                "slots": slots,
                "now": now,
                "claimer_id": claimer_id,
                "pool_event_id": event_id,
            },
        )
    ).first()
    if row is None:
        return None
    levels = (row.district_id, row.street_id, row.community_id, row.grid_id)
    return WishLevels(
        ids=tuple(level for level in levels if level is not None),
        category=row.category,
        deadline=row.deadline,
    )


async def take_member_capacity(
    session: AsyncSession, *, member_id: int, area_ids: Sequence[int] | None
) -> bool:
    """Count one more active claim for an active member under capacity (and, for a direct
    claim, whose area includes one of ``area_ids``)."""
    connection = await session.connection()
    if area_ids is None:
        result = await connection.execute(_TAKE_CAPACITY_ANYWHERE, {"member_id": member_id})
    else:
        result = await connection.execute(
            _TAKE_CAPACITY_IN_AREA, {"member_id": member_id, "area_ids": list(area_ids)}
        )
    return result.first() is not None


async def insert_claim(session: AsyncSession, values: dict[str, Any]) -> Claim:
    """Raises IntegrityError when a live claim for (wish, member) exists. Returns a detached
    ``Claim`` carrying the inserted row, for the response."""
    connection = await session.connection()
    row = (await connection.execute(_INSERT_CLAIM, values)).one()
    return Claim(**row._asdict())


# Built once per (kind, anywhere, per-category deadline periods, push outbox) on first use:
# with per-category periods configured, the deadline CASE names those categories.
_CLAIM_STATEMENTS: dict[tuple[EventClaim, bool, tuple[str, ...], bool], Any] = {}


def _claim_statement(
    kind: EventClaim, anywhere: bool, deadline_categories: tuple[str, ...], outbox: bool
) -> Any:
    key = (kind, anywhere, deadline_categories, outbox)
    statement = _CLAIM_STATEMENTS.get(key)
    if statement is None:
        statement = _claim_in_one_statement(anywhere, kind, deadline_categories, outbox)
        _CLAIM_STATEMENTS[key] = statement
    return statement


_CLAIM_COLUMNS = tuple(column.name for column in _claims.c)


async def attempt_claim(
    session: AsyncSession,
    *,
    wish_id: int,
    member_id: int,
    slots: int,
    source: str,
    now: datetime,
    anywhere: bool,
    periods: ClaimPeriods,
    kind: EventClaim = EventClaim.direct,
    event_id: int | None = None,
    alone: bool = False,
) -> ClaimAttempt:
    """Take slots, capacity, the event quota (event claims), insert the claim with its
    deadline (from ``periods``, by the wish's category and deadline) and tell the wish's
    owner (``wish_claimed``); raises IntegrityError when the member already holds a live
    claim on the wish. One statement on PostgreSQL; on SQLite, where writers are serialized
    anyway, the same steps one after another. Event claims are claims from anywhere.

    ``alone``: the claim is everything the caller's transaction writes. On PostgreSQL the
    statement (which writes all or nothing) then commits by itself when the session allows
    it (``may_commit_alone``); a refused attempt has written nothing either way."""
    if kind is not EventClaim.direct:
        anywhere = True
    outbox = notifications_repository.push_outbox(session)
    if session.get_bind().dialect.name == "postgresql":
        if outbox:
            notifications_repository.outbox_written(session)
        statement = _claim_statement(kind, anywhere, periods.categories, outbox)
        params = {
            "wish_id": wish_id,
            "member_id": member_id,
            "claimer_id": member_id,
            "slots": slots,
            "source": source,
            "now": now,
            "pool_event_id": event_id,
            **periods.params(),  # claim deadlines
        }
        # On the asyncpg connection itself: SQLAlchemy's per-execution work cost about as
        # much server CPU as the statement's round trip.
        row = await fetch_one_in_request(session, statement, params, alone=alone)
        claim = None
        if row.id is not None:
            claim = orm_from_row(Claim, {name: getattr(row, name) for name in _CLAIM_COLUMNS})
        return ClaimAttempt(
            bool(row.wish_taken),
            bool(row.capacity_taken),
            claim,
            bool(row.quota_taken),
            WishSeen(
                status=row.seen_status,
                slots_claimed=row.seen_slots_claimed or 0,
                slots_total=row.seen_slots_total or 0,
                resident_id=row.seen_resident_id,
                creator_id=row.seen_creator_id,
                event_id=row.seen_event_id,
                event_takes_claims=bool(row.seen_event_takes_claims),
                held=bool(row.seen_held),
            ),
        )

    connection = await session.connection()
    levels = await take_wish_slots(
        session,
        wish_id=wish_id,
        slots=slots,
        now=now,
        claimer_id=member_id,
        kind=kind,
        event_id=event_id,
    )
    if levels is None:
        return ClaimAttempt(wish_taken=False, capacity_taken=False, claim=None)
    if not await take_member_capacity(
        session, member_id=member_id, area_ids=None if anywhere else levels.ids
    ):
        return ClaimAttempt(wish_taken=True, capacity_taken=False, claim=None)
    if kind is not EventClaim.direct:
        quota = await connection.execute(
            _TAKE_QUOTA_SQLITE, {"pool_event_id": event_id, "member_id": member_id}
        )
        if quota.first() is None:
            return ClaimAttempt(wish_taken=True, capacity_taken=True, claim=None, quota_taken=False)
    claim = await insert_claim(
        session,
        {
            "wish_id": wish_id,
            "member_id": member_id,
            "slots": slots,
            "status": ClaimStatus.active.value,
            "source": source,
            "event_id": event_id,
            "created_at": now,
            "updated_at": now,
            "version": 1,
            "deadline": periods.deadline_for(levels.category),
        },
    )
    await notifications_repository.add_for_wish_owner(
        session,
        wish_id=wish_id,
        kind=NotificationKind.wish_claimed.value,
        data={
            "wish_id": str(wish_id),
            "claim_id": str(claim.id),
            "slots": claim.slots,
            "source": claim.source,
            "event_id": str(event_id) if event_id is not None else None,
        },
        now=now,
        outbox=outbox,
    )
    return ClaimAttempt(wish_taken=True, capacity_taken=True, claim=claim)


async def return_event_quota(session: AsyncSession, *, event_id: int, member_id: int) -> None:
    """A withdrawn or revoked event claim gives its quota back (locked after the member)."""
    await session.execute(
        update(_participants)
        .where(_participants.c.event_id == event_id, _participants.c.member_id == member_id)
        .values(claims=_participants.c.claims - 1)
    )


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


async def lock_wishes(session: AsyncSession, wish_ids: Iterable[int]) -> dict[int, Wish]:
    """``lock_wish`` for several wishes at once, in id order (PostgreSQL locks the rows in
    the order the statement returns them), so two such transactions queue, never deadlock."""
    ids = sorted(set(wish_ids))
    if not ids:
        return {}
    wishes = await session.scalars(
        select(Wish)
        .where(Wish.id.in_(ids))
        .order_by(Wish.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {wish.id: wish for wish in wishes}


# --- claim deadlines -----------------------------------------------------------------------


async def overdue_claims(
    session: AsyncSession, *, now: datetime, limit: int
) -> list[tuple[int, int]]:
    """(claim id, wish id) of active claims past their deadline, earliest first (read from
    the partial index on active claims' deadlines; no lock: see ``release_overdue_claims``)."""
    rows = await session.execute(
        select(Claim.id, Claim.wish_id)
        .where(Claim.status == ClaimStatus.active.value, Claim.deadline <= now)
        .order_by(Claim.deadline, Claim.id)
        .limit(limit)
    )
    return [(row.id, row.wish_id) for row in rows]


async def release_overdue_claims(
    session: AsyncSession, *, claim_ids: Sequence[int], now: datetime
) -> list[Claim]:
    """Move those of ``claim_ids`` that are still active and past their deadline to
    ``released``. Each row is conditional, so a claim fulfilled, withdrawn, extended or
    released (by another server's clock) since it was read is left alone: never twice."""
    released = await session.scalars(
        update(Claim)
        .where(
            Claim.id.in_(list(claim_ids)),
            Claim.status == ClaimStatus.active.value,
            Claim.deadline <= now,
        )
        .values(
            status=ClaimStatus.released.value,
            ended_at=now,
            updated_at=now,
            version=Claim.version + 1,
        )
        .returning(Claim)
        .execution_options(populate_existing=True)
    )
    return sorted(released.all(), key=lambda claim: claim.id)


async def mark_reminders_due(
    session: AsyncSession, *, now: datetime, until: datetime, limit: int
) -> list[Claim]:
    """Mark (``reminded_at``) up to ``limit`` active, not yet reminded claims whose deadline
    is in (now, until] and return them: whoever marks a claim sends its reminder, so it is
    sent once however many servers run the clock."""
    due_conditions = (
        Claim.status == ClaimStatus.active.value,
        Claim.reminded_at.is_(None),
        Claim.deadline > now,
        Claim.deadline <= until,
    )
    due = select(Claim.id).where(*due_conditions).order_by(Claim.deadline, Claim.id).limit(limit)
    reminded = await session.scalars(
        update(Claim)
        .where(Claim.id.in_(due.scalar_subquery()), *due_conditions)
        .values(reminded_at=now)
        .returning(Claim)
        .execution_options(populate_existing=True, synchronize_session=False)
    )
    return sorted(reminded.all(), key=lambda claim: claim.id)


async def extend_claim(
    session: AsyncSession,
    *,
    claim_id: int,
    member_id: int,
    current_deadline: datetime,
    new_deadline: datetime,
    now: datetime,
) -> Claim | None:
    """The member's one extension; None unless the claim is still theirs, active, not yet
    extended, not past its deadline and still due at ``current_deadline``. A reminder is due
    again before the new deadline."""
    return await session.scalar(
        update(Claim)
        .where(
            Claim.id == claim_id,
            Claim.member_id == member_id,
            Claim.status == ClaimStatus.active.value,
            Claim.extended_at.is_(None),
            Claim.deadline == current_deadline,
            Claim.deadline > now,
        )
        .values(
            deadline=new_deadline,
            extended_at=now,
            reminded_at=None,
            updated_at=now,
            version=Claim.version + 1,
        )
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
) -> list[tuple[int, int]]:
    """End every active claim of a wish; returns (member, claim) of each, the members
    being those whose capacity frees up. Event claims give their event quota back too
    (after the members: the lock order)."""
    rows = (
        await session.execute(
            update(Claim)
            .where(Claim.wish_id == wish_id, Claim.status == ClaimStatus.active.value)
            .values(version=Claim.version + 1, **values)
            .returning(Claim.member_id, Claim.id, Claim.event_id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    await release_member_capacity(session, [row.member_id for row in rows])
    for member_id, event_id in sorted(
        (row.member_id, row.event_id) for row in rows if row.event_id is not None
    ):
        await return_event_quota(session, event_id=event_id, member_id=member_id)
    return [(row.member_id, row.id) for row in rows]


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
