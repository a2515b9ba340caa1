"""Test fixtures. Every database test runs on SQLite and, when MICROWISH_TEST_POSTGRES_URL is
set (CI always sets it), on PostgreSQL too. A PostgreSQL URL that does not answer fails the
run: it is never skipped.

Each backend gets its own database, made by the migrations (never by ``create_all``) once
per session; each test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.core import migrate, security
from app.core.config import Settings, normalize_database_url
from app.core.db import Base
from app.main import create_app
from app.models import import_all_models

import_all_models()

# argon2 is slow on purpose (tens of ms a hash); tests register hundreds of users, so they
# use the same algorithm with the smallest cost. Production parameters are untouched.
security._password_hash = PasswordHash(
    (Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),)
)
security._DUMMY_HASH = security._password_hash.hash("microwish-timing-equaliser")

POSTGRES_URL = os.environ.get("MICROWISH_TEST_POSTGRES_URL", "").strip()
BACKENDS = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]
# Rows the migrations insert, which every test expects to be there.
REFERENCE_TABLES = {"categories", "sync_state"}
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


async def _pg_admin(url: str, statements: list[str]) -> None:
    engine = create_async_engine(normalize_database_url(url), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


def create_postgres_database(prefix: str) -> str:
    """A new, empty PostgreSQL database next to the one MICROWISH_TEST_POSTGRES_URL names."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_pg_admin(POSTGRES_URL, [f'CREATE DATABASE "{name}"']))
    except Exception as exc:  # unreachable or refused: fail loudly, never skip
        pytest.fail(f"PostgreSQL at MICROWISH_TEST_POSTGRES_URL is unusable: {exc}", pytrace=False)
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    asyncio.run(_pg_admin(POSTGRES_URL, [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)']))


def fresh_database_url(backend: str, tmp_dir: Path, prefix: str = "mw_test") -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_dir / f'{prefix}_{uuid.uuid4().hex[:8]}.db'}"
    return create_postgres_database(prefix)


def dispose_database_url(backend: str, url: str) -> None:
    if backend == "postgresql":
        drop_postgres_database(url)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    param: str = request.param
    return param


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One migrated database per backend for the whole session."""
    url = fresh_database_url(backend, tmp_path_factory.mktemp("db"))
    migrate.upgrade(url)
    yield url
    dispose_database_url(backend, url)


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "test",
        "database_url": database_url,
        "secret_key": TEST_SECRET,
        "db_pool_size": 5,
        # Every test user comes from one address (the ASGI client's): per-address auth
        # limits sized for a real district would throttle the suite, not a guesser. Tests of
        # the limits set their own; per-phone limits keep their defaults.
        "auth_rate_limit": "100000/minute",
        "otp_ip_rate_limit": "100000/minute",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def empty_all_tables(url: str) -> None:
    engine = create_async_engine(normalize_database_url(url))
    tables = [
        table.name
        for table in reversed(Base.metadata.sorted_tables)
        if table.name not in REFERENCE_TABLES
    ]
    try:
        async with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                # DELETE and setval, not TRUNCATE … RESTART IDENTITY: on a test's few rows it
                # is ten times faster (TRUNCATE makes new files for every table), with the
                # same outcome: empty tables, ids from 1 again. One round trip each.
                driver = (await connection.get_raw_connection()).driver_connection
                assert driver is not None
                await driver.execute("; ".join(f'DELETE FROM "{name}"' for name in tables))
                # The sequences of those tables' serial and identity columns only: the
                # reference tables keep their rows, and their ids.
                await driver.execute(
                    "SELECT setval(s.oid, 1, false) FROM pg_class s "
                    "JOIN pg_depend d ON d.objid = s.oid AND d.deptype IN ('a', 'i') "
                    "JOIN pg_class t ON t.oid = d.refobjid "
                    "WHERE s.relkind = 'S' AND t.relname = ANY($1::text[])",
                    tables,
                )
            else:
                for name in tables:
                    await connection.execute(text(f'DELETE FROM "{name}"'))
    finally:
        await engine.dispose()


@pytest.fixture
async def clean_database(database_url: str) -> str:
    await empty_all_tables(database_url)
    return database_url


@dataclass
class Api:
    """An ASGI client on a fresh app and empty tables, with small helpers for common steps."""

    client: httpx.AsyncClient
    settings: Settings

    async def register(
        self, phone: str, password: str = "password-123", display_name: str = "居民"
    ) -> dict[str, object]:
        response = await self.client.post(
            "/v1/auth/register",
            json={"phone": phone, "password": password, "display_name": display_name},
        )
        assert response.status_code == 201, response.text
        body: dict[str, object] = response.json()
        return body

    async def login(self, phone: str, password: str = "password-123") -> dict[str, Any]:
        response = await self.client.post(
            "/v1/auth/token", json={"phone": phone, "password": password}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def user_headers(
        self, phone: str, password: str = "password-123", display_name: str = "居民"
    ) -> dict[str, str]:
        await self.register(phone, password, display_name)
        tokens = await self.login(phone, password)
        return {"Authorization": f"Bearer {tokens['access_token']}"}

    async def admin_headers(self, phone: str = "13800000001") -> dict[str, str]:
        headers = await self.user_headers(phone, display_name="管理员")
        await self.sql("UPDATE users SET is_admin = true WHERE phone = :phone", phone=f"+86{phone}")
        return headers

    async def sql(self, statement: str, **params: object) -> list[tuple[object, ...]]:
        engine = create_async_engine(self.settings.async_database_url)
        try:
            async with engine.begin() as connection:
                result = await connection.execute(text(statement), params)
                return [tuple(row) for row in result.all()] if result.returns_rows else []
        finally:
            await engine.dispose()


@pytest.fixture
async def api(clean_database: str) -> AsyncIterator[Api]:
    settings = make_settings(clean_database)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(client=client, settings=settings)


@pytest.fixture(scope="module")
def running_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real server per backend for a test module (each test still starts from empty
    tables through ``clean_database``); its log is checked when the module is done."""
    from tests.live import checked_server

    with checked_server(database_url, tmp_path_factory.mktemp("server")) as base_url:
        yield base_url


@pytest.fixture
def server(running_server: str, clean_database: str) -> str:
    return running_server
