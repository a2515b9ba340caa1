"""A real uvicorn server process on 127.0.0.1 and fast SQL seeding, for concurrency tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import create_async_engine

from app.accounts.models import User
from app.core.config import normalize_database_url
from app.core.db import utcnow
from app.core.security import issue_access_token
from app.members.models import Member, MemberArea
from app.regions.models import Region
from app.wishes.models import Wish
from tests.conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def live_server(database_url: str, log_path: Path, **env: str) -> Iterator[str]:
    """uvicorn serving app.main:app against ``database_url``; yields its base URL."""
    port = free_port()
    environment = {
        **os.environ,
        "MICROWISH_DATABASE_URL": database_url,
        "MICROWISH_ENV": "test",
        "MICROWISH_SECRET_KEY": TEST_SECRET,
        "MICROWISH_DB_POOL_SIZE": "20",
        "MICROWISH_LOG_LEVEL": "WARNING",
        **env,
    }
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                os.environ.get("MICROWISH_TEST_SERVER_LOG_LEVEL", "warning"),
                # Longer than any pause of a loaded test client between two requests on a
                # kept-alive connection: a server closing it just as the client reuses it
                # fails that request with a ReadError (httpx does not retry it).
                "--timeout-keep-alive",
                "60",
            ],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"server exited: {log_path.read_text()[-2000:]}")
                try:
                    if httpx.get(f"{base_url}/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not become healthy within 30 s")
                time.sleep(0.1)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@contextmanager
def checked_server(database_url: str, log_dir: Path, **env: str) -> Iterator[str]:
    """``live_server`` whose log must end with no traceback and no "database is locked"."""
    log = log_dir / "server.log"
    with live_server(database_url, log, **env) as base_url:
        yield base_url
    output = log.read_text()
    assert "Traceback" not in output, output[-3000:]
    assert "database is locked" not in output


@dataclass
class Population:
    community_id: int
    resident_id: int
    member_ids: list[int] = field(default_factory=list)
    wish_ids: list[int] = field(default_factory=list)

    def headers(self, user_id: int) -> dict[str, str]:
        token = issue_access_token(user_id=user_id, secret_key=TEST_SECRET, ttl_seconds=3600)
        return {"Authorization": f"Bearer {token}"}


async def seed(
    database_url: str, *, member_capacities: Sequence[int], wish_slots: Sequence[int]
) -> Population:
    """One community, active members with the given capacities, open wishes with the
    given slots: inserted directly, so a test can start its rush at once."""
    engine = create_async_engine(normalize_database_url(database_url))
    now = utcnow()
    try:
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
            count = len(member_capacities) + 1
            users = (
                (
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
                            for index in range(count)
                        ],
                    )
                )
                .scalars()
                .all()
            )
            resident_id, member_ids = users[0], list(users[1:])
            if member_ids:
                await connection.execute(
                    insert(Member),
                    [
                        {
                            "user_id": member_id,
                            "community_id": community,
                            "status": "active",
                            "capacity": capacity,
                            "active_claims": 0,
                            "created_at": now,
                            "updated_at": now,
                        }
                        for member_id, capacity in zip(member_ids, member_capacities, strict=True)
                    ],
                )
                await connection.execute(
                    insert(MemberArea),
                    [{"member_id": member_id, "region_id": community} for member_id in member_ids],
                )
            wish_ids = (
                (
                    await connection.execute(
                        insert(Wish).returning(Wish.id),
                        [
                            {
                                "resident_id": resident_id,
                                "creator_id": resident_id,
                                "beneficiary_name": "王阿姨",
                                "region_id": community,
                                "district_id": district,
                                "street_id": street,
                                "community_id": community,
                                "category": "repair",
                                "title": f"心愿{index}",
                                "description": "",
                                "slots_total": slots,
                                "slots_claimed": 0,
                                "slots_fulfilled": 0,
                                "status": "open",
                                "created_at": now,
                                "updated_at": now,
                                "version": 1,
                            }
                            for index, slots in enumerate(wish_slots)
                        ],
                    )
                )
                .scalars()
                .all()
            )
    finally:
        await engine.dispose()
    return Population(
        community_id=community,
        resident_id=resident_id,
        member_ids=member_ids,
        wish_ids=list(wish_ids),
    )
