"""Delta sync while others write: against a real server, and with a transaction that commits
after a sync that could not see it."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.config import normalize_database_url
from app.core.db import UTCDateTime, utcnow
from tests.conftest import Api
from tests.invariants import violations
from tests.live import Population, checked_server, seed
from tests.sync.replica import Replica, assert_same, server_state
from tests.world import World, build_world

pytestmark = pytest.mark.anyio

TIMEOUT = httpx.Timeout(60.0)
WRITE_SECONDS = 4.0
# Each writer goes on past WRITE_SECONDS until it has done this much, so a slow or busy
# machine still gives the syncs a real load to keep up with.
MIN_WRITES_EACH = 10
MIN_SLOW_ROUNDS = 5


@pytest.fixture(scope="module")
def running_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Rate limits off: the writers here are a load, not people."""
    log_dir = tmp_path_factory.mktemp("sync-server")
    with checked_server(database_url, log_dir, MICROWISH_RATE_LIMITS="off") as base_url:
        yield base_url


async def _writer(
    http: httpx.AsyncClient, people: Population, member_id: int, stop: float, seed_: int
) -> int:
    """Claims, withdrawals and now and then a fulfilment, until ``stop`` and at least
    ``MIN_WRITES_EACH`` of them changed something; returns how many did."""
    rng = random.Random(seed_)
    headers = people.headers(member_id)
    held: list[str] = []
    done = attempts = 0
    while (time.monotonic() < stop or done < MIN_WRITES_EACH) and attempts < 50 * MIN_WRITES_EACH:
        attempts += 1
        if held and rng.random() < 0.45:
            claim_id = held.pop(rng.randrange(len(held)))
            verb = "fulfil" if rng.random() < 0.1 else "withdraw"
            response = await http.post(f"/v1/claims/{claim_id}/{verb}", headers=headers)
        else:
            wish_id = rng.choice(people.wish_ids)
            response = await http.post(
                f"/v1/wishes/{wish_id}/claims", json={"slots": 1}, headers=headers
            )
            if response.status_code == 201:
                held.append(response.json()["id"])
        assert response.status_code in (200, 201, 409), response.text
        done += response.status_code in (200, 201)
    return done


async def _slow_writer(database_url: str, resident_id: int, stop: float, seed_: int) -> int:
    """Transactions that take their time between writing and committing (as a batch job
    would), while the server's quick ones commit around them: marks the resident's
    notifications read, one per transaction. Nothing touches such a row again, so a sync
    that skipped one of these commits would never put it right."""
    rng = random.Random(seed_)
    engine = create_async_engine(
        normalize_database_url(database_url),
        connect_args={"timeout": 30} if "sqlite" in database_url else {},
    )
    done = rounds = 0
    try:
        while time.monotonic() < stop or rounds < MIN_SLOW_ROUNDS:
            rounds += 1
            async with engine.connect() as connection:
                if engine.dialect.name == "sqlite":
                    await connection.exec_driver_sql("BEGIN IMMEDIATE")
                marked = await connection.execute(
                    text(
                        "UPDATE notifications SET read_at = :now WHERE id = (SELECT min(id) "
                        "FROM notifications WHERE user_id = :user AND read_at IS NULL)"
                    ).bindparams(bindparam("now", type_=UTCDateTime())),
                    {"now": utcnow(), "user": resident_id},
                )
                # Short on SQLite, where it holds the only write lock.
                await asyncio.sleep(
                    rng.uniform(0.05, 0.2) if engine.dialect.name == "postgresql" else 0.02
                )
                await connection.commit()
                done += marked.rowcount
            await asyncio.sleep(0.01)
    finally:
        await engine.dispose()
    return done


async def _syncer(
    http: httpx.AsyncClient, replica: Replica, headers: dict[str, str], writing: asyncio.Event
) -> int:
    """Pulls, in small pages, over and over while the writers run."""
    pulls = 0
    while writing.is_set():
        await replica.pull(http, headers, limit=7)
        pulls += 1
    return pulls


async def test_sync_with_concurrent_writers_misses_nothing(
    running_server: str, clean_database: str
) -> None:
    people = await seed(clean_database, member_capacities=[3] * 8, wish_slots=[1, 2, 3] * 6)
    community = str(people.community_id)
    writers = people.member_ids[:6]
    watcher = people.member_ids[7]  # claims nothing: sees open wishes come and go
    syncing = {
        people.resident_id: Replica(),  # owns every wish, hears of claims
        writers[0]: Replica(),  # syncs its own claims while making them
        watcher: Replica(),
    }
    limits = httpx.Limits(max_connections=20, max_keepalive_connections=20)
    async with httpx.AsyncClient(base_url=running_server, limits=limits, timeout=TIMEOUT) as http:
        for user_id, replica in syncing.items():
            await replica.pull(http, people.headers(user_id))
        writing = asyncio.Event()
        writing.set()
        stop = time.monotonic() + WRITE_SECONDS
        sync_tasks = [
            asyncio.create_task(_syncer(http, replica, people.headers(user_id), writing))
            for user_id, replica in syncing.items()
        ]
        slow = asyncio.create_task(
            _slow_writer(clean_database, people.resident_id, stop, len(writers))
        )
        writes = await asyncio.gather(
            *(
                _writer(http, people, member_id, stop, index)
                for index, member_id in enumerate(writers)
            )
        )
        marked = await slow
        writing.clear()
        pulls = await asyncio.gather(*sync_tasks)
        assert min(writes) >= MIN_WRITES_EACH, writes
        assert marked >= 3, marked
        assert min(pulls) >= 3, pulls

        # Quiet now: one more sync each, and the copies must equal the server's state.
        for user_id, replica in syncing.items():
            await replica.pull(http, people.headers(user_id))
            state = await server_state(
                http, people.headers(user_id), user_id=str(user_id), communities={community}
            )
            assert_same(replica, state)
        assert len(syncing[people.resident_id].wishes) == len(people.wish_ids)
        assert syncing[writers[0]].claims
    assert await violations(clean_database) == {}


async def test_a_transaction_committing_after_a_sync_is_in_the_next(api: Api) -> None:
    """A and B write; B starts after A but commits first; a sync runs between the two
    commits. On PostgreSQL it cannot see A, and A's id is below B's, so "changed after the
    newest version I saw" would miss A for good: the token (the snapshot's xmin) is at or
    below A's id, and the next sync has A. On SQLite writers are serialized: the sync waits
    for A's write lock and has A itself."""
    world: World = await build_world(api)
    member, _ = await world.member("C1")
    wish_a = await world.wish("C1")
    wish_b = await world.wish("C1")
    replica = Replica()
    await replica.pull(api.client, member)
    engine = create_async_engine(normalize_database_url(api.settings.database_url))
    try:
        async with engine.connect() as a, engine.connect() as b:
            postgres = engine.dialect.name == "postgresql"
            if not postgres:
                await a.exec_driver_sql("BEGIN IMMEDIATE")
            await a.execute(
                text("UPDATE wishes SET title = 'A 改过' WHERE id = :id"), {"id": int(wish_a["id"])}
            )
            if postgres:
                await b.execute(
                    text("UPDATE wishes SET title = 'B 改过' WHERE id = :id"),
                    {"id": int(wish_b["id"])},
                )
                await b.commit()
                between = await replica.pull(api.client, member)
                assert between.changed["wishes"] == [wish_b["id"]]
                assert replica.wishes[wish_a["id"]]["title"] != "A 改过"
                rows = await a.execute(text("SELECT id, sync_version FROM wishes"))
                versions: dict[int, int] = {row[0]: row[1] for row in rows}
                assert versions[int(wish_a["id"])] < versions[int(wish_b["id"])]
                await a.commit()
                after = await replica.pull(api.client, member)
                assert after.changed["wishes"] == [wish_a["id"]]
            else:
                waiting = asyncio.create_task(replica.pull(api.client, member))
                await asyncio.sleep(0.5)
                assert not waiting.done()  # the sync waits for A's write lock
                await a.commit()
                after = await waiting
                assert after.changed["wishes"] == [wish_a["id"]]
    finally:
        await engine.dispose()
    assert replica.wishes[wish_a["id"]]["title"] == "A 改过"
