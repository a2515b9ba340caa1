"""What the delta-sync triggers (migration 0010) cost the claim path.

Claims go through the app's own service function (``app.claims.service.claim_wish``: the
one-statement claim on PostgreSQL, three statements on SQLite, plus the resident's
notification), one transaction each, one after another on one connection, alternately with
the triggers on and off, in the same freshly migrated database. The measure is CPU per
claim of the database's own work, which the rest of a shared machine does not disturb:

* PostgreSQL: the serving backend's CPU time (``/proc/<pid>/schedstat``, nanoseconds), so
  only this connection's work counts, not the machine's other postgres processes;
* SQLite (in-process): this process's CPU time, i.e. the whole claim in Python and SQLite.

Rounds alternate off/on so drift hits both; the medians and their ratio are reported.
Talks to 127.0.0.1 only; the PostgreSQL database is throw-away (``mw_bench_sync_*``).

    .venv/bin/python bench/sync_triggers.py [--db postgresql|sqlite|both] [--claims N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.accounts.models import User
from app.claims.service import claim_wish
from app.core import migrate
from app.core.actor import Actor
from app.core.config import Settings, normalize_database_url
from app.core.db import Database, create_database, utcnow
from app.members.models import Member, MemberArea
from app.regions.models import Region
from app.wishes.models import Wish

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
TABLES = ("wishes", "claims", "notifications")
_SYNC_TRIGGERS = "FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%sync%'"
MEMBERS = 200
MEMBER_CAPACITY = 50
WISHES = 200
WISH_SLOTS = 100


@dataclass
class World:
    member_ids: list[int]
    wish_ids: list[int]
    next_claim: int = 0

    def claims(self, count: int) -> list[tuple[int, int]]:
        """(member, wish) pairs: never a member twice on a wish, one claim per member per
        pass over the wishes, so nothing refuses until capacity runs out."""
        pairs = []
        for index in range(self.next_claim, self.next_claim + count):
            wish_index, lap = index % len(self.wish_ids), index // len(self.wish_ids)
            member = self.member_ids[(wish_index + lap) % len(self.member_ids)]
            pairs.append((member, self.wish_ids[wish_index]))
        self.next_claim += count
        return pairs


async def seed(engine: AsyncEngine) -> World:
    now = utcnow()
    async with engine.begin() as connection:

        async def region(kind: str, name: str, parent: int | None, **levels: int) -> int:
            region_id: int = (
                await connection.execute(
                    insert(Region)
                    .values(kind=kind, name=name, parent_id=parent, created_at=now, **levels)
                    .returning(Region.id)
                )
            ).scalar_one()
            await connection.execute(
                update(Region).where(Region.id == region_id).values({f"{kind}_id": region_id})
            )
            return region_id

        district = await region("district", "瑶海区", None)
        street = await region("street", "七里站街道", district, district_id=district)
        community = await region(
            "community", "东七社区", street, district_id=district, street_id=street
        )
        users = (
            await connection.execute(
                insert(User).returning(User.id),
                [
                    {
                        "phone": f"+86137{index:08d}",
                        "display_name": f"用户{index}",
                        "password_hash": None,
                        "is_admin": False,
                        "created_at": now,
                    }
                    for index in range(MEMBERS + 1)
                ],
            )
        ).scalars()
        resident, *members = list(users)
        await connection.execute(
            insert(Member),
            [
                {
                    "user_id": member,
                    "community_id": community,
                    "status": "active",
                    "capacity": MEMBER_CAPACITY,
                    "active_claims": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for member in members
            ],
        )
        await connection.execute(
            insert(MemberArea), [{"member_id": m, "region_id": community} for m in members]
        )
        wishes = (
            await connection.execute(
                insert(Wish).returning(Wish.id),
                [
                    {
                        "resident_id": resident,
                        "creator_id": resident,
                        "beneficiary_name": "王阿姨",
                        "region_id": community,
                        "district_id": district,
                        "street_id": street,
                        "community_id": community,
                        "category": "repair",
                        "title": f"心愿{index}",
                        "description": "",
                        "slots_total": WISH_SLOTS,
                        "slots_claimed": 0,
                        "slots_fulfilled": 0,
                        "status": "open",
                        "created_at": now,
                        "updated_at": now,
                        "version": 1,
                    }
                    for index in range(WISHES)
                ],
            )
        ).scalars()
        return World(member_ids=members, wish_ids=list(wishes))


class Triggers:
    """Turns the sync triggers off and on again."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.saved: list[str] = []

    async def set(self, on: bool) -> None:
        async with self.engine.begin() as connection:
            if self.engine.dialect.name == "postgresql":
                verb = "ENABLE" if on else "DISABLE"
                for table in TABLES:
                    await connection.execute(
                        text(f"ALTER TABLE {table} {verb} TRIGGER {table}_sync_stamp")
                    )
                return
            if not self.saved:
                rows = await connection.execute(text(f"SELECT sql {_SYNC_TRIGGERS}"))
                self.saved = [row[0] for row in rows]
                assert len(self.saved) == 2 * len(TABLES), self.saved
            names = await connection.execute(text(f"SELECT name {_SYNC_TRIGGERS}"))
            for (name,) in names.all():
                await connection.execute(text(f"DROP TRIGGER {name}"))
            if on:
                for sql in self.saved:
                    await connection.execute(text(sql))


async def per_row(engine: AsyncEngine, triggers: Triggers, repeats: int = 5) -> None:
    """The triggers alone: an UPDATE of every claim (rolled back), with and without them.
    PostgreSQL also reports the trigger's own time (EXPLAIN ANALYZE)."""
    bulk = "UPDATE claims SET updated_at = updated_at"
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT count(*) FROM claims"))).scalar_one()
    timings: dict[bool, list[float]] = {False: [], True: []}
    trigger_us: list[float] = []
    for _ in range(repeats):
        for on in (False, True):
            await triggers.set(on)
            async with engine.connect() as connection:
                transaction = await connection.begin()
                if engine.dialect.name == "postgresql":
                    plan = await connection.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {bulk}"))
                    report = plan.scalar_one()[0]
                    timings[on].append(report["Execution Time"] * 1000 / rows)
                    for trigger in report.get("Triggers", []):
                        trigger_us.append(trigger["Time"] * 1000 / trigger["Calls"])
                else:
                    start = time.process_time_ns()
                    await connection.execute(text(bulk))
                    timings[on].append((time.process_time_ns() - start) / 1000 / rows)
                await transaction.rollback()
    await triggers.set(True)
    single: list[float] = []
    if engine.dialect.name == "postgresql":
        # As the claim path meets it: one row per statement, a statement or two per
        # transaction, on a connection that has called the trigger before.
        async with engine.connect() as connection:
            for attempt in range(41):
                transaction = await connection.begin()
                plan = await connection.execute(
                    text(f"EXPLAIN (ANALYZE, FORMAT JSON) {bulk} WHERE id = {attempt + 1}")
                )
                if attempt:  # the first call on a connection compiles the function
                    for trigger in plan.scalar_one()[0].get("Triggers", []):
                        single.append(trigger["Time"] * 1000 / trigger["Calls"])
                await transaction.rollback()
    off, on = statistics.median(timings[False]), statistics.median(timings[True])
    if single:
        print(
            f"trigger's own time, one-row UPDATE in its own transaction (median of "
            f"{len(single)}): {statistics.median(single):.1f} µs"
        )
    print(
        f"per stamped row (UPDATE of all {rows} claims, median of {repeats}): "
        f"off {off:.2f} µs, on {on:.2f} µs ({on - off:+.2f} µs)"
        + (f"; trigger's own time {statistics.median(trigger_us):.2f} µs" if trigger_us else "")
        + "; a claim stamps 3 rows (wish, claim, notification)"
    )


def _backend_cpu_ns(pid: int) -> int:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


async def run_batch(database: Database, pairs: list[tuple[int, int]]) -> tuple[float, float]:
    """Claims one transaction each; returns (database CPU µs, wall µs) per claim."""
    pid = None
    if not database.is_sqlite:
        async with database.transaction(write=True) as session:
            pid = int(await session.scalar(text("SELECT pg_backend_pid()")))  # type: ignore[arg-type]
    cpu_start = _backend_cpu_ns(pid) if pid else time.process_time_ns()
    wall_start = time.perf_counter_ns()
    for member, wish in pairs:
        async with database.transaction(write=True) as session:
            await claim_wish(session, Actor(user_id=member), wish_id=wish, slots=1)
    wall = time.perf_counter_ns() - wall_start
    cpu = (_backend_cpu_ns(pid) if pid else time.process_time_ns()) - cpu_start
    if pid is not None:
        async with database.transaction(write=True) as session:
            same = await session.scalar(text("SELECT pg_backend_pid()"))
        assert same == pid, "the pool switched connections"
    return cpu / len(pairs) / 1000, wall / len(pairs) / 1000


def bench(backend: str, url: str, claims: int, rounds: int) -> None:
    migrate.upgrade(url)  # runs its own event loop
    asyncio.run(_bench(backend, url, claims, rounds))


async def _bench(backend: str, url: str, claims: int, rounds: int) -> None:
    engine = create_async_engine(normalize_database_url(url))
    settings = Settings(
        env="test",
        database_url=url,
        secret_key="bench-secret-key-that-is-long-enough-0123456789",
        db_pool_size=1,
        db_max_overflow=0,
    )
    database = create_database(settings)
    try:
        world = await seed(engine)
        triggers = Triggers(engine)
        results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        await triggers.set(True)
        await run_batch(database, world.claims(200))  # warm-up: caches, plans, pool
        what = "backend CPU" if backend == "postgresql" else "process CPU"
        print(f"\n{backend}: {claims} claims per batch, {rounds} rounds; {what} per claim")
        print(f"{'round':>5} {'triggers':>8} {'cpu µs':>9} {'wall µs':>9}")
        for round_number in range(1, rounds + 1):
            for on in (False, True) if round_number % 2 else (True, False):
                await triggers.set(on)
                cpu, wall = await run_batch(database, world.claims(claims))
                results[on].append((cpu, wall))
                print(f"{round_number:>5} {'on' if on else 'off':>8} {cpu:>9.1f} {wall:>9.1f}")
        async with engine.connect() as connection:
            stamped = (
                await connection.execute(text("SELECT count(*) FROM claims WHERE sync_version > 0"))
            ).scalar_one()
        off_cpu = statistics.median(cpu for cpu, _ in results[False])
        on_cpu = statistics.median(cpu for cpu, _ in results[True])
        off_wall = statistics.median(wall for _, wall in results[False])
        on_wall = statistics.median(wall for _, wall in results[True])
        print(
            f"median {what}/claim: off {off_cpu:.1f} µs, on {on_cpu:.1f} µs "
            f"({on_cpu - off_cpu:+.1f} µs, {100 * (on_cpu / off_cpu - 1):+.1f}%); "
            f"wall/claim: off {off_wall:.1f} µs, on {on_wall:.1f} µs "
            f"({100 * (on_wall / off_wall - 1):+.1f}%)"
        )
        print(f"claims stamped by the trigger: {stamped} (the on batches and the warm-up)")
        await per_row(engine, triggers)
    finally:
        await database.dispose()
        await engine.dispose()


async def _pg_admin(statement: str) -> None:
    engine = create_async_engine(normalize_database_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--claims", type=int, default=1500, help="claims per batch")
    parser.add_argument("--rounds", type=int, default=5, help="off/on pairs")
    args = parser.parse_args()
    capacity = MEMBERS * MEMBER_CAPACITY
    if not 1 <= args.rounds * 2 * args.claims + 200 <= capacity:
        parser.error(f"rounds x 2 x claims + 200 must stay within {capacity}")
    print(f"microwish sync-trigger bench  nproc={os.cpu_count()}", flush=True)
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite:///{Path(directory) / 'bench.db'}"
            bench("sqlite", url, args.claims, args.rounds)
    if args.db in ("postgresql", "both"):
        name = f"mw_bench_sync_{uuid.uuid4().hex[:8]}"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
            bench("postgresql", url, args.claims, args.rounds)
        finally:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
