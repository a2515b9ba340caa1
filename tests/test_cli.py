"""The console script, run as a user would, against each database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.config import normalize_database_url
from tests.conftest import TEST_SECRET, empty_all_tables
from tests.invariants import event_violations, violations

pytestmark = pytest.mark.anyio


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MICROWISH_DATABASE_URL": database_url,
        "MICROWISH_ENV": "test",
        "MICROWISH_SECRET_KEY": TEST_SECRET,
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_seed_demo_builds_the_district_once(clean_database: str) -> None:
    first = run_cli(clean_database, "seed-demo")
    assert first.returncode == 0, first.stderr
    assert "13 streets, 53 communities, 596 grids" in first.stdout
    assert "+8613800000000" in first.stdout
    assert "3000 members, 2000 residents, 5000 wishes" in first.stdout
    assert "demo claim events: 2" in first.stdout
    assert await violations(clean_database) == {}
    assert await event_violations(clean_database) == {}
    events = await _rows(clean_database, "SELECT status FROM claim_events ORDER BY id")
    assert [row[0] for row in events] == ["closed", "scheduled"]
    rows = await _rows(clean_database, "SELECT status, count(*) FROM wishes GROUP BY status")
    assert {row[0] for row in rows} == {
        "open",
        "claimed",
        "fulfilled",
        "confirmed",
        "pending_review",
        "rejected",
        "cancelled",
        "expired",
    }
    assert "+8613800000000  demo-admin-2026" in first.stdout
    # The demo admin's phone given its own password since: the listing does not lie.
    own = run_cli(
        clean_database, "create-admin", "--phone", "13800000000", "--password", "MyOwnPass123"
    )
    assert own.returncode == 0, own.stderr
    second = run_cli(clean_database, "seed-demo")
    assert second.returncode == 0, second.stderr
    assert "already there" in second.stdout
    assert "demo claim events" not in second.stdout
    assert "demo-admin-2026" not in second.stdout
    assert "its own password" in second.stdout
    await empty_all_tables(clean_database)


async def test_seed_demo_refuses_a_database_using_its_phone_numbers(clean_database: str) -> None:
    taken = run_cli(
        clean_database, "create-admin", "--phone", "13700000005", "--password", "long-password"
    )
    assert taken.returncode == 0, taken.stderr
    refused = run_cli(clean_database, "seed-demo")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: +8613700000005 already has an account")
    assert "Traceback" not in refused.stderr
    assert await _rows(clean_database, "SELECT count(*) FROM regions") == [(0,)]
    await empty_all_tables(clean_database)


def test_commands_on_a_database_never_migrated_say_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    for command in (
        ["create-admin", "--phone", "13811113333", "--password", "long-password"],
        ["seed-demo"],
    ):
        result = run_cli(url, *command)
        assert result.returncode == 1, result.stderr
        assert "run `microwish migrate` first" in result.stderr
        assert "Traceback" not in result.stderr


async def test_create_admin_creates_then_promotes(clean_database: str) -> None:
    created = run_cli(
        clean_database, "create-admin", "--phone", "13700137000", "--password", "long-password"
    )
    assert created.returncode == 0, created.stderr
    assert "created" in created.stdout
    again = run_cli(
        clean_database, "create-admin", "--phone", "+8613700137000", "--password", "other-password"
    )
    assert "promoted" in again.stdout
    bad = run_cli(clean_database, "create-admin", "--phone", "123", "--password", "long-password")
    assert bad.returncode == 2
    await empty_all_tables(clean_database)


def test_migrate_on_a_new_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'fresh.db'}"
    result = run_cli(url, "migrate")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "nested" / "fresh.db").exists()


def test_production_refuses_the_placeholder_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICROWISH_")}
    env["MICROWISH_ENV"] = "production"
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "MICROWISH_SECRET_KEY" in result.stderr


async def _rows(url: str, query: str) -> list[tuple[object, ...]]:
    engine = create_async_engine(normalize_database_url(url))
    try:
        async with engine.connect() as connection:
            return [tuple(row) for row in (await connection.execute(text(query))).all()]
    finally:
        await engine.dispose()
