"""Database plumbing: the declarative base, column types, engines and the session dependency.

One transaction per request: the session dependency opens it, services only ``flush()``,
and the dependency commits after the path operation returns but *before* the response is
sent (``Depends(..., scope="function")``), so a failed commit is an error response, never a
201 for something that was rolled back.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Integer, MetaData, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator
from starlette.requests import Request

from app.core.config import Settings
from app.core.errors import DomainError

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# SQLite only makes INTEGER PRIMARY KEY an auto-incrementing rowid alias.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as
    naive UTC and given their zone back on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Execution option telling the SQLite "begin" hook which BEGIN to emit.
_SQLITE_BEGIN = "microwish_sqlite_begin"


def _install_sqlite_hooks(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    """WAL, foreign keys, a busy timeout, and our own BEGIN.

    pysqlite's implicit transactions are turned off so SQLAlchemy's ``begin`` event decides:
    write transactions start with ``BEGIN IMMEDIATE`` (take the write lock up front, waiting
    up to the busy timeout) because a deferred BEGIN that later upgrades to a write fails
    with "database is locked" at once under contention, ignoring the busy timeout.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def ensure_sqlite_directory(url: str) -> None:
    database = url.split(":///", 1)[1] if ":///" in url else ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


@dataclass
class Database:
    """The engines and session factories of one app instance."""

    engine: AsyncEngine
    read_sessions: async_sessionmaker[AsyncSession]
    write_sessions: async_sessionmaker[AsyncSession]
    # SQLite has one writer at a time. Its busy handler waits by polling with growing sleeps,
    # so under contention writers mostly sleep; queueing them here first (FIFO, no polling)
    # keeps the lock busy. Other processes still meet the busy timeout.
    write_lock: asyncio.Lock | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[AsyncSession]:
        """One transaction: committed if the block ends normally, else rolled back (unless
        the error is a DomainError that asks to keep its changes)."""
        if write and self.write_lock is not None:
            async with self.write_lock, _transaction(self.write_sessions) as session:
                yield session
        else:
            async with _transaction(
                self.read_sessions if not write else self.write_sessions
            ) as session:
                yield session

    async def ping(self) -> None:
        """Raises unless the database answers a trivial query."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def create_database(settings: Settings) -> Database:
    url = settings.async_database_url
    if url.startswith("sqlite"):
        ensure_sqlite_directory(url)
        engine = create_async_engine(
            url,
            # Parameters hold phone numbers and addresses: never put them in logs or errors.
            hide_parameters=True,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000},
        )
        _install_sqlite_hooks(engine, settings.sqlite_busy_timeout_ms)
        write_engine = engine.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
    else:
        engine = create_async_engine(
            url,
            # Parameters hold phone numbers and addresses: never put them in logs or errors.
            hide_parameters=True,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_pre_ping=False,
            # Every request ends in COMMIT or ROLLBACK itself; the pool's extra reset
            # ROLLBACK on check-in costs a round trip per request (~15% on the claim path).
            pool_reset_on_return=None,
            connect_args={"server_settings": {"application_name": f"microwish-{os.getpid()}"}},
        )
        write_engine = engine
    return Database(
        engine=engine,
        read_sessions=async_sessionmaker(engine, expire_on_commit=False, autoflush=False),
        write_sessions=async_sessionmaker(write_engine, expire_on_commit=False, autoflush=False),
        write_lock=asyncio.Lock() if url.startswith("sqlite") else None,
    )


_READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@asynccontextmanager
async def _transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with factory() as session:
        try:
            yield session
        except DomainError as exc:
            if exc.keep_changes:
                await session.commit()
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's one transaction: committed when the handler returns, else rolled back.
    GET requests start a read transaction; others a write transaction."""
    database: Database = request.app.state.database
    async with database.transaction(write=request.method not in _READ_ONLY_METHODS) as session:
        yield session


async def get_write_session(request: Request) -> AsyncIterator[AsyncSession]:
    """For reads that also write (e.g. auditing an unmasked contact): on SQLite, upgrading a
    read transaction to a write fails at once under contention, so these start as writes."""
    database: Database = request.app.state.database
    async with database.transaction(write=True) as session:
        yield session
