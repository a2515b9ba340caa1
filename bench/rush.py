"""A cross-community claim event in rush mode against a real server, on SQLite and PostgreSQL.

For each database (SQLite in a temp file, PostgreSQL in a throw-away ``mw_bench_*`` database):
migrate, seed with bulk SQL (active members of capacity 3 whose homes are spread over 8
communities in 2 streets; open wishes of 1-3 slots in 6 of those communities, and wishes the
event must not pool), start uvicorn on ``bench._app:app`` with rate limits off, then:

1. ``noop``: the no-I/O endpoint with the same number of clients, the reference;
2. a district organizer creates a rush event over the 6 communities through the API (per-member
   quota 2), and SSE subscribers connect to its live feed;
3. the organizer opens it (which pools the wishes) and the clients rush: each loops taking a
   member no other client holds and claiming one slot of a random wish not yet known to be
   full, until the pool is sold out or every member is exhausted;
4. feed lag: each ``claim`` message against the 201 that created that claim;
5. the invariants and quotas in SQL; then the organizer closes the event, and every pooled
   wish must be back home.

Only talks to 127.0.0.1.

    .venv/bin/python bench/rush.py [--db sqlite|postgresql|both] [--clients 200] [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory is on sys.path, not the repository's.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import random
import secrets
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from app.accounts.models import User
from app.claims.models import Claim
from app.core import migrate
from app.core.config import normalize_database_url
from app.core.security import issue_access_token
from app.events.models import ClaimEvent
from app.members.models import Member, MemberArea
from app.regions.models import OrganizerGrant
from app.wishes.models import Wish
from bench.claims import (
    JSON_HEADERS,
    QUIET_OTHER_CPU,
    REQUEST_ERRORS,
    REQUEST_TIMEOUT_SECONDS,
    Call,
    Cpu,
    Outcome,
    Phase,
    RawConnection,
    Server,
    _insert_chunked,
    _insert_region,
    _now,
    _postgres_cpu_seconds,
    _system_busy_seconds,
    _wish_row,
    add_server_env_option,
    run_phase,
    summarize_log,
    throwaway_database,
    wait_until_quiet,
)
from tests.invariants import event_violations, violations

# The seeded world: one district, 2 streets of 4 communities (2 grids each). Members live in
# all 8 communities; the event pools the open wishes of 3 communities per street.
NO_WISH_IN_VIEW = "no wish left in view"  # a stop reason
STREETS = 2
COMMUNITIES_PER_STREET = 4
EVENT_COMMUNITIES_PER_STREET = 3
GRIDS_PER_COMMUNITY = 2
RESIDENTS = 50
MEMBER_CAPACITY = 3
QUOTA = 2
MAX_WISH_SLOTS = 3
# Wishes the event must not pool: open ones outside its communities, and in its communities
# ones still pending review or past their deadline.
OUTSIDE_WISHES = 40
PENDING_WISHES = 20
EXPIRED_WISHES = 10

FULL = {"members": 3000, "wishes": 500, "clients": 200, "noop_duration": 10.0, "quiet_wait": 30.0}
QUICK = {"members": 300, "wishes": 60, "clients": 20, "noop_duration": 3.0, "quiet_wait": 5.0}
# Refusals that mean the member can claim nothing more in this event (and every 403).
MEMBER_DONE_CODES = {"quota_reached", "capacity_reached"}
MAX_ERRORS = 1000  # the rush gives up after this many 5xx or transport errors
SUBSCRIBER_TIMEOUT = httpx.Timeout(30.0, read=None)


# --------------------------------------------------------------------------- seeding


@dataclass
class World:
    organizer_headers: dict[str, str]
    community_ids: list[int]  # the event's
    member_headers: dict[int, dict[str, str]]
    wish_slots: dict[int, int]  # the wishes the event should pool, and their slots


async def seed(url: str, secret: str, members: int, wishes: int, rng: random.Random) -> World:
    engine = create_async_engine(normalize_database_url(url))
    try:
        async with engine.begin() as conn:
            return await _seed(conn, secret, members, wishes, rng)
    finally:
        await engine.dispose()


async def _seed(
    conn: AsyncConnection, secret: str, member_count: int, wish_count: int, rng: random.Random
) -> World:
    now = _now()
    district = await _insert_region(conn, "district", "基准区", None)
    event_grids: list[list[Any]] = []  # per event community
    other_grids: list[list[Any]] = []
    communities: list[Any] = []
    for s in range(STREETS):
        street = await _insert_region(conn, "street", f"基准街道{s + 1}", district)
        for c in range(COMMUNITIES_PER_STREET):
            community = await _insert_region(conn, "community", f"基准社区{s + 1}-{c + 1}", street)
            communities.append(community)
            grids = [
                await _insert_region(conn, "grid", f"第{g + 1}网格", community)
                for g in range(GRIDS_PER_COMMUNITY)
            ]
            (event_grids if c < EVENT_COMMUNITIES_PER_STREET else other_grids).append(grids)

    # Users: the organizer, residents (who own the wishes), members.
    phones = [f"+8613{n:09d}" for n in range(1 + RESIDENTS + member_count)]
    await _insert_chunked(
        conn,
        User,
        [
            {"phone": phone, "display_name": f"用户{n}", "is_admin": False, "created_at": now}
            for n, phone in enumerate(phones)
        ],
    )
    user_ids = list((await conn.scalars(select(User.id).order_by(User.id))).all())
    organizer_id = user_ids[0]
    residents = user_ids[1 : 1 + RESIDENTS]
    member_ids = user_ids[1 + RESIDENTS :]
    await conn.execute(
        insert(OrganizerGrant).values(user_id=organizer_id, region_id=district.id, created_at=now)
    )
    homes = {m: communities[n % len(communities)].id for n, m in enumerate(member_ids)}
    await _insert_chunked(
        conn,
        Member,
        [
            {
                "user_id": member_id,
                "community_id": home,
                "status": "active",
                "capacity": MEMBER_CAPACITY,
                "active_claims": 0,
                "created_at": now,
                "updated_at": now,
            }
            for member_id, home in homes.items()
        ],
    )
    await _insert_chunked(
        conn,
        MemberArea,
        [{"member_id": member_id, "region_id": home} for member_id, home in homes.items()],
    )

    def wish(grids: list[list[Any]], n: int, title: str, slots: int) -> dict[str, Any]:
        grid = grids[n % len(grids)][(n // len(grids)) % GRIDS_PER_COMMUNITY]
        # Every row has the same keys: a bulk insert takes its columns from the first row.
        return _wish_row(grid, residents[n % RESIDENTS], title, slots, now) | {"deadline": None}

    pooled = (
        await conn.execute(
            insert(Wish).returning(Wish.id, Wish.slots_total),
            [
                wish(event_grids, n, f"集中认领心愿 {n}", rng.randint(1, MAX_WISH_SLOTS))
                for n in range(wish_count)
            ],
        )
    ).all()
    others = [wish(other_grids, n, f"别处心愿 {n}", 2) for n in range(OUTSIDE_WISHES)]
    others += [
        wish(event_grids, n, f"待审心愿 {n}", 2) | {"status": "pending_review"}
        for n in range(PENDING_WISHES)
    ]
    others += [
        wish(event_grids, n, f"过期心愿 {n}", 2) | {"deadline": now - timedelta(days=1)}
        for n in range(EXPIRED_WISHES)
    ]
    await _insert_chunked(conn, Wish, others)
    await conn.execute(text("ANALYZE"))

    def headers(user_id: int) -> dict[str, str]:
        token = issue_access_token(user_id=user_id, secret_key=secret, ttl_seconds=4 * 3600)
        return {"Authorization": f"Bearer {token}"} | JSON_HEADERS

    event_communities = [grids[0].community_id for grids in event_grids]
    return World(
        organizer_headers=headers(organizer_id),
        community_ids=event_communities,
        member_headers={m: headers(m) for m in member_ids},
        wish_slots={int(wish_id): int(slots) for wish_id, slots in pooled},
    )


# --------------------------------------------------------------------------- the rush


def classify(status: int, body: bytes) -> Outcome:
    """201 ok; any 4xx a refusal named by its problem code (409s by the code alone);
    anything else (5xx) an error."""
    if status == 201:
        return Outcome("ok")
    code = ""
    with contextlib.suppress(ValueError, AttributeError):
        code = str(json.loads(body).get("code", ""))
    if 400 <= status < 500:
        return Outcome("refused", code if status == 409 and code else f"{status} {code}".strip())
    return Outcome("error", f"{status} {code}".strip())


@dataclass
class Rush:
    """The clients' shared view of the pool and of the members, and what happened."""

    wish_slots: dict[int, int]
    member_headers: dict[int, dict[str, str]]
    rng: random.Random
    open_wishes: list[int] = field(default_factory=list)  # not known to be full
    _position: dict[int, int] = field(default_factory=dict)
    free_members: list[int] = field(default_factory=list)  # held by no client
    busy_members: int = 0
    claimed_by: dict[int, set[int]] = field(default_factory=dict)  # member -> wishes
    taken: Counter[int] = field(default_factory=Counter)  # wish -> slots of 201s
    sold: int = 0
    members_used: set[int] = field(default_factory=set)
    members_done: Counter[str] = field(default_factory=Counter)  # why, -> members
    ok_at: dict[str, float] = field(default_factory=dict)  # claim id -> when its 201 arrived
    latencies: dict[str, list[float]] = field(default_factory=dict)  # answer -> seconds
    stop_reason: str = ""
    sold_out_at: float | None = None
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def __post_init__(self) -> None:
        self.open_wishes = list(self.wish_slots)
        self._position = {w: i for i, w in enumerate(self.open_wishes)}
        self.free_members = list(self.member_headers)
        self.rng.shuffle(self.free_members)

    @property
    def total_slots(self) -> int:
        return sum(self.wish_slots.values())

    def stop(self, reason: str) -> None:
        if not self.stop_reason:
            self.stop_reason = reason

    def known_full(self, wish_id: int) -> None:
        index = self._position.pop(wish_id, None)
        if index is None:
            return
        last = self.open_wishes.pop()
        if last != wish_id:
            self.open_wishes[index] = last
            self._position[last] = index
        if not self.open_wishes and self.sold < self.total_slots:
            self.stop(NO_WISH_IN_VIEW)

    def pick_wish(self, member_id: int) -> int | None:
        """A random wish not known to be full that the member has not claimed yet."""
        mine = self.claimed_by.get(member_id, set())
        for _ in range(8):
            if not self.open_wishes:
                return None
            wish_id = self.rng.choice(self.open_wishes)
            if wish_id not in mine:
                return wish_id
        left = [w for w in self.open_wishes if w not in mine]
        return self.rng.choice(left) if left else None

    async def take_member(self) -> int | None:
        async with self.changed:
            while not self.free_members:
                if self.stop_reason:
                    return None
                if self.busy_members == 0:
                    self.stop("all members exhausted")
                    self.changed.notify_all()
                    return None
                await self.changed.wait()
            if self.stop_reason:
                return None
            index = self.rng.randrange(len(self.free_members))
            self.free_members[index], self.free_members[-1] = (
                self.free_members[-1],
                self.free_members[index],
            )
            self.busy_members += 1
            member_id = self.free_members.pop()
            self.members_used.add(member_id)
            return member_id

    async def release(self, member_id: int, done: str | None) -> None:
        async with self.changed:
            self.busy_members -= 1
            if done is None:
                self.free_members.append(member_id)
            else:
                self.members_done[done] += 1
            self.changed.notify_all()

    def record(
        self, member_id: int, wish_id: int, outcome: Outcome, body: bytes, at: float, took: float
    ) -> None:
        answer = "201" if outcome.kind == "ok" else outcome.detail
        self.latencies.setdefault(answer, []).append(took)
        if outcome.kind == "ok":
            claim_id = str(json.loads(body)["id"])
            self.ok_at[claim_id] = at
            self.claimed_by.setdefault(member_id, set()).add(wish_id)
            self.taken[wish_id] += 1
            self.sold += 1
            if self.taken[wish_id] >= self.wish_slots[wish_id]:
                self.known_full(wish_id)
            if self.sold >= self.total_slots:
                self.sold_out_at = at
                if self.stop_reason == NO_WISH_IN_VIEW:
                    # Every wish was known full while this 201 was still on its way (a
                    # wish_full for the same wish overtook it): the pool did sell out.
                    self.stop_reason = ""
                self.stop("sold out")
        elif outcome.detail == "wish_full":
            self.known_full(wish_id)
        elif outcome.detail == "already_claimed":
            self.claimed_by.setdefault(member_id, set()).add(wish_id)


async def run_rush(
    rush: Rush,
    connections: Sequence[RawConnection],
    event_id: int,
    phase: Phase,
    started: float,
    limit_seconds: float,
) -> float:
    """Every client loops until the rush stops; returns when the last answer arrived."""
    loop = asyncio.get_running_loop()
    target = f"/v1/claim-events/{event_id}/claims"
    deadline = started + limit_seconds
    last = started

    async def client(conn: RawConnection) -> None:
        nonlocal last
        while not rush.stop_reason:
            if loop.time() > deadline:
                rush.stop(f"timeout after {limit_seconds:g} s")
                break
            member_id = await rush.take_member()
            if member_id is None:
                break
            wish_id = rush.pick_wish(member_id)
            if wish_id is None:
                await rush.release(member_id, "nothing left to claim")
                continue
            body = f'{{"wish_id":"{wish_id}","slots":1}}'.encode()
            call = Call("POST", target, rush.member_headers[member_id], body)
            began = loop.time()
            answer = b""
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                    status, answer = await conn.send(call)
                outcome = classify(status, answer)
            except REQUEST_ERRORS as exc:
                outcome = Outcome("error", type(exc).__name__)
            finished = last = loop.time()
            phase.record(outcome, finished - began)
            rush.record(member_id, wish_id, outcome, answer, finished, finished - began)
            done = outcome.detail if outcome.detail in MEMBER_DONE_CODES else None
            if outcome.kind == "refused" and outcome.detail.startswith("403"):
                done = outcome.detail
            await rush.release(member_id, done)
            if phase.errors >= MAX_ERRORS:
                rush.stop(f"{phase.errors} errors")
        async with rush.changed:
            rush.changed.notify_all()

    async with asyncio.TaskGroup() as group:
        for conn in connections:
            group.create_task(client(conn))
    return last


# --------------------------------------------------------------------------- live feed


@dataclass
class Subscriber:
    label: str
    claims: dict[str, float] = field(default_factory=dict)  # claim id -> first seen
    duplicates: int = 0
    messages: Counter[str] = field(default_factory=Counter)
    statuses: list[tuple[str, float]] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # the snapshot arrived
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # status 'closed' arrived
    error: str | None = None

    def dispatch(self, kind: str, data: str, at: float) -> None:
        if not kind:
            return
        self.messages[kind] += 1
        if kind == "snapshot":
            self.ready.set()
            return
        payload = json.loads(data)
        if kind == "claim":
            claim_id = str(payload["claim_id"])
            if claim_id in self.claims:
                self.duplicates += 1
            else:
                self.claims[claim_id] = at
        elif kind == "status":
            self.statuses.append((str(payload["status"]), at))
            if payload["status"] == "closed":
                self.closed.set()


async def subscribe(base_url: str, target: str, headers: dict[str, str], sub: Subscriber) -> None:
    """Read the SSE stream until cancelled, timing every message as it completes."""
    loop = asyncio.get_running_loop()
    try:
        async with (
            httpx.AsyncClient(
                base_url=base_url, timeout=SUBSCRIBER_TIMEOUT, trust_env=False
            ) as http,
            http.stream("GET", target, headers=headers) as response,
        ):
            if response.status_code != 200:
                sub.error = f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"
                return
            kind, data = "", list[str]()
            async for line in response.aiter_lines():
                if not line:
                    sub.dispatch(kind, "\n".join(data), loop.time())
                    kind, data = "", []
                elif line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
            sub.error = "stream ended"
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        sub.error = f"{type(exc).__name__}: {exc}"
    finally:
        sub.ready.set()


@dataclass
class FeedResult:
    subscribers: list[Subscriber]
    lags: list[float]  # seconds, every (subscriber, claim) pair seen
    missing: list[int]  # per subscriber: 201s never seen in its feed
    extra: list[int]  # per subscriber: claims in its feed without a 201 here
    caught_up_after: float | None  # seconds after the last answer of the rush
    live_lag: float | None  # the 'live' status message after the open response

    @property
    def complete(self) -> bool:
        return not any(self.missing) and not any(s.error for s in self.subscribers)


# --------------------------------------------------------------------------- one database


@dataclass
class Checks:
    pooled: tuple[int, int]  # wishes, slots in the open response
    expected: tuple[int, int]
    claim_rows: int
    event_slots: int  # slots of live event claims in SQL
    server_sold_out: float | None  # last claim's created_at - opened_at
    invariants: dict[str, list[Any]]
    event_invariants: dict[str, list[Any]]
    close_status: int
    still_pooled: int  # wishes with event_id set after close
    pool_states: dict[str, int]
    after_close: dict[str, list[Any]]
    report_totals: dict[str, Any]


@dataclass
class DatabaseRun:
    label: str
    seed_seconds: float
    noop: Phase
    rush: Phase
    state: Rush
    open_to_sold_out: float | None
    feed: FeedResult
    checks: Checks
    notes: list[str]
    log_summary: list[str]
    traceback_in_log: bool
    started: datetime = field(default_factory=lambda: datetime.now(UTC))

    def verdicts(self) -> list[tuple[str, bool]]:
        c = self.checks
        return [
            ("pooled what was expected", c.pooled == c.expected),
            (
                f"rush ended sold out or with every member exhausted ({self.state.stop_reason})",
                self.state.stop_reason in ("sold out", "all members exhausted"),
            ),
            ("no 5xx or transport errors", self.rush.errors == 0 and self.noop.errors == 0),
            ("claim rows = 201 responses", c.claim_rows == len(self.state.ok_at)),
            ("invariants hold (violations)", not c.invariants),
            ("event invariants and quotas hold (event_violations)", not c.event_invariants),
            ("every successful claim in every feed", self.feed.complete),
            (
                "close: 200, every pooled wish back home",
                c.close_status == 200 and not c.still_pooled,
            ),
            ("event invariants hold after close", not c.after_close),
            ("no Traceback in the server log", not self.traceback_in_log),
        ]

    @property
    def passed(self) -> bool:
        return all(ok for _, ok in self.verdicts())


def bench_database(kind: str, args: argparse.Namespace) -> DatabaseRun:
    # The bench is the load generator: what an earlier database's run left in its heap must
    # not slow its clients down in the next (collections walking it during the rush).
    gc.collect()
    gc.freeze()
    secret = secrets.token_urlsafe(48)
    begun = datetime.now(UTC)
    with throwaway_database(kind) as url, tempfile.TemporaryDirectory() as logs:
        seeding = time.perf_counter()
        migrate.upgrade(url)
        world = asyncio.run(seed(url, secret, args.members, args.wishes, random.Random(args.seed)))
        seed_seconds = time.perf_counter() - seeding
        server = Server(
            url,
            secret,
            Path(logs) / "server.log",
            extra_env={"MICROWISH_RATE_LIMITS": "off", **dict(args.server_env)},
        )
        try:
            server.wait_healthy()
            run = asyncio.run(run_event(kind, url, server, world, args))
            log = server.log()
        finally:
            server.stop()
    run.label = "SQLite" if kind == "sqlite" else "PostgreSQL"
    run.seed_seconds = seed_seconds
    run.started = begun
    run.log_summary = summarize_log(log) + exceptions_in(log)
    run.traceback_in_log = "Traceback" in log
    if args.keep_log is not None:
        kept = args.keep_log / f"rush-{kind}-server.log"
        kept.write_text(log)
        run.notes.append(f"server log kept in {kept}")
    return run


def exceptions_in(log: str) -> list[str]:
    """The final line of every traceback in the log (the exception), with counts."""
    found: Counter[str] = Counter()
    lines = log.splitlines()
    for n, line in enumerate(lines):
        if line.startswith("Traceback"):
            end = n + 1
            while end < len(lines) and (lines[end].startswith(" ") or not lines[end]):
                end += 1
            if end < len(lines):
                found[lines[end].strip()[:200]] += 1
    return [f"  {count}x {exception}" for exception, count in found.most_common(8)]


def _cpu_reading(server: Server, measure_postgres: bool) -> tuple[float, float, float, float]:
    pg = _postgres_cpu_seconds() if measure_postgres else 0.0
    return server.cpu_seconds(), pg, time.process_time(), _system_busy_seconds()


def _cpu_between(
    before: tuple[float, ...], after: tuple[float, ...], seconds: float, measure_postgres: bool
) -> Cpu:
    srv, pg, cli, busy = ((a - b) * 100 / seconds for a, b in zip(after, before, strict=True))
    return Cpu(srv, pg if measure_postgres else None, cli, busy - srv - pg - cli)


async def run_event(
    kind: str, url: str, server: Server, world: World, args: argparse.Namespace
) -> DatabaseRun:
    loop = asyncio.get_running_loop()
    measure_pg = kind == "postgresql"
    notes: list[str] = []
    any_member = next(iter(world.member_headers.values()))

    async def quiet(name: str) -> None:
        other = await wait_until_quiet(server, measure_pg, args.quiet_wait)
        if other >= QUIET_OTHER_CPU:
            notes.append(f"{name}: started while other processes used {other:.0f}% CPU")

    await quiet("noop")
    noop = await run_phase(
        server,
        name="noop",
        clients=args.clients,
        duration=args.noop_duration,
        next_call=lambda: Call("GET", "/bench/noop", any_member),
        ok_status=200,
        connection=RawConnection,
        measure_postgres=measure_pg,
    )

    organizer = world.organizer_headers
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=REQUEST_TIMEOUT_SECONDS, trust_env=False
    ) as http:
        created = await http.post(
            "/v1/claim-events",
            json={
                "title": "跨社区集中认领（基准）",
                "community_ids": [str(c) for c in world.community_ids],
                "mode": "rush",
                "per_member_quota": QUOTA,
            },
            headers=organizer,
        )
        if created.status_code != 201:
            raise RuntimeError(f"create event: HTTP {created.status_code} {created.text}")
        event = created.json()
        event_id = int(event["id"])
        board_token = str(event["board_url"]).split("token=", 1)[1]

        # Subscribers alternate between the board's token and the organizer's bearer token.
        stream = f"/v1/claim-events/{event_id}/stream"
        subscribers: list[Subscriber] = []
        feed_tasks = []
        for n in range(args.subscribers):
            board = n % 2 == 0
            sub = Subscriber("board_token" if board else "bearer")
            subscribers.append(sub)
            feed_tasks.append(
                asyncio.create_task(
                    subscribe(
                        server.base_url,
                        f"{stream}?board_token={board_token}" if board else stream,
                        {} if board else organizer,
                        sub,
                    )
                )
            )
        async with asyncio.timeout(30):
            await asyncio.gather(*(sub.ready.wait() for sub in subscribers))

        # Every client's keep-alive connection is open before the event is (and used within
        # uvicorn's 5 s keep-alive timeout: the wait for a quiet machine comes first).
        await quiet("rush")
        connections = [RawConnection(server.port) for _ in range(args.clients)]
        await asyncio.gather(*(c.send(Call("GET", "/bench/noop", any_member)) for c in connections))
        detail = Call("GET", f"/v1/claim-events/{event_id}", any_member)
        warm_until = loop.time() + 1.0

        async def warm(conn: RawConnection) -> None:
            while loop.time() < warm_until:
                await conn.send(detail)

        await asyncio.gather(*(warm(c) for c in connections))

        rush = Rush(dict(world.wish_slots), world.member_headers, random.Random(args.seed))
        phase = Phase(name="rush", clients=args.clients, duration=0.0)
        opened = await http.post(f"/v1/claim-events/{event_id}/open", headers=organizer)
        started = loop.time()
        if opened.status_code != 200:
            raise RuntimeError(f"open event: HTTP {opened.status_code} {opened.text}")
        pooled = (int(opened.json()["wishes_pooled"]), int(opened.json()["slots_pooled"]))
        # The clients rush the wishes seeded for the pool (a different pool fails a check).
        cpu_before = _cpu_reading(server, measure_pg)
        ended = await run_rush(rush, connections, event_id, phase, started, args.timeout)
        phase.duration = max(ended - started, 1e-9)
        phase.cpu = _cpu_between(
            cpu_before, _cpu_reading(server, measure_pg), phase.duration, measure_pg
        )
        for conn in connections:
            await conn.close()

        # The feed: wait for every subscriber to have shown every 201.
        caught_up: float | None = None
        feed_deadline = loop.time() + args.feed_wait
        while loop.time() < feed_deadline:
            if all(rush.ok_at.keys() <= sub.claims.keys() for sub in subscribers):
                caught_up = loop.time() - ended
                break
            await asyncio.sleep(0.02)

        invariants: dict[str, list[Any]] = dict(await violations(url))
        event_invariants: dict[str, list[Any]] = dict(await event_violations(url))
        claim_rows, event_slots, server_sold_out = await claim_facts(url, event_id)

        closed = await http.post(f"/v1/claim-events/{event_id}/close", headers=organizer)
        if closed.status_code != 200:
            notes.append(f"close: HTTP {closed.status_code} {closed.text[:300]}")
        # Give the feed a moment to announce the closing.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.gather(*(sub.closed.wait() for sub in subscribers))
        for task in feed_tasks:
            task.cancel()
        for task in feed_tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        report = await http.get(f"/v1/claim-events/{event_id}/report", headers=organizer)
        totals = report.json().get("totals", {}) if report.status_code == 200 else {}
    still_pooled, pool_states = await back_home(url, event_id)
    after_close: dict[str, list[Any]] = dict(await event_violations(url))

    lags: list[float] = []
    missing: list[int] = []
    extra: list[int] = []
    for sub in subscribers:
        lags += [sub.claims[c] - at for c, at in rush.ok_at.items() if c in sub.claims]
        missing.append(len(rush.ok_at.keys() - sub.claims.keys()))
        extra.append(len(sub.claims.keys() - rush.ok_at.keys()))
        if not sub.closed.is_set() and not sub.error:
            notes.append(f"feed {sub.label}: no 'closed' status message within 5 s of closing")
    live_seen = [at for sub in subscribers for status, at in sub.statuses if status == "live"]
    feed = FeedResult(
        subscribers=subscribers,
        lags=lags,
        missing=missing,
        extra=extra,
        caught_up_after=caught_up,
        live_lag=max(live_seen) - started
        if live_seen and len(live_seen) == len(subscribers)
        else None,
    )
    checks = Checks(
        pooled=pooled,
        expected=(len(world.wish_slots), sum(world.wish_slots.values())),
        claim_rows=claim_rows,
        event_slots=event_slots,
        server_sold_out=server_sold_out,
        invariants=invariants,
        event_invariants=event_invariants,
        close_status=closed.status_code,
        still_pooled=still_pooled,
        pool_states=pool_states,
        after_close=after_close,
        report_totals=totals,
    )
    return DatabaseRun(
        label=kind,
        seed_seconds=0.0,
        noop=noop,
        rush=phase,
        state=rush,
        open_to_sold_out=rush.sold_out_at - started if rush.sold_out_at is not None else None,
        feed=feed,
        checks=checks,
        notes=notes,
        log_summary=[],
        traceback_in_log=False,
    )


async def claim_facts(url: str, event_id: int) -> tuple[int, int, float | None]:
    """Claim rows in all; slots of the event's live claims; and, server-side, how long after
    opening the last of them was created."""
    engine = create_async_engine(normalize_database_url(url))
    try:
        async with engine.connect() as conn:
            rows = int(await conn.scalar(select(func.count()).select_from(Claim)) or 0)
            slots = int(
                await conn.scalar(
                    select(func.coalesce(func.sum(Claim.slots), 0)).where(
                        Claim.event_id == event_id, Claim.status.in_(["active", "fulfilled"])
                    )
                )
                or 0
            )
            opened_at = await conn.scalar(
                select(ClaimEvent.opened_at).where(ClaimEvent.id == event_id)
            )
            last = await conn.scalar(
                select(func.max(Claim.created_at)).where(Claim.event_id == event_id)
            )
    finally:
        await engine.dispose()
    seconds = (last - opened_at).total_seconds() if last and opened_at else None
    return rows, slots, seconds


async def back_home(url: str, event_id: int) -> tuple[int, dict[str, int]]:
    """Wishes still carrying an event after close, and the event's pool entries by state."""
    engine = create_async_engine(normalize_database_url(url))
    try:
        async with engine.connect() as conn:
            still = int(
                await conn.scalar(
                    select(func.count()).select_from(Wish).where(Wish.event_id.is_not(None))
                )
                or 0
            )
            states = (
                await conn.execute(
                    text(
                        "SELECT state, count(*) FROM claim_event_wishes WHERE event_id = :e "
                        "GROUP BY state ORDER BY state"
                    ),
                    {"e": event_id},
                )
            ).all()
    finally:
        await engine.dispose()
    return still, {str(state): int(count) for state, count in states}


# --------------------------------------------------------------------------- report


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return f"{ordered[rank] * 1000:.0f}"


def _ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}" if reference > 0 else "-"


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key}={count}" for key, count in counter.most_common()) or "-"


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print(
        "|"
        + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2)) for i, w in enumerate(widths))
        + "|"
    )
    for row in rows:
        print(
            "| "
            + " | ".join(
                (c.rjust(w) if i else c.ljust(w))
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
            + " |"
        )


def print_run(run: DatabaseRun) -> None:
    noop, rush, state, checks, feed = run.noop, run.rush, run.state, run.checks, run.feed
    print(
        f"\n## {run.label}  ({run.started:%Y-%m-%d %H:%M} UTC, nproc={os.cpu_count()}, "
        f"{cpu_model()}; migrate + seed {run.seed_seconds:.1f} s)\n"
    )
    rows = []
    for phase in (noop, rush):
        rows.append(
            [
                phase.name,
                str(phase.clients),
                f"{phase.duration:.1f}",
                str(phase.requests),
                str(phase.ok),
                str(phase.refused),
                str(phase.errors),
                f"{phase.throughput:.0f}",
                f"{phase.ok_throughput:.0f}",
                f"{phase.percentile_ms(0.50):.1f}",
                f"{phase.percentile_ms(0.99):.1f}",
                _ratio(phase.throughput, noop.throughput),
                _ratio(phase.percentile_ms(0.99), noop.percentile_ms(0.99)),
                str(phase.cpu or "-"),
                phase.cpu_per_request(),
            ]
        )
    _table(
        [
            "phase",
            "clients",
            "s",
            "requests",
            "2xx",
            "4xx",
            "errors",
            "req/s",
            "ok/s",
            "p50 ms",
            "p99 ms",
            "x noop req/s",
            "x noop p99",
            "cpu% srv/db/cli/other",
            "cpu ms/req srv+db",
        ],
        rows,
    )
    print()
    sold_out = f"{run.open_to_sold_out:.2f} s" if run.open_to_sold_out is not None else "never"
    server_side = f"{checks.server_sold_out:.2f} s" if checks.server_sold_out is not None else "-"
    print(
        f"- pool at opening: {checks.pooled[0]} wishes, {checks.pooled[1]} slots "
        f"(expected {checks.expected[0]}, {checks.expected[1]})"
    )
    print(
        f"- rush: stopped on '{state.stop_reason}'; opening -> sold out {sold_out} "
        f"(server: last claim - opened_at = {server_side}); {state.sold} of "
        f"{state.total_slots} slots claimed; {rush.ok_throughput:.0f} claims/s, "
        f"{rush.throughput:.0f} req/s"
    )
    print(f"- event claim answers: 201={rush.ok}, {_counts(rush.refusal_codes)}")
    print(
        "- latency by answer (p50/p99/max ms): "
        + "; ".join(
            f"{answer} {_ms(took, 0.5)}/{_ms(took, 0.99)}/{_ms(took, 1.0)}"
            for answer, took in sorted(state.latencies.items(), key=lambda kv: -len(kv[1]))
        )
    )
    print(
        f"- errors (5xx + transport): rush {rush.errors}, noop {noop.errors}"
        + (
            f" ({_counts(rush.error_kinds + noop.error_kinds)})"
            if rush.errors + noop.errors
            else ""
        )
    )
    print(
        f"- members: {len(run.state.member_headers)}, {len(state.members_used)} used, "
        f"exhausted {_counts(state.members_done)}"
    )
    print()
    feed_rows = []
    for n, sub in enumerate(feed.subscribers):
        own = [sub.claims[c] - at for c, at in state.ok_at.items() if c in sub.claims]
        feed_rows.append(
            [
                sub.label,
                str(sub.messages["claim"]),
                f"{len(state.ok_at) - feed.missing[n]}/{len(state.ok_at)}",
                str(sub.duplicates),
                str(feed.extra[n]),
                _ms(own, 0.50),
                _ms(own, 0.99),
                f"{max(own) * 1000:.0f}" if own else "-",
                f"{min(own) * 1000:.0f}" if own else "-",
                _counts(sub.messages),
                sub.error or "-",
            ]
        )
    _table(
        [
            "feed",
            "claim msgs",
            "201s seen",
            "dup",
            "unknown",
            "lag p50 ms",
            "lag p99 ms",
            "lag max ms",
            "lag min ms",
            "messages",
            "error",
        ],
        feed_rows,
    )
    print()
    caught = f"{feed.caught_up_after:.2f} s" if feed.caught_up_after is not None else "never"
    live = f"{feed.live_lag * 1000:.0f} ms" if feed.live_lag is not None else "-"
    print(
        f"- feed: lag over all subscribers p50 {_ms(feed.lags, 0.50)} ms, "
        f"p99 {_ms(feed.lags, 0.99)} ms, max {_ms(feed.lags, 1.0)} ms; every 201 in every "
        f"feed: {'yes' if feed.complete else 'NO'}; caught up {caught} after the last answer; "
        f"'live' status {live} after the open response"
    )
    print(
        f"- SQL: claim rows {checks.claim_rows} (201s {len(state.ok_at)}), event claim slots "
        f"{checks.event_slots}; violations: {checks.invariants or 'none'}; "
        f"event_violations: {checks.event_invariants or 'none'}"
    )
    t = checks.report_totals
    print(
        f"- close: HTTP {checks.close_status}; wishes with event_id still set: "
        f"{checks.still_pooled}; pool entries {checks.pool_states}; event_violations after "
        f"close: {checks.after_close or 'none'}; report totals: {t.get('slots_claimed')}/"
        f"{t.get('slots_pooled')} slots, {t.get('wishes_filled')}/{t.get('wishes_pooled')} "
        f"wishes filled, {t.get('members')} members"
    )
    for note in run.notes:
        print(f"- note: {note}")
    print("- server log: " + run.log_summary[0])
    for line in run.log_summary[1:]:
        print(f"  {line}")
    print()
    for name, ok in run.verdicts():
        print(f"- {'PASS' if ok else 'FAIL'}  {name}")
    print(f"\n**{run.label}: {'PASS' if run.passed else 'FAIL'}**")


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--clients", type=int, help=f"default {FULL['clients']}")
    parser.add_argument("--members", type=int, help=f"default {FULL['members']}")
    parser.add_argument("--wishes", type=int, help=f"pooled wishes, default {FULL['wishes']}")
    parser.add_argument(
        "--noop-duration", type=float, help=f"seconds, default {FULL['noop_duration']:g}"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: defaults {QUICK['members']} members, {QUICK['wishes']} wishes, "
        f"{QUICK['clients']} clients, {QUICK['noop_duration']:g} s noop",
    )
    parser.add_argument("--subscribers", type=int, default=2, help="SSE connections to the feed")
    parser.add_argument("--seed", type=int, default=1, help="random seed for slots and choices")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds the rush may take")
    parser.add_argument(
        "--feed-wait", type=float, default=10.0, help="seconds to wait for the feed to catch up"
    )
    parser.add_argument("--keep-log", type=Path, help="copy each server log into this directory")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help="before noop and the rush, wait up to this many seconds for a quiet machine "
        f"(default {FULL['quiet_wait']:g}, --quick {QUICK['quiet_wait']:g})",
    )
    add_server_env_option(parser)
    args = parser.parse_args()
    defaults = QUICK if args.quick else FULL
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if not 1 <= args.clients <= 1000:
        parser.error("--clients must be between 1 and 1000")
    if args.members < 1 or args.wishes < 1 or not 0 <= args.subscribers <= 50:
        parser.error("--members and --wishes must be positive, --subscribers 0..50")
    if not 0 < args.noop_duration <= 600:
        parser.error("--noop-duration must be between 0 and 600 seconds")
    if args.keep_log is not None:
        args.keep_log.mkdir(parents=True, exist_ok=True)

    print(f"# microwish rush bench  {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC\n")
    print(
        f"nproc={os.cpu_count()}, CPU {cpu_model()}, python {platform.python_version()}, "
        f"sqlite {sqlite3.sqlite_version}, httpx {httpx.__version__}"
    )
    print(
        f"{args.members} active members (capacity {MEMBER_CAPACITY}, homes in "
        f"{STREETS * COMMUNITIES_PER_STREET} communities of {STREETS} streets); a rush event "
        f"over {STREETS * EVENT_COMMUNITIES_PER_STREET} communities pooling {args.wishes} wishes "
        f"of 1-{MAX_WISH_SLOTS} slots, quota {QUOTA}; {args.clients} clients, "
        f"{args.subscribers} SSE subscribers; noop {args.noop_duration:g} s after 1 s warm-up"
    )
    print(
        "req/s and p99 'x noop' compare all event claim requests with the noop phase; the rush "
        "row covers opening to the last answer. cpu% is of one core: srv = uvicorn, db = "
        "postgres processes, cli = this bench, other = the rest of the machine. Feed lag = "
        "claim message received - its 201 received (negative: the feed was first)."
    )
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    results = []
    for kind in kinds:
        run = bench_database(kind, args)
        print_run(run)
        results.append(run)
    print("\n## verdict\n")
    for run in results:
        print(f"- {run.label}: {'PASS' if run.passed else 'FAIL'}")
    sys.exit(0 if all(run.passed for run in results) else 1)


if __name__ == "__main__":
    main()
