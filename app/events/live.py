"""The live feed of a claim event, as server-sent events, for the board at the ceremony.

One ``_Feed`` per event per server process, shared by all its subscribers, turns the
event's state into messages: it re-reads the event's tallies whenever it is woken and
sends what changed (new claims, wishes filling, tallies, opening and closing). Reading
state rather than relaying messages means a feed never misses or duplicates a change,
whatever order transactions commit in, and a reconnecting board gets a full snapshot.

What wakes it: on PostgreSQL a ``LISTEN`` on the channel every claim and transition
``NOTIFY``s in its transaction (delivered at commit, to every server process); on SQLite,
which has one server process, a short poll. A slower poll backs up the NOTIFY in case the
listening connection drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.db import Database, create_database, utcnow
from app.events import repository, service
from app.events.board import Board, Changed
from app.events.models import ClaimEvent, EventStatus
from app.sync import repository as sync_repository
from app.wishes.privacy import mask_name

logger = logging.getLogger("microwish.events.live")

KEEPALIVE_SECONDS = 15.0
DEBOUNCE_SECONDS = 0.05
READ_INTERVAL_SECONDS = 0.2
RECENT_CLAIMS = 20


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def sse(kind: str, data: dict[str, Any], message_id: int | None = None) -> str:
    lines = [f"event: {kind}"]
    if message_id is not None:
        lines.append(f"id: {message_id}")
    lines.append("data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


@dataclass
class _State:
    """What a feed's subscribers have been told: the next messages are what differs."""

    status: str
    wishes: dict[int, tuple[int, str]]  # wish id -> (slots claimed in event, status shown)
    claim_ids: set[int]
    tally_key: tuple[Any, ...]


def _claim_json(board: Board, claim: Any, name: str) -> dict[str, Any]:
    title, community_id = board.title_of(claim.wish_id)
    return {
        "claim_id": str(claim.id),
        "wish_id": str(claim.wish_id),
        "wish_title": title,
        "community_id": str(community_id) if community_id is not None else None,
        "slots": claim.slots,
        "member": mask_name(name) or "",
        "at": _iso(claim.created_at),
    }


def _event_json(event: ClaimEvent) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "title": event.title,
        "status": event.status,
        "mode": event.mode,
        "starts_at": _iso(event.starts_at),
        "ends_at": _iso(event.ends_at),
    }


def snapshot(event: ClaimEvent, board: Board) -> dict[str, Any]:
    tallies = board.tally_json()
    recent = sorted(board.claims)[-RECENT_CLAIMS:]
    return {
        "event": _event_json(event),
        "communities": tallies["communities"],
        "wishes": [board.wish_json(wish_id) for wish_id in sorted(board.parts)],
        "totals": tallies["totals"],
        "recent_claims": [_claim_json(board, *board.claims[c]) for c in reversed(recent)],
        "server_time": _iso(utcnow()),
    }


def _state(status: str, board: Board) -> _State:
    return _State(
        status=status,
        wishes={wish_id: board.shown(wish_id) for wish_id in board.parts},
        claim_ids=set(board.claims),
        tally_key=board.tally_key(),
    )


@dataclass
class _Mirror:
    """A feed's copy of its event (``Board``). While the event stays live, a read fetches
    only the wishes and claims written since the last one, by their sync versions
    (``app.sync``: a transaction that commits out of order is caught too), and folds them
    in; when the event is not live, or its status changed, everything again. In a rush a
    full read and summary per wake-up cost more server CPU than the claims themselves."""

    epoch: str
    read_point: int
    status: str
    board: Board


@dataclass
class _Feed:
    event_id: int
    subscribers: set[asyncio.Queue[str]] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    state: _State | None = None
    sequence: int = 0
    mirror: _Mirror | None = None


class LiveFeeds:
    """Every live feed of this server process, and the LISTEN connection that wakes them."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        # The feeds read through a small pool of their own: in a rush every request
        # connection is busy, and a feed queued behind them would fall seconds behind.
        self.reader = create_database(
            settings.model_copy(update={"db_pool_size": 2, "db_max_overflow": 1})
        )
        self.settings = settings
        self.feeds: dict[int, _Feed] = {}
        self.is_postgres = not settings.is_sqlite
        self.poll_seconds = 1.0 if self.is_postgres else 0.25
        self._listener: asyncio.Task[None] | None = None
        self._notifier: asyncio.Task[None] | None = None
        self._to_notify: set[int] = set()
        self._notify_wake = asyncio.Event()
        database.commit_hooks.append(self._committed)

    def _committed(self, info: dict[str, Any]) -> None:
        """A transaction that changed events committed: wake this process's feeds now and,
        on PostgreSQL, tell the other processes (coalesced, outside any request)."""
        changed = info.get(service.CHANGED_EVENTS)
        if not changed:
            return
        for event_id in changed:
            self._wake(event_id)
        if self.is_postgres:
            self._to_notify.update(changed)
            self._notify_wake.set()
            if self._notifier is None or self._notifier.done():
                self._notifier = asyncio.create_task(self._notify(), name="events-notify")

    async def _notify(self) -> None:
        """One NOTIFY per changed event per ~50 ms, on a connection of its own. A lost
        NOTIFY only delays the other processes' feeds until their next poll."""
        dsn = self.settings.async_database_url.replace("postgresql+asyncpg://", "postgresql://")
        connection: Any = None
        while True:
            await self._notify_wake.wait()
            await asyncio.sleep(DEBOUNCE_SECONDS)
            self._notify_wake.clear()
            event_ids, self._to_notify = self._to_notify, set()
            try:
                if connection is None or connection.is_closed():
                    connection = await asyncpg.connect(dsn)
                for event_id in sorted(event_ids):
                    await connection.execute(
                        "SELECT pg_notify($1, $2)", service.NOTIFY_CHANNEL, str(event_id)
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("live feed NOTIFY failed", exc_info=True)
                connection = None

    async def close(self) -> None:
        tasks = [f.task for f in self.feeds.values() if f.task] + [
            task for task in (self._listener, self._notifier) if task is not None
        ]
        if self._committed in self.database.commit_hooks:
            self.database.commit_hooks.remove(self._committed)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.feeds.clear()
        await self.reader.dispose()

    def _wake(self, event_id: int) -> None:
        feed = self.feeds.get(event_id)
        if feed is not None:
            feed.wake.set()

    async def _listen(self) -> None:
        """LISTEN on a connection of its own, reconnecting after a failure."""
        dsn = self.settings.async_database_url.replace("postgresql+asyncpg://", "postgresql://")

        def on_notify(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
            if payload.isdigit():
                self._wake(int(payload))

        while True:
            try:
                connection = await asyncpg.connect(dsn)
                try:
                    closed = asyncio.Event()
                    connection.add_termination_listener(
                        lambda _connection, ended=closed: ended.set()
                    )
                    await connection.add_listener(service.NOTIFY_CHANNEL, on_notify)
                    await closed.wait()
                finally:
                    with contextlib.suppress(Exception):
                        await connection.close()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("live feed LISTEN connection failed; retrying", exc_info=True)
            await asyncio.sleep(1)

    async def _snapshot(self, event_id: int) -> tuple[ClaimEvent, Board] | None:
        """The event and its board, read afresh (after catching up the event's clock)."""
        await service.catch_up(self.database, event_id)
        async with self.reader.transaction(write=False) as session:
            event = await repository.get(session, event_id)
            if event is None:
                return None
            return event, await self._board(session, event)

    @staticmethod
    async def _board(session: AsyncSession, event: ClaimEvent) -> Board:
        communities = await repository.communities_of(session, [event.id])
        board = Board(
            names={c.id: c.name for c in communities[event.id]},
            opened=event.opened_at is not None,
            closed_at=event.closed_at,
        )
        board.fold(*await repository.summary_rows(session, event.id))
        return board

    async def _read(self, feed: _Feed) -> tuple[ClaimEvent, Board, Changed | None] | None:
        """The event, its board brought up to date, and what changed in it (None after a
        full read: anything may have). The feed's mirror changes only once the read's
        transaction has ended well: rows folded in by a read that then failed would never
        be announced, as the next read asks only for what was written after it."""
        mirror = feed.mirror
        full: Board | None = None
        rows = None
        async with self.reader.transaction(write=False) as session:
            point = await sync_repository.read_point(session)  # first: see _Mirror
            event = await repository.get(session, feed.event_id)
            if event is not None:
                if (
                    mirror is None
                    or mirror.epoch != point.epoch
                    or mirror.status != event.status
                    or event.status != EventStatus.live.value
                ):
                    full = await self._board(session, event)
                else:
                    rows = await repository.summary_rows(
                        session, event.id, changed_since=mirror.read_point
                    )
        if event is None:
            feed.mirror = None
            return None
        if full is not None:
            feed.mirror = _Mirror(point.epoch, point.version, event.status, full)
            return event, full, None
        assert mirror is not None
        assert rows is not None
        changed = mirror.board.fold(*rows)
        mirror.read_point = point.version
        return event, mirror.board, changed

    def _publish(self, feed: _Feed, kind: str, data: dict[str, Any]) -> None:
        feed.sequence += 1
        message = sse(kind, data, feed.sequence)
        for queue in list(feed.subscribers):
            queue.put_nowait(message)

    async def _run(self, feed: _Feed) -> None:
        loop = asyncio.get_running_loop()
        last_read = 0.0
        while feed.subscribers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(feed.wake.wait(), timeout=self.poll_seconds)
                # One read for a burst of claims, and at most one per READ_INTERVAL: each
                # read costs its round trips, so in a rush fewer, larger reads cost less.
                await asyncio.sleep(
                    max(DEBOUNCE_SECONDS, last_read + READ_INTERVAL_SECONDS - loop.time())
                )
            feed.wake.clear()
            if not feed.subscribers:
                break  # the last one left while it waited: end here, never mid-read
            last_read = loop.time()
            try:
                read = await self._read(feed)
            except Exception:
                logger.warning("live feed of event %s failed to read", feed.event_id, exc_info=True)
                continue
            if read is None:
                continue
            if feed.state is None:
                event, board, _ = read
                feed.state = _state(event.status, board)
            else:
                self._advance(feed, feed.state, *read)

    def _advance(
        self, feed: _Feed, told: _State, event: ClaimEvent, board: Board, changed: Changed | None
    ) -> None:
        """Publish what the subscribers were not told yet, and note it as told: after a
        read of the changes since the last one, only what those touched is compared."""
        if event.status != told.status:
            told.status = event.status
            self._publish(
                feed,
                "status",
                {
                    "status": event.status,
                    "starts_at": _iso(event.starts_at),
                    "ends_at": _iso(event.ends_at),
                },
            )
        claim_ids = sorted(board.claims) if changed is None else changed.claim_ids
        for claim_id in claim_ids:
            if claim_id not in told.claim_ids:
                told.claim_ids.add(claim_id)
                self._publish(feed, "claim", _claim_json(board, *board.claims[claim_id]))
        pool_changed = changed is None and told.wishes.keys() != board.parts.keys()
        if pool_changed:
            told.wishes = {w: shown for w, shown in told.wishes.items() if w in board.parts}
        for wish_id in sorted(board.parts if changed is None else changed.wish_ids):
            shown = board.shown(wish_id)
            if told.wishes.get(wish_id) != shown:
                told.wishes[wish_id] = shown
                self._publish(feed, "wish", board.wish_json(wish_id))
        tally_key = board.tally_key()
        if tally_key != told.tally_key or pool_changed:
            told.tally_key = tally_key
            self._publish(feed, "tally", board.tally_json())

    async def stream(self, event_id: int) -> AsyncIterator[str]:
        """A subscriber's messages: a snapshot, then changes, with keep-alives."""
        if self.is_postgres and self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="events-listen")
        feed = self.feeds.get(event_id)
        if feed is None:
            feed = self.feeds[event_id] = _Feed(event_id)
        queue: asyncio.Queue[str] = asyncio.Queue()
        feed.subscribers.add(queue)
        try:
            fresh = await self._snapshot(event_id)
            if fresh is None:
                return
            event, board = fresh
            if feed.state is None:
                feed.state = _state(event.status, board)
            yield "retry: 2000\n\n" + sse("snapshot", snapshot(event, board))
            if feed.task is None or feed.task.done():
                feed.task = asyncio.create_task(self._run(feed), name=f"feed-{event_id}")
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": ping\n\n"
                    continue
                # Everything already waiting goes out as one chunk: a message per write
                # could not keep up with a rush on a busy server.
                batch = [message]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                yield "".join(batch)
        finally:
            feed.subscribers.discard(queue)
            if not feed.subscribers:
                # Wake the feed to let it end by itself: cancelling it in the middle of a
                # database read threw its pooled connection away (a HEAD, or any last
                # subscriber leaving at the wrong moment).
                feed.wake.set()
                self.feeds.pop(event_id, None)
