"""Claim throughput against a real server, next to a no-I/O endpoint measured in the same run.

For each database (SQLite in a temp file, PostgreSQL in a throw-away ``mw_bench_*`` database):
migrate, seed with bulk SQL, start uvicorn on ``bench._app:app`` (the real app plus
``GET /bench/noop``), then run, each phase with a ~1 s warm-up:

* ``noop``        the no-I/O endpoint (same middleware and JWT auth): the ceiling;
* ``claims``      ``POST /v1/wishes/{id}/claims`` from a hot set of wishes;
* ``claims+key``  the same with an ``Idempotency-Key`` on each (as the phone app sends them);
* ``claims/16w``  (SQLite) the same with 16 concurrent writers, counting "database is locked";
* ``list first`` / ``list deep``  a keyset page of 20 over 100,000 wishes (first page, and
  one ~50,000 rows in).

Then the invariants are checked in SQL and the targets reported. Only talks to 127.0.0.1.

    .venv/bin/python bench/claims.py [--db sqlite|postgresql|both] [--duration 10] [--clients 64]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import os
import platform
import random
import secrets
import shutil
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from app.accounts.models import User
from app.core import migrate
from app.core.config import normalize_database_url
from app.core.pagination import encode_cursor
from app.core.security import issue_access_token
from app.members.models import Member, MemberArea
from app.regions.models import Region
from app.wishes.models import Wish

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
PG_ADMIN_URL = f"postgresql://postgres@{HOST}:5432/test"

# The seeded world: one district, 2 streets, 10 communities of 2 grids; 300 members per
# community, each allowed to claim in their home community only (the app's default scope).
STREETS = 2
COMMUNITIES = 10
GRIDS_PER_COMMUNITY = 2
MEMBERS_PER_COMMUNITY = 300
MEMBER_CAPACITY = 50  # the CHECK's maximum
RESIDENTS = 50
# Hot wishes: 100 per community with 100 slots each, claimed in blocks of 20 per community
# (200 wishes open to the rush at a time). Wish i's slot j goes to member (i*100 + j) % 300
# of its community: never the same member twice on a wish, ~33 claims per member in all, so
# neither already_claimed nor capacity_reached refuses a request until the pool runs out.
HOT_WISHES_PER_COMMUNITY = 100
HOT_BLOCK_PER_COMMUNITY = 20
HOT_SLOTS = 100
LISTING_WISHES = 100_000
DEEP_PAGE_OFFSET = 50_000
PAGE_LIMIT = 20
INSERT_CHUNK = 5_000

WARMUP_SECONDS = 1.0
PHASES = ("noop", "claims", "list")
QUIET_OTHER_CPU = 25.0  # % of one core other processes may use when a phase starts
REQUEST_TIMEOUT_SECONDS = 60.0  # above the server's 30 s SQLite busy timeout
SERVER_START_TIMEOUT_SECONDS = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Targets from the issue (PostgreSQL).
TARGET_CLAIM_THROUGHPUT_RATIO = 0.35
TARGET_CLAIM_P99_RATIO = 5.0
TARGET_LIST_THROUGHPUT_RATIO = 0.10

JSON_HEADERS = {"Content-Type": "application/json"}
CLAIM_BODY = b'{"slots":1}'


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Cpu:
    """CPU used during a measured window, in % of one core."""

    server: float  # the uvicorn process
    database: float | None  # every postgres process (None on SQLite: it runs in the server)
    client: float  # this process
    other: float  # everything else on the machine: a busy neighbour skews the numbers

    def __str__(self) -> str:
        db = "-" if self.database is None else f"{self.database:.0f}"
        return f"{self.server:.0f}/{db}/{self.client:.0f}/{self.other:.0f}"


@dataclass
class Phase:
    name: str
    clients: int
    duration: float
    latencies: list[float] = field(default_factory=list)  # seconds, measured window only
    ok: int = 0
    refused: int = 0
    errors: int = 0
    refusal_codes: Counter[str] = field(default_factory=Counter)
    error_kinds: Counter[str] = field(default_factory=Counter)
    locked_in_bodies: int = 0
    locked_in_log: int = 0
    cpu: Cpu | None = None

    def cpu_per_request(self) -> str:
        """Server (and PostgreSQL) CPU per request: what a request costs, whatever else
        the machine was doing."""
        if self.cpu is None or not self.requests:
            return "-"
        per_request = self.duration * 10 / self.requests  # % of a core -> ms per request
        server = f"{self.cpu.server * per_request:.2f}"
        if self.cpu.database is None:
            return server
        return f"{server}+{self.cpu.database * per_request:.2f}"

    def record(self, outcome: Outcome, latency: float) -> None:
        self.latencies.append(latency)
        self.locked_in_bodies += outcome.locked
        if outcome.kind == "ok":
            self.ok += 1
        elif outcome.kind == "refused":
            self.refused += 1
            self.refusal_codes[outcome.detail] += 1
        else:
            self.errors += 1
            self.error_kinds[outcome.detail] += 1

    @property
    def requests(self) -> int:
        return self.ok + self.refused + self.errors

    @property
    def throughput(self) -> float:
        return self.requests / self.duration

    @property
    def ok_throughput(self) -> float:
        return self.ok / self.duration

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
        return ordered[rank] * 1000


@dataclass
class Outcome:
    kind: str  # "ok", "refused" or "error"
    detail: str = ""  # the problem code or the error's description
    locked: bool = False


# --------------------------------------------------------------------------- seeding


@dataclass
class World:
    """What the phases need to know about the seeded database."""

    member_headers: dict[int, dict[str, str]]
    hot_wishes: list[list[int]]  # per community, in id order
    members: list[list[int]]  # per community
    lister_headers: dict[str, str]
    deep_cursor: str


async def _insert_region(conn: AsyncConnection, kind: str, name: str, parent: Region | None) -> Any:
    levels = {
        f"{level}_id": getattr(parent, f"{level}_id") if parent is not None else None
        for level in ("district", "street", "community", "grid")
    }
    region_id = await conn.scalar(
        insert(Region)
        .values(kind=kind, name=name, parent_id=parent.id if parent else None, created_at=_now())
        .values(**levels)
        .returning(Region.id)
    )
    # Each region records its own id at its own level (as app/demo/seed.py does).
    await conn.execute(
        update(Region).where(Region.id == region_id).values({f"{kind}_id": region_id})
    )
    row = (await conn.execute(select(Region).where(Region.id == region_id))).one()
    return row


def _now() -> datetime:
    return datetime.now(UTC)


async def _insert_chunked(
    conn: AsyncConnection, table: Any, rows: Sequence[dict[str, Any]]
) -> None:
    for start in range(0, len(rows), INSERT_CHUNK):
        await conn.execute(insert(table), list(rows[start : start + INSERT_CHUNK]))


def _wish_row(
    grid: Any, resident_id: int, title: str, slots_total: int, now: datetime
) -> dict[str, Any]:
    return {
        "resident_id": resident_id,
        "creator_id": resident_id,
        "beneficiary_name": "王阿姨",
        "region_id": grid.id,
        "district_id": grid.district_id,
        "street_id": grid.street_id,
        "community_id": grid.community_id,
        "grid_id": grid.grid_id,
        "category": "repair",
        "title": title,
        "description": "",
        "slots_total": slots_total,
        "slots_claimed": 0,
        "slots_fulfilled": 0,
        "status": "open",
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }


async def seed(url: str, secret: str) -> World:
    engine = create_async_engine(normalize_database_url(url))
    try:
        async with engine.begin() as conn:
            return await _seed(conn, secret)
    finally:
        await engine.dispose()


async def _seed(conn: AsyncConnection, secret: str) -> World:
    now = _now()
    district = await _insert_region(conn, "district", "基准区", None)
    grids_by_community: list[list[Any]] = []
    communities: list[Any] = []
    for s in range(STREETS):
        street = await _insert_region(conn, "street", f"基准街道{s + 1}", district)
        for c in range(COMMUNITIES // STREETS):
            community = await _insert_region(conn, "community", f"基准社区{s + 1}-{c + 1}", street)
            communities.append(community)
            grids_by_community.append(
                [
                    await _insert_region(conn, "grid", f"第{g + 1}网格", community)
                    for g in range(GRIDS_PER_COMMUNITY)
                ]
            )

    # Users: residents (who own the wishes), members, and one plain user who lists.
    member_count = COMMUNITIES * MEMBERS_PER_COMMUNITY
    phones = [f"+8613{n:09d}" for n in range(RESIDENTS + member_count + 1)]
    await _insert_chunked(
        conn,
        User,
        [
            {"phone": phone, "display_name": f"用户{n}", "is_admin": False, "created_at": now}
            for n, phone in enumerate(phones)
        ],
    )
    user_ids = list((await conn.scalars(select(User.id).order_by(User.id))).all())
    residents = user_ids[:RESIDENTS]
    member_ids = user_ids[RESIDENTS : RESIDENTS + member_count]
    lister_id = user_ids[-1]
    members = [
        member_ids[c * MEMBERS_PER_COMMUNITY : (c + 1) * MEMBERS_PER_COMMUNITY]
        for c in range(COMMUNITIES)
    ]
    await _insert_chunked(
        conn,
        Member,
        [
            {
                "user_id": member_id,
                "community_id": communities[c].id,
                "status": "active",
                "capacity": MEMBER_CAPACITY,
                "active_claims": 0,
                "created_at": now,
                "updated_at": now,
            }
            for c in range(COMMUNITIES)
            for member_id in members[c]
        ],
    )
    await _insert_chunked(
        conn,
        MemberArea,
        [
            {"member_id": member_id, "region_id": communities[c].id}
            for c in range(COMMUNITIES)
            for member_id in members[c]
        ],
    )

    # Hot wishes first (low ids), so the newest-first listing pages never show them.
    await _insert_chunked(
        conn,
        Wish,
        [
            _wish_row(
                grids_by_community[c][i % GRIDS_PER_COMMUNITY],
                residents[(c * HOT_WISHES_PER_COMMUNITY + i) % RESIDENTS],
                f"热门心愿 {c}-{i}",
                HOT_SLOTS,
                now,
            )
            for c in range(COMMUNITIES)
            for i in range(HOT_WISHES_PER_COMMUNITY)
        ],
    )
    hot_rows = (await conn.execute(select(Wish.id, Wish.community_id).order_by(Wish.id))).all()
    community_index = {community.id: c for c, community in enumerate(communities)}
    hot_wishes: list[list[int]] = [[] for _ in range(COMMUNITIES)]
    for wish_id, community_id in hot_rows:
        hot_wishes[community_index[community_id]].append(wish_id)

    all_grids = [grid for grids in grids_by_community for grid in grids]
    await _insert_chunked(
        conn,
        Wish,
        [
            _wish_row(
                all_grids[n % len(all_grids)],
                residents[n % RESIDENTS],
                f"心愿 {n}",
                1 + n % 5,
                now,
            )
            for n in range(LISTING_WISHES)
        ],
    )
    deep_id = await conn.scalar(
        select(Wish.id).order_by(Wish.id.desc()).offset(DEEP_PAGE_OFFSET).limit(1)
    )
    # Fresh statistics, as autovacuum/ANALYZE would have after a bulk load.
    await conn.execute(text("ANALYZE"))

    def headers(user_id: int) -> dict[str, str]:
        token = issue_access_token(user_id=user_id, secret_key=secret, ttl_seconds=3600)
        return {"Authorization": f"Bearer {token}"}

    return World(
        member_headers={m: headers(m) | JSON_HEADERS for m in member_ids},
        hot_wishes=hot_wishes,
        members=members,
        lister_headers=headers(lister_id),
        deep_cursor=encode_cursor("wishes", [deep_id]),
    )


def claim_pairs(world: World, rng: random.Random) -> Iterator[tuple[int, int]]:
    """(wish, member) pairs that should all succeed, a block of hot wishes at a time; once
    the pool is spent, random pairs (which the server refuses with 409)."""
    for block in range(HOT_WISHES_PER_COMMUNITY // HOT_BLOCK_PER_COMMUNITY):
        pairs = [
            (
                world.hot_wishes[c][i],
                world.members[c][(i * HOT_SLOTS + j) % MEMBERS_PER_COMMUNITY],
            )
            for c in range(COMMUNITIES)
            for i in range(block * HOT_BLOCK_PER_COMMUNITY, (block + 1) * HOT_BLOCK_PER_COMMUNITY)
            for j in range(HOT_SLOTS)
        ]
        rng.shuffle(pairs)
        yield from pairs
    while True:
        c = rng.randrange(COMMUNITIES)
        yield rng.choice(world.hot_wishes[c]), rng.choice(world.members[c])


# --------------------------------------------------------------------------- invariants


INVARIANT_QUERIES = {
    "wish.slots_claimed = live claim slots <= slots_total": """
        SELECT count(*) FROM wishes w
        LEFT JOIN (SELECT wish_id, sum(slots) AS taken FROM claims
                   WHERE status IN ('active', 'fulfilled') GROUP BY wish_id) c
          ON c.wish_id = w.id
        WHERE w.slots_claimed <> coalesce(c.taken, 0) OR w.slots_claimed > w.slots_total
    """,
    "member.active_claims = active claims <= capacity": """
        SELECT count(*) FROM members m
        LEFT JOIN (SELECT member_id, count(*) AS held FROM claims
                   WHERE status = 'active' GROUP BY member_id) c
          ON c.member_id = m.user_id
        WHERE m.active_claims <> coalesce(c.held, 0) OR m.active_claims > m.capacity
    """,
    "at most one live claim per (wish, member)": """
        SELECT count(*) FROM (SELECT wish_id, member_id FROM claims
                              WHERE status IN ('active', 'fulfilled')
                              GROUP BY wish_id, member_id HAVING count(*) > 1) d
    """,
    "wish is 'claimed' exactly when full": """
        SELECT count(*) FROM wishes
        WHERE (status = 'claimed') <> (slots_claimed = slots_total)
          AND status IN ('open', 'claimed')
    """,
}


async def check_invariants(url: str, created: int) -> list[tuple[str, int]]:
    """Violations per invariant; the last line compares claim rows with 201s answered."""
    engine = create_async_engine(normalize_database_url(url))
    try:
        async with engine.connect() as conn:
            results = [
                (name, int(await conn.scalar(text(sql)) or 0))
                for name, sql in INVARIANT_QUERIES.items()
            ]
            rows = int(await conn.scalar(text("SELECT count(*) FROM claims")) or 0)
    finally:
        await engine.dispose()
    results.append((f"claim rows ({rows}) = 201 responses ({created})", abs(rows - created)))
    return results


# --------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """uvicorn on ``bench._app:app`` in a subprocess, its output in a temp file."""

    def __init__(
        self, url: str, secret: str, log_path: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.log_path = log_path
        env = {key: value for key, value in os.environ.items() if not key.startswith("MICROWISH_")}
        env.update(
            MICROWISH_DATABASE_URL=url,
            MICROWISH_ENV="test",
            MICROWISH_SECRET_KEY=secret,
        )
        env.update(extra_env or {})
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            # BENCH_ASGI_APP: another module:attribute wrapping it, e.g. a profiler.
            os.environ.get("BENCH_ASGI_APP", "bench._app:app"),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
        with httpx.Client(base_url=self.base_url, trust_env=False, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/v1/health").status_code == 200:
                        return
                time.sleep(0.2)
        raise RuntimeError(f"server did not become healthy; see {self.log_path}:\n{self.log()}")

    def cpu_seconds(self) -> float:
        return _proc_cpu_seconds(self.process.pid) or 0.0

    def log_size(self) -> int:
        self._log.flush()
        return self.log_path.stat().st_size

    def log(self, since: int = 0) -> str:
        self._log.flush()
        with self.log_path.open("rb") as log:
            log.seek(since)
            return log.read().decode("utf-8", "replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def _proc_cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def _postgres_cpu_seconds() -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith("postgres"):
            total += _proc_cpu_seconds(int(entry.name)) or 0.0
    return total


# --------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Call:
    method: str
    target: str  # path and query
    headers: dict[str, str]
    body: bytes = b""


class Connection(Protocol):
    async def send(self, call: Call) -> tuple[int, bytes]: ...

    async def close(self) -> None: ...


class RawConnection:
    """A minimal HTTP/1.1 keep-alive connection (every answer of this app carries
    Content-Length). Why not httpx: on 2 cores shared by client, server and database, httpx
    costs ~5x the client CPU per request, and its shared 64-connection pool collapsed to
    ~40 req/s on the no-I/O endpoint; the bench would have measured the client."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self, call: Call) -> tuple[int, bytes]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(HOST, self._port)
        reader, writer = self._streams
        lines = [
            f"{call.method} {call.target} HTTP/1.1",
            f"Host: {HOST}:{self._port}",
            *(f"{name}: {value}" for name, value in call.headers.items()),
            f"Content-Length: {len(call.body)}",
        ]
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + call.body)
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            status = int(head[0].split(" ", 2)[1])
            fields = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in head[1:] if line)
            }
            body = await reader.readexactly(int(fields["content-length"]))
        except BaseException:
            await self.close()
            raise
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, body

    async def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


class HttpxConnection:
    """httpx, for comparison (--client httpx): one client per worker, because one shared
    pool of 64 connections is far slower than the server it measures."""

    _tls: ssl.SSLContext | None = None  # unused over http://, but costly to build 64 times

    def __init__(self, port: int) -> None:
        if HttpxConnection._tls is None:
            HttpxConnection._tls = ssl.create_default_context()
        self._client = httpx.AsyncClient(
            base_url=f"http://{HOST}:{port}",
            verify=HttpxConnection._tls,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=REQUEST_TIMEOUT_SECONDS,
            trust_env=False,  # never through a proxy
        )

    async def send(self, call: Call) -> tuple[int, bytes]:
        response = await self._client.request(
            call.method, call.target, headers=call.headers, content=call.body or None
        )
        return response.status_code, response.content

    async def close(self) -> None:
        await self._client.aclose()


CONNECTIONS: dict[str, Callable[[int], Connection]] = {
    "raw": RawConnection,
    "httpx": HttpxConnection,
}
# What a failed request raises: connection trouble, a malformed answer, a timeout.
REQUEST_ERRORS = (OSError, EOFError, ValueError, KeyError, IndexError, httpx.HTTPError)


def classify(status: int, body: bytes, ok_status: int) -> Outcome:
    locked = b"database is locked" in body
    if status == ok_status:
        return Outcome("ok", locked=locked)
    code = ""
    with contextlib.suppress(ValueError, AttributeError):
        code = str(json.loads(body).get("code", ""))
    if status == 409:
        return Outcome("refused", code or "409", locked)
    return Outcome("error", f"{status} {code}".strip(), locked)


def _system_busy_seconds() -> float:
    """CPU time spent by the whole machine (all cores), idle, iowait and steal excluded."""
    user, nice, system, _idle, _iowait, irq, softirq = (
        int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]
    )
    return (user + nice + system + irq + softirq) / CLK_TCK


def _others_cpu_seconds(server: Server, measure_postgres: bool) -> float:
    ours = server.cpu_seconds() + time.process_time()
    if measure_postgres:
        ours += _postgres_cpu_seconds()
    return _system_busy_seconds() - ours


async def wait_until_quiet(server: Server, measure_postgres: bool, max_wait: float) -> float:
    """On a shared machine, wait (at most ``max_wait`` s) for a second in which other
    processes use under QUIET_OTHER_CPU % of one core; returns the last reading."""
    deadline = time.monotonic() + max_wait
    while True:
        before = _others_cpu_seconds(server, measure_postgres)
        await asyncio.sleep(1.0)
        other = (_others_cpu_seconds(server, measure_postgres) - before) * 100
        if other < QUIET_OTHER_CPU or time.monotonic() >= deadline:
            return other


async def run_phase(
    server: Server,
    *,
    name: str,
    clients: int,
    duration: float,
    next_call: Callable[[], Call],
    ok_status: int,
    connection: Callable[[int], Connection],
    measure_postgres: bool,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> Phase:
    """``clients`` workers, each on its own keep-alive connection, issue requests back to
    back for a warm-up and then ``duration`` seconds; requests finishing inside the measured
    window are the sample."""
    phase = Phase(name=name, clients=clients, duration=duration)
    connections = [connection(server.port) for _ in range(clients)]  # before the clock starts
    loop = asyncio.get_running_loop()
    measure_from = loop.time() + WARMUP_SECONDS
    end = measure_from + duration

    async def worker(conn: Connection) -> None:
        try:
            while (began := loop.time()) < end:
                try:
                    async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                        outcome = classify(*await conn.send(next_call()), ok_status)
                except REQUEST_ERRORS as exc:
                    outcome = Outcome("error", type(exc).__name__)
                finished = loop.time()
                if on_outcome is not None:
                    on_outcome(outcome)
                if measure_from <= finished <= end:
                    phase.record(outcome, finished - began)
        finally:
            await conn.close()

    async def sample_cpu() -> None:
        def snapshot() -> tuple[float, float, float, float]:
            pg = _postgres_cpu_seconds() if measure_postgres else 0.0
            return server.cpu_seconds(), pg, time.process_time(), _system_busy_seconds()

        await asyncio.sleep(max(0.0, measure_from - loop.time()))
        before, log_from = snapshot(), server.log_size()
        await asyncio.sleep(max(0.0, end - loop.time()))
        after = snapshot()
        phase.locked_in_log = server.log(log_from).count("database is locked")
        srv, pg, cli, busy = ((a - b) * 100 / duration for a, b in zip(after, before, strict=True))
        phase.cpu = Cpu(srv, pg if measure_postgres else None, cli, busy - srv - pg - cli)

    async with asyncio.TaskGroup() as group:
        group.create_task(sample_cpu())
        for conn in connections:
            group.create_task(worker(conn))
    return phase


# --------------------------------------------------------------------------- one database


@dataclass
class DatabaseRun:
    label: str
    seed_seconds: float
    phases: list[Phase]
    invariants: list[tuple[str, int]]
    log_summary: list[str]
    probe_notes: list[str]


@contextlib.contextmanager
def throwaway_database(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        directory = Path(tempfile.mkdtemp(prefix="mw_bench_"))
        try:
            yield f"sqlite:///{directory / 'bench.db'}"
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    name = f"mw_bench_{secrets.token_hex(4)}"
    asyncio.run(_admin_sql(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(_admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin_sql(statement: str) -> None:
    engine = create_async_engine(normalize_database_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


def bench_database(kind: str, args: argparse.Namespace) -> DatabaseRun:
    # The bench is the load generator: what an earlier database's run left in its heap must
    # not slow its clients down in the next (collections walking it during a phase).
    gc.collect()
    gc.freeze()
    secret = secrets.token_urlsafe(48)
    with throwaway_database(kind) as url, tempfile.TemporaryDirectory() as logs:
        seeding = time.perf_counter()
        migrate.upgrade(url)
        world = asyncio.run(seed(url, secret))
        seed_seconds = time.perf_counter() - seeding
        server = Server(url, secret, Path(logs) / "server.log", dict(args.server_env))
        try:
            server.wait_healthy()
            phases, created, notes = asyncio.run(run_phases(kind, server, world, args))
            invariants = asyncio.run(check_invariants(url, created))
            log_summary = summarize_log(server.log())
        finally:
            server.stop()
    label = "SQLite" if kind == "sqlite" else "PostgreSQL"
    return DatabaseRun(label, seed_seconds, phases, invariants, log_summary, notes)


async def run_phases(
    kind: str, server: Server, world: World, args: argparse.Namespace
) -> tuple[list[Phase], int, list[str]]:
    rng = random.Random(args.seed)
    pairs = claim_pairs(world, rng)
    created = 0

    def count_created(outcome: Outcome) -> None:
        nonlocal created
        created += outcome.kind == "ok"

    def claim() -> Call:
        wish_id, member_id = next(pairs)
        return Call(
            "POST", f"/v1/wishes/{wish_id}/claims", world.member_headers[member_id], CLAIM_BODY
        )

    keys = itertools.count()

    def keyed_claim() -> Call:
        """As the phone app sends it: with an Idempotency-Key (its response is stored in the
        claim's transaction, so the claim cannot be a transaction of its own)."""
        call = claim()
        return Call(
            call.method,
            call.target,
            {**call.headers, "Idempotency-Key": f"bench-{next(keys)}"},
            call.body,
        )

    noop = Call("GET", "/bench/noop", world.member_headers[world.members[0][0]])
    first_page = Call("GET", f"/v1/wishes?limit={PAGE_LIMIT}", world.lister_headers)
    deep_page = Call(
        "GET", f"/v1/wishes?limit={PAGE_LIMIT}&cursor={world.deep_cursor}", world.lister_headers
    )

    notes = [
        await probe(server, "first page", first_page),
        await probe(server, "deep page", deep_page),
    ]
    connection = CONNECTIONS[args.client]
    measure_pg = kind == "postgresql"

    async def phase(
        name: str, clients: int, next_call: Callable[[], Call], ok_status: int = 200
    ) -> Phase:
        other = await wait_until_quiet(server, measure_pg, args.quiet_wait)
        if other >= QUIET_OTHER_CPU:
            notes.append(f"{name}: started while other processes used {other:.0f}% CPU")
        return await run_phase(
            server,
            name=name,
            clients=clients,
            duration=args.duration,
            next_call=next_call,
            ok_status=ok_status,
            connection=connection,
            measure_postgres=measure_pg,
            on_outcome=count_created if ok_status == 201 else None,
        )

    wanted = set(args.phases)
    phases = []
    if "noop" in wanted:
        phases.append(await phase("noop", args.clients, lambda: noop))
    if "claims" in wanted:
        phases.append(await phase("claims", args.clients, claim, 201))
        phases.append(await phase("claims+key", args.clients, keyed_claim, 201))
        if kind == "sqlite":
            phases.append(await phase(f"claims/{args.writers}w", args.writers, claim, 201))
    if "list" in wanted:
        phases.append(await phase("list first", args.clients, lambda: first_page))
        phases.append(await phase("list deep", args.clients, lambda: deep_page))
    return phases, created, notes


async def probe(server: Server, label: str, call: Call) -> str:
    """One request first, to make sure the page measured is a real page."""
    conn = RawConnection(server.port)
    try:
        status, body = await conn.send(call)
    finally:
        await conn.close()
    if status != 200:
        return f"{label} probe: HTTP {status} {body[:200]!r}"
    page = json.loads(body)
    items = page.get("items", [])
    if not items:
        return f"{label} probe: no items"
    return (
        f"{label} probe: {len(items)} items, ids {items[0]['id']}..{items[-1]['id']}, "
        f"next_cursor {'set' if page.get('next_cursor') else 'null'}, {len(body):,} bytes"
    )


def summarize_log(log: str) -> list[str]:
    lines = log.splitlines()
    counts = {
        marker: sum(marker in line for line in lines)
        for marker in ("ERROR", "Traceback", "database is locked", "OperationalError")
    }
    summary = [", ".join(f"{marker}: {count}" for marker, count in counts.items())]
    distinct = list(dict.fromkeys(line.strip()[:160] for line in lines if "ERROR" in line))
    summary += [f"  {line}" for line in distinct[:8]]
    return summary


# --------------------------------------------------------------------------- report


def print_run(run: DatabaseRun) -> list[tuple[str, bool, str]]:
    noop = next((phase for phase in run.phases if phase.name == "noop"), None)
    print(f"\n== {run.label}  (migrate + seed {run.seed_seconds:.1f} s)")
    headers = [
        "phase",
        "clients",
        "requests",
        "ok",
        "409",
        "errors",
        "req/s",
        "ok/s",
        "p50 ms",
        "p99 ms",
        "x noop req/s",
        "x noop p99",
        "cpu% srv/db/cli/other",
        "cpu ms/req srv+db",
    ]
    rows = []
    for phase in run.phases:
        rows.append(
            [
                phase.name,
                str(phase.clients),
                str(phase.requests),
                str(phase.ok),
                str(phase.refused),
                str(phase.errors),
                f"{phase.throughput:.0f}",
                f"{phase.ok_throughput:.0f}",
                f"{phase.percentile_ms(0.50):.1f}",
                f"{phase.percentile_ms(0.99):.1f}",
                _ratio(phase.ok_throughput, noop.ok_throughput) if noop else "-",
                _ratio(phase.percentile_ms(0.99), noop.percentile_ms(0.99)) if noop else "-",
                str(phase.cpu or "-"),
                phase.cpu_per_request(),
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print(
        "  ".join(
            h.rjust(w) if i else h.ljust(w)
            for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    )
    for row in rows:
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )

    for phase in run.phases:
        if (
            phase.refusal_codes
            or phase.error_kinds
            or phase.locked_in_log
            or phase.locked_in_bodies
        ):
            parts = []
            if phase.refusal_codes:
                parts.append("409s " + _counts(phase.refusal_codes))
            if phase.error_kinds:
                parts.append("errors " + _counts(phase.error_kinds))
            if phase.locked_in_bodies or phase.locked_in_log:
                parts.append(
                    f"'database is locked': {phase.locked_in_bodies} in bodies, "
                    f"{phase.locked_in_log} in server log"
                )
            print(f"  {phase.name}: " + "; ".join(parts))
    for note in run.probe_notes:
        print(f"  {note}")
    print("  invariants:")
    for name, violations in run.invariants:
        print(
            f"    {'PASS' if violations == 0 else 'FAIL'}  {name}"
            + (f"  ({violations} violations)" if violations else "")
        )
    print("  server log: " + run.log_summary[0])
    for line in run.log_summary[1:]:
        print(f"  {line}")
    return targets(run)


def _div(value: float, reference: float) -> float:
    """NaN (never "met") when the reference phase produced nothing to compare with."""
    return value / reference if reference > 0 else float("nan")


def _ratio(value: float, reference: float) -> str:
    return f"{_div(value, reference):.2f}"


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key}={count}" for key, count in counter.most_common())


def targets(run: DatabaseRun) -> list[tuple[str, bool, str]]:
    by_name = {phase.name: phase for phase in run.phases}
    invariants_ok = all(violations == 0 for _, violations in run.invariants)
    results = [(f"{run.label}: invariants hold", invariants_ok, "")]
    if not {"noop", "claims", "list first"} <= by_name.keys():
        return results  # a subset of the phases (--phases): no targets to judge
    noop = by_name["noop"]
    claims = by_name["claims"]
    if run.label == "PostgreSQL":
        ratio = _div(claims.ok_throughput, noop.ok_throughput)
        p99_ratio = _div(claims.percentile_ms(0.99), noop.percentile_ms(0.99))
        results += [
            (
                f"PostgreSQL: claims/s >= {TARGET_CLAIM_THROUGHPUT_RATIO:.0%} of noop req/s",
                ratio >= TARGET_CLAIM_THROUGHPUT_RATIO,
                f"{claims.ok_throughput:.0f} vs {noop.ok_throughput:.0f} = {ratio:.0%}",
            ),
            (
                f"PostgreSQL: claim p99 <= {TARGET_CLAIM_P99_RATIO:g}x noop p99",
                p99_ratio <= TARGET_CLAIM_P99_RATIO,
                f"{claims.percentile_ms(0.99):.1f} vs {noop.percentile_ms(0.99):.1f} ms"
                f" = {p99_ratio:.1f}x",
            ),
        ]
        for name in ("list first", "list deep"):
            page = by_name[name]
            page_ratio = _div(page.ok_throughput, noop.ok_throughput)
            results.append(
                (
                    f"PostgreSQL: {name} page/s >= {TARGET_LIST_THROUGHPUT_RATIO:.0%} of noop",
                    page_ratio >= TARGET_LIST_THROUGHPUT_RATIO,
                    f"{page.ok_throughput:.0f} vs {noop.ok_throughput:.0f} = {page_ratio:.0%}",
                )
            )
    else:
        writers = next(p for p in run.phases if p.name.startswith("claims/"))
        locked = writers.locked_in_bodies + writers.locked_in_log
        results.append(
            (
                f"SQLite: zero 'database is locked' at {writers.clients} writers",
                locked == 0 and writers.errors == 0,
                f"{locked} locked, {writers.errors} errors ({_counts(writers.error_kinds) or '-'})",
            )
        )
    return results


def _server_setting(value: str) -> tuple[str, str]:
    name, equals, setting = value.partition("=")
    if not equals or not name.startswith("MICROWISH_"):
        raise argparse.ArgumentTypeError(f"expected MICROWISH_X=VALUE, got {value!r}")
    return name, setting


def add_server_env_option(parser: argparse.ArgumentParser) -> None:
    """``--server-env MICROWISH_X=VALUE`` (repeatable): settings for the server under test."""
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="MICROWISH_X=VALUE",
        type=_server_setting,
        help="a setting for the server under test (repeatable), e.g. MICROWISH_DB_POOL_SIZE=40",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--writers", type=int, default=16, help="SQLite writer phase")
    parser.add_argument("--seed", type=int, default=1, help="random seed for claim order")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each phase, wait up to this many seconds for other processes to go quiet",
    )
    parser.add_argument(
        "--client",
        choices=sorted(CONNECTIONS),
        default="raw",
        help="HTTP client (see RawConnection)",
    )
    parser.add_argument(
        "--phases",
        type=lambda value: value.split(","),
        default=list(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)} (e.g. to profile one phase)",
    )
    add_server_env_option(parser)
    args = parser.parse_args()
    if unknown := set(args.phases) - set(PHASES):
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    if not 1 <= args.clients <= 1000 or not 1 <= args.writers <= 1000:
        parser.error("--clients and --writers must be between 1 and 1000")
    if not 0 < args.duration <= 600:
        parser.error("--duration must be between 0 and 600 seconds")

    print(
        f"microwish claim bench  {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC  "
        f"nproc={os.cpu_count()}  python {platform.python_version()}  "
        f"sqlite {sqlite3.sqlite_version}  httpx {httpx.__version__}"
    )
    print(
        f"{args.clients} clients, {args.duration:g} s per phase "
        f"after {WARMUP_SECONDS:g} s warm-up; "
        f"{COMMUNITIES * MEMBERS_PER_COMMUNITY} members, hot set "
        f"{COMMUNITIES * HOT_BLOCK_PER_COMMUNITY} wishes x {HOT_SLOTS} slots at a time "
        f"(pool {COMMUNITIES * HOT_WISHES_PER_COMMUNITY}), {LISTING_WISHES:,} listed wishes"
    )
    print(
        "ok/s and 'x noop' compare successful requests. cpu% is of one core over the measured "
        "window: srv = uvicorn, db = postgres processes, cli = this bench, other = the rest of "
        "the machine"
    )
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    verdicts: list[tuple[str, bool, str]] = []
    for kind in kinds:
        verdicts += print_run(bench_database(kind, args))
    print("\n== targets")
    for name, met, detail in verdicts:
        print(f"  {'met    ' if met else 'NOT MET'}  {name}" + (f"  ({detail})" if detail else ""))


if __name__ == "__main__":
    main()
