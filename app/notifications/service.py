"""Notifications: written to the inbox (and, when a push gateway is configured, to the
delivery outbox) in the caller's transaction, never committed here; sent after commit by
``app.notifications.delivery.webhook``. Also the inbox reads and the event-opening reminder.

Data payloads carry ids as strings and titles, never phone numbers or addresses.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.actor import Actor
from app.core.db import Database, utcnow
from app.core.errors import NotFound
from app.core.types import rfc3339
from app.notifications import repository
from app.notifications.models import Notification, NotificationKind

logger = logging.getLogger("microwish.notifications")


def _outbox(session: AsyncSession) -> bool:
    return repository.push_outbox(session)


async def notify(
    session: AsyncSession, *, user_ids: Iterable[int | None], kind: str, data: dict[str, Any]
) -> None:
    """Tell each user (None entries and repeats are skipped) that ``kind`` happened, with
    ``data`` (ids as strings, no personal data beyond what the user may see)."""
    recipients = list(dict.fromkeys(user_id for user_id in user_ids if user_id is not None))
    await notify_each(session, kind=kind, rows=[(user_id, data) for user_id in recipients])


async def notify_each(
    session: AsyncSession, *, kind: str, rows: Sequence[tuple[int, dict[str, Any]]]
) -> None:
    """One notification per (user id, data): when each user is told something different."""
    await repository.add_rows(session, rows, kind=kind, now=utcnow(), outbox=_outbox(session))


async def notify_wish_owner(
    session: AsyncSession, *, wish_id: int, kind: str, data: dict[str, Any]
) -> None:
    """Tell the wish's resident (or, for a wish published for someone without the app, its
    creator); ``wish_id``, ``wish_title`` and ``wish_status`` are added from the wish row by
    the same statement: one INSERT, no read, for the claim path."""
    await repository.add_for_wish_owner(
        session,
        wish_id=wish_id,
        kind=kind,
        data={"wish_id": str(wish_id), **data},
        now=utcnow(),
        outbox=_outbox(session),
    )


async def notify_about_wishes(
    session: AsyncSession, *, kind: str, rows: Sequence[tuple[int, int, dict[str, Any]]]
) -> None:
    """One notification per (user id, wish id, data), each completed with the wish's id and
    title (one read for all of them)."""
    titles = await repository.wish_titles(session, {wish_id for _, wish_id, _ in rows})
    await notify_each(
        session,
        kind=kind,
        rows=[
            (user_id, {"wish_id": str(wish_id), "wish_title": titles.get(wish_id, ""), **data})
            for user_id, wish_id, data in rows
        ],
    )


async def claimers_of(session: AsyncSession, *, wish_id: int, statuses: Sequence[str]) -> list[int]:
    """The members holding a claim of the wish in one of ``statuses`` (whom to tell)."""
    return await repository.claimers_of(session, wish_id=wish_id, statuses=statuses)


# --- the inbox ---------------------------------------------------------------------------


async def my_notifications(
    session: AsyncSession, actor: Actor, *, unread: bool, after_id: int | None, limit: int
) -> Sequence[Notification]:
    return await repository.page(
        session, user_id=actor.user_id, unread=unread, after_id=after_id, limit=limit
    )


async def unread_count(session: AsyncSession, actor: Actor) -> int:
    return await repository.unread_count(session, user_id=actor.user_id)


async def mark_read(session: AsyncSession, actor: Actor, *, notification_id: int) -> Notification:
    """Idempotent: reading a read notification keeps the time it was first read."""
    notification = await repository.mark_read(
        session, user_id=actor.user_id, notification_id=notification_id, now=utcnow()
    )
    if notification is None:
        raise NotFound(resource="notification")
    return notification


async def mark_all_read(session: AsyncSession, actor: Actor, *, up_to_id: int | None) -> int:
    """Mark every unread notification read (or only those up to ``up_to_id``: what the app
    has shown, so one that arrives meanwhile stays unread)."""
    return await repository.mark_all_read(
        session, user_id=actor.user_id, up_to_id=up_to_id, now=utcnow()
    )


# --- the event-opening reminder -----------------------------------------------------------


async def remind_event_openings(database: Database, *, lead: timedelta) -> int:
    """Clock tick: members whose home community is pooled in a scheduled event starting
    within ``lead`` are told, once per event and start time. A cheap read; a write
    transaction only when an event is due. The mark's unique key makes it once across ticks,
    restarts and server processes; moving ``starts_at`` earns a new reminder."""
    now = utcnow()
    async with database.transaction(write=False) as session:
        due = await repository.events_opening_soon(session, now=now, until=now + lead)
    told = 0
    for event_id, starts_at in due:
        async with database.transaction(write=True) as session:
            event = await repository.mark_event_opening(
                session, event_id=event_id, starts_at=starts_at, now=now
            )
            if event is None:
                continue
            told += await repository.add_selected(
                session,
                repository.members_of_event_communities(event_id),
                kind=NotificationKind.event_opening_soon.value,
                data={
                    "event_id": str(event.id),
                    "event_title": event.title,
                    "mode": event.mode,
                    "starts_at": rfc3339(starts_at),
                },
                now=now,
                outbox=_outbox(session),
            )
            logger.info("claim event %s opens at %s: reminded its members", event_id, starts_at)
    return told
