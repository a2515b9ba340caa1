"""Notification statements: inbox rows and their outbox rows written together, the inbox
reads, and the outbox's claim/settle steps for the sender.

Writing: on PostgreSQL an inbox INSERT and its outbox INSERT are one statement (a
data-modifying CTE), one round trip; on SQLite, where writers are serialized anyway, two.
The statement that tells a wish's owner (the claim path) is built once, with bind parameters.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Insert,
    Select,
    String,
    Table,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.claims.models import Claim
from app.core.db import UTCDateTime
from app.core.pagination import after
from app.events.models import ClaimEvent, ClaimEventCommunity, EventStatus
from app.members.models import Member, MemberStatus
from app.notifications.models import (
    DELIVERY_ERROR_MAX,
    DeliveryStatus,
    Notification,
    NotificationDelivery,
    NotificationMark,
)
from app.wishes.models import Wish

_notifications = typing.cast(Table, Notification.__table__)
_deliveries = typing.cast(Table, NotificationDelivery.__table__)
_marks = typing.cast(Table, NotificationMark.__table__)
_wishes = typing.cast(Table, Wish.__table__)

# Session.info keys: whether this session's notifications also go to the push outbox (set
# on the app's session factories when a gateway is configured; see delivery.webhook), and
# that this transaction wrote outbox rows (so the sender is woken when it commits).
PUSH_OUTBOX = "microwish_push_outbox"
OUTBOX_WRITTEN = "microwish_outbox_written"

_INSERT_COLUMNS = ["user_id", "kind", "data", "created_at"]


def _json_param(dialect: str, name: str = "data") -> ColumnElement[Any]:
    """A JSON document passed as text (``json.dumps``) and stored as it is."""
    raw = bindparam(name, type_=String())
    return cast(raw, JSON) if dialect == "postgresql" else func.json(raw)


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _with_wish(dialect: str) -> ColumnElement[Any]:
    """``:data`` plus the wish's current title and status, read by the same statement."""
    raw = bindparam("data", type_=String())
    if dialect == "postgresql":
        merged = cast(raw, JSONB).op("||")(
            func.jsonb_build_object(
                literal_column("'wish_title'"),
                _wishes.c.title,
                literal_column("'wish_status'"),
                _wishes.c.status,
            )
        )
        return cast(merged, JSON)
    return func.json_set(raw, "$.wish_title", _wishes.c.title, "$.wish_status", _wishes.c.status)


def _to_wish_owner(dialect: str) -> Insert:
    # The resident; for a wish published for someone without the app, whoever published it.
    recipients = select(
        func.coalesce(_wishes.c.resident_id, _wishes.c.creator_id),
        bindparam("kind", type_=String()),
        _with_wish(dialect),
        bindparam("now", type_=UTCDateTime()),
    ).where(_wishes.c.id == bindparam("wish_id", type_=BigInteger()))
    return insert(_notifications).from_select(_INSERT_COLUMNS, recipients)


def _and_outbox(inserting: Insert, name: str = "created") -> Any:
    """PostgreSQL: the inbox INSERT as a CTE feeding the outbox INSERT, one statement."""
    created = inserting.returning(_notifications.c.id).cte(name)
    return insert(_deliveries).from_select(
        ["notification_id", "status", "attempts", "next_attempt_at", "created_at"],
        select(
            created.c.id,
            literal(DeliveryStatus.pending.value),
            literal(0),
            bindparam("now", type_=UTCDateTime()),
            bindparam("now", type_=UTCDateTime()),
        ),
    )


def inbox_rows_cte(recipients: Select[Any], *, outbox: bool, name: str) -> Any:
    """PostgreSQL, for a statement made of data-modifying CTEs: a CTE inserting one
    notification per row of ``recipients`` (user_id, kind, data as JSON, created_at) and,
    with ``outbox``, their outbox rows (``:now`` is their first attempt). The enclosing
    statement must select from the returned CTE: PostgreSQL runs every data-modifying CTE,
    but SQLAlchemy renders only those a statement refers to. A caller that passes
    ``outbox`` marks the session with ``outbox_written``."""
    inserting = insert(_notifications).from_select(_INSERT_COLUMNS, recipients)
    if outbox:
        return (
            _and_outbox(inserting, name)
            .returning(_deliveries.c.notification_id)
            .cte(f"{name}_outbox")
        )
    return inserting.returning(_notifications.c.id).cte(name)


def push_outbox(session: AsyncSession) -> bool:
    """Whether this session's notifications also go to the push outbox."""
    return bool(session.info.get(PUSH_OUTBOX, False))


def outbox_written(session: AsyncSession) -> None:
    """This transaction wrote outbox rows: wake the sender when it commits."""
    session.info[OUTBOX_WRITTEN] = True


def wish_notice_data(
    wish_id: Any, wish_title: Any, wish_status: Any, **fields: Any
) -> ColumnElement[Any]:
    """PostgreSQL: a notification's data built in SQL from a wish's columns and ``fields``
    (SQL expressions), with the keys ``add_for_wish_owner`` gives it."""
    pairs: list[Any] = [
        literal_column("'wish_id'"),
        cast(wish_id, String()),
        literal_column("'wish_title'"),
        wish_title,
        literal_column("'wish_status'"),
        wish_status,
    ]
    for key, value in fields.items():
        assert key.isidentifier()  # a key from the code, quoted as an SQL literal
        pairs += [literal_column(f"'{key}'"), value]
    return cast(func.jsonb_build_object(*pairs), JSON)


_TO_WISH_OWNER = {
    ("postgresql", False): _to_wish_owner("postgresql"),
    ("postgresql", True): _and_outbox(_to_wish_owner("postgresql")),
    ("sqlite", False): _to_wish_owner("sqlite").returning(_notifications.c.id),
}


async def _execute(
    session: AsyncSession,
    statements: dict[tuple[str, bool], Any],
    params: dict[str, Any],
    *,
    outbox: bool,
    now: datetime,
) -> int:
    connection = await session.connection()
    dialect = connection.dialect.name
    if dialect == "postgresql":
        if outbox:
            session.info[OUTBOX_WRITTEN] = True
        result = await connection.execute(statements[(dialect, outbox)], params)
        return int(result.rowcount)
    ids = list((await connection.execute(statements[(dialect, False)], params)).scalars())
    if outbox and ids:
        await _add_to_outbox(session, ids, now)
    return len(ids)


async def _add_to_outbox(session: AsyncSession, ids: Sequence[int], now: datetime) -> None:
    session.info[OUTBOX_WRITTEN] = True
    connection = await session.connection()
    await connection.execute(
        insert(_deliveries),
        [
            {
                "notification_id": notification_id,
                "status": DeliveryStatus.pending.value,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for notification_id in ids
        ],
    )


async def add_for_wish_owner(
    session: AsyncSession,
    *,
    wish_id: int,
    kind: str,
    data: dict[str, Any],
    now: datetime,
    outbox: bool,
) -> int:
    """One notification to the wish's owner, its data completed with the wish's title and
    status in the same statement (no read first: this sits on the claim path)."""
    return await _execute(
        session,
        _TO_WISH_OWNER,
        {"wish_id": wish_id, "kind": kind, "data": dumps(data), "now": now},
        outbox=outbox,
        now=now,
    )


async def add_rows(
    session: AsyncSession,
    rows: Sequence[tuple[int, dict[str, Any]]],
    *,
    kind: str,
    now: datetime,
    outbox: bool,
) -> int:
    """One notification per (user id, data)."""
    if not rows:
        return 0
    values = [
        {"user_id": user_id, "kind": kind, "data": data, "created_at": now}
        for user_id, data in rows
    ]
    connection = await session.connection()
    inserting = insert(_notifications).values(values)
    if connection.dialect.name == "postgresql" and outbox:
        session.info[OUTBOX_WRITTEN] = True
        result = await connection.execute(_and_outbox(inserting), {"now": now})
        return int(result.rowcount)
    ids = list((await connection.execute(inserting.returning(_notifications.c.id))).scalars())
    if outbox:
        await _add_to_outbox(session, ids, now)
    return len(ids)


async def add_selected(
    session: AsyncSession,
    user_ids: Select[Any],
    *,
    kind: str,
    data: dict[str, Any],
    now: datetime,
    outbox: bool,
) -> int:
    """The same notification to every user id ``user_ids`` selects (one statement however
    many: an event's members)."""
    connection = await session.connection()
    dialect = connection.dialect.name
    recipients = user_ids.subquery("recipients")
    inserting = insert(_notifications).from_select(
        _INSERT_COLUMNS,
        select(
            recipients.c[0],
            bindparam("kind", type_=String()),
            _json_param(dialect),
            bindparam("now", type_=UTCDateTime()),
        ),
    )
    params = {"kind": kind, "data": dumps(data), "now": now}
    if dialect == "postgresql":
        if outbox:
            session.info[OUTBOX_WRITTEN] = True
        statement = _and_outbox(inserting) if outbox else inserting
        return int((await connection.execute(statement, params)).rowcount)
    ids = list(
        (await connection.execute(inserting.returning(_notifications.c.id), params)).scalars()
    )
    if outbox and ids:
        await _add_to_outbox(session, ids, now)
    return len(ids)


async def wish_titles(session: AsyncSession, wish_ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(set(wish_ids))
    if not ids:
        return {}
    rows = await session.execute(select(Wish.id, Wish.title).where(Wish.id.in_(ids)))
    return {row.id: row.title for row in rows}


async def claimers_of(session: AsyncSession, *, wish_id: int, statuses: Sequence[str]) -> list[int]:
    rows = await session.scalars(
        select(Claim.member_id)
        .where(Claim.wish_id == wish_id, Claim.status.in_(list(statuses)))
        .order_by(Claim.member_id)
    )
    return list(dict.fromkeys(rows))


# --- the inbox ---------------------------------------------------------------------------


async def page(
    session: AsyncSession, *, user_id: int, unread: bool, after_id: int | None, limit: int
) -> Sequence[Notification]:
    query = select(Notification).where(Notification.user_id == user_id)
    if unread:
        query = query.where(Notification.read_at.is_(None))
    if after_id is not None:
        query = query.where(after([Notification.id], [after_id], descending=True))
    return (await session.scalars(query.order_by(Notification.id.desc()).limit(limit))).all()


async def unread_count(session: AsyncSession, *, user_id: int) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
    )
    return int(count or 0)


async def mark_read(
    session: AsyncSession, *, user_id: int, notification_id: int, now: datetime
) -> Notification | None:
    """Read now, or keep when it was first read; None if it is not this user's."""
    return await session.scalar(
        update(Notification)
        .where(Notification.id == notification_id, Notification.user_id == user_id)
        .values(read_at=func.coalesce(Notification.read_at, now))
        .returning(Notification)
        .execution_options(populate_existing=True)
    )


async def mark_all_read(
    session: AsyncSession, *, user_id: int, up_to_id: int | None, now: datetime
) -> int:
    conditions = [Notification.user_id == user_id, Notification.read_at.is_(None)]
    if up_to_id is not None:
        conditions.append(Notification.id <= up_to_id)
    result = await session.execute(
        update(Notification)
        .where(*conditions)
        .values(read_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --- once-only notifications ------------------------------------------------------------


def _dialect_insert(dialect: str) -> Any:
    return pg_insert if dialect == "postgresql" else sqlite_insert


async def events_opening_soon(
    session: AsyncSession, *, now: datetime, until: datetime
) -> Sequence[tuple[int, datetime]]:
    """Scheduled events starting in (now, until] not yet announced for that start time."""
    announced = exists().where(
        _marks.c.topic == "event_opening",
        _marks.c.subject_id == ClaimEvent.id,
        _marks.c.occasion == ClaimEvent.starts_at,
    )
    rows = await session.execute(
        select(ClaimEvent.id, ClaimEvent.starts_at).where(
            ClaimEvent.status == EventStatus.scheduled.value,
            ClaimEvent.starts_at > now,
            ClaimEvent.starts_at <= until,
            ~announced,
        )
    )
    return [(event_id, starts_at) for event_id, starts_at in rows.all() if starts_at]


async def mark_event_opening(
    session: AsyncSession, *, event_id: int, starts_at: datetime, now: datetime
) -> ClaimEvent | None:
    """Take the "announced" mark for the event's opening at ``starts_at``, only if it is still
    scheduled then and nobody took it before (the unique key decides between processes).
    Returns the event if this transaction is the one to announce it."""
    connection = await session.connection()
    marking = (
        _dialect_insert(connection.dialect.name)(_marks)
        .from_select(
            ["topic", "subject_id", "occasion", "created_at"],
            select(
                literal("event_opening"),
                ClaimEvent.id,
                ClaimEvent.starts_at,
                bindparam("now", type_=UTCDateTime()),
            ).where(
                ClaimEvent.id == event_id,
                ClaimEvent.status == EventStatus.scheduled.value,
                ClaimEvent.starts_at == bindparam("starts_at", type_=UTCDateTime()),
            ),
        )
        .on_conflict_do_nothing()
        .returning(_marks.c.subject_id)
    )
    taken = (await connection.execute(marking, {"now": now, "starts_at": starts_at})).first()
    if taken is None:
        return None
    return await session.get(ClaimEvent, event_id)


def members_of_event_communities(event_id: int) -> Select[Any]:
    return select(Member.user_id).where(
        Member.status == MemberStatus.active.value,
        Member.community_id.in_(
            select(ClaimEventCommunity.community_id).where(ClaimEventCommunity.event_id == event_id)
        ),
    )


# --- the outbox ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DueDelivery:
    notification_id: int
    attempt: int  # 1 for the first send
    user_id: int
    kind: str
    data: dict[str, Any]
    created_at: datetime


async def claim_due(
    session: AsyncSession, *, now: datetime, lease_until: datetime, limit: int
) -> list[DueDelivery]:
    """Take up to ``limit`` due deliveries: count the attempt and lease them until
    ``lease_until``. On PostgreSQL rows another sender holds are skipped (``SKIP LOCKED``),
    so several server processes share the outbox without sending a row twice."""
    due = (
        select(_deliveries.c.notification_id)
        .where(
            _deliveries.c.status == DeliveryStatus.pending.value,
            _deliveries.c.next_attempt_at <= now,
        )
        .order_by(_deliveries.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = (
        await session.execute(
            update(_deliveries)
            .where(_deliveries.c.notification_id.in_(due.scalar_subquery()))
            .values(
                attempts=_deliveries.c.attempts + 1,
                last_attempt_at=now,
                next_attempt_at=lease_until,
            )
            .returning(_deliveries.c.notification_id, _deliveries.c.attempts)
        )
    ).all()
    if not claimed:
        return []
    attempts = {row[0]: row[1] for row in claimed}
    rows = await session.execute(select(Notification).where(Notification.id.in_(list(attempts))))
    return sorted(
        (
            DueDelivery(
                notification_id=n.id,
                attempt=attempts[n.id],
                user_id=n.user_id,
                kind=n.kind,
                data=n.data,
                created_at=n.created_at,
            )
            for n in rows.scalars()
        ),
        key=lambda d: d.notification_id,
    )


def _still_ours(notification_id: int, attempt: int) -> ColumnElement[bool]:
    # A sender settles only the attempt it started (not one a later claim took over).
    return and_(
        _deliveries.c.notification_id == notification_id,
        _deliveries.c.attempts == attempt,
        _deliveries.c.status == DeliveryStatus.pending.value,
    )


async def settle_delivered(session: AsyncSession, *, notification_id: int, attempt: int) -> None:
    """The gateway took it: the outbox forgets it (the inbox row stays)."""
    await session.execute(delete(_deliveries).where(_still_ours(notification_id, attempt)))


async def settle_failed(
    session: AsyncSession,
    *,
    notification_id: int,
    attempt: int,
    error: str,
    retry_at: datetime | None,
) -> None:
    """Try again at ``retry_at``, or (None) give up: the dead letter."""
    values: dict[str, Any] = {"last_error": error[:DELIVERY_ERROR_MAX]}
    if retry_at is None:
        values["status"] = DeliveryStatus.dead.value
    else:
        values["next_attempt_at"] = retry_at
    await session.execute(
        update(_deliveries).where(_still_ours(notification_id, attempt)).values(**values)
    )


async def has_due(session: AsyncSession, *, now: datetime) -> bool:
    found = await session.scalar(
        select(_deliveries.c.notification_id)
        .where(
            _deliveries.c.status == DeliveryStatus.pending.value,
            _deliveries.c.next_attempt_at <= now,
        )
        .limit(1)
    )
    return found is not None
