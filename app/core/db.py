"""Database plumbing: the declarative base, column types, engines and the session dependency.

One transaction per request: the session dependency opens it, services only ``flush()``,
and the dependency commits after the path operation returns but *before* the response is
sent (``Depends(..., scope="function")``), so a failed commit is an error response, never a
201 for something that was rolled back.
"""

from __future__ import annotations

import asyncio
import os
import sys
import weakref
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

from sqlalchemy import (
    BigInteger,
    DateTime,
    Delete,
    Dialect,
    Insert,
    Integer,
    MetaData,
    Select,
    Update,
    event,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.typing import TupleAny
from starlette.requests import Request

from app.core.config import Settings
from app.core.errors import DomainError
from app.core.pool import PatientAsyncAdaptedQueuePool

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
    # Called with a session's ``info`` after each commit (e.g. to wake live feeds once the
    # change is visible); they must be quick and must not raise.
    commit_hooks: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[AsyncSession]:
        """One transaction: committed if the block ends normally, else rolled back (unless
        the error is a DomainError that asks to keep its changes)."""
        if write and self.write_lock is not None:
            async with (
                self.write_lock,
                _transaction(self.write_sessions, self.commit_hooks) as session,
            ):
                yield session
        else:
            async with _transaction(
                self.read_sessions if not write else self.write_sessions, self.commit_hooks
            ) as session:
                yield session

    async def ping(self) -> None:
        """Raises unless the database answers a query of its own data: the migrations'
        version row (``SELECT 1`` would pass on SQLite with a corrupt file, or with a
        database nobody migrated, while every request fails)."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT version_num FROM alembic_version"))

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
            poolclass=PatientAsyncAdaptedQueuePool,  # no request waits much longer than others
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
            poolclass=PatientAsyncAdaptedQueuePool,  # no request waits much longer than others
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

# Session.info key: something is written into this transaction after the handler (an
# Idempotency-Key's stored response), so no statement may be a transaction of its own.
SHARED_TRANSACTION = "microwish_shared_transaction"


def may_commit_alone(session: AsyncSession) -> bool:
    """Whether a statement that is everything the request writes may run as a transaction
    of its own (see ``fetch_one_on_driver``): nothing else must share the transaction and
    the session holds no unflushed changes. (A statement already run in the transaction is
    checked there: then it stays in it.)"""
    return not (
        session.info.get(SHARED_TRANSACTION) or session.new or session.dirty or session.deleted
    )


@asynccontextmanager
async def _transaction(
    factory: async_sessionmaker[AsyncSession],
    commit_hooks: list[Callable[[dict[str, Any]], None]],
) -> AsyncIterator[AsyncSession]:
    session = factory()
    try:
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
        if session.in_transaction():  # (committing a session that never began costs ~25 µs)
            await session.commit()
        if session.info:
            for hook in commit_hooks:
                hook(session.info)
    finally:
        await _close(session)


async def _close(session: AsyncSession) -> None:
    """What ``async with session`` does on exit, cheaply when it can be: a session holding
    no transaction (never begun, or already committed or rolled back) holds no connection,
    so closing it does no I/O and needs neither a greenlet nor a task of its own (~30 µs
    per request, a claim that ran alone included). One still in a transaction is closed as
    SQLAlchemy closes it, in a task that a cancellation cannot abandon halfway."""
    if not session.in_transaction():
        session.sync_session.close()
    else:
        await session.__aexit__(None, None, None)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's one transaction: committed when the handler returns, else rolled back.
    GET requests start a read transaction; others a write transaction.

    Under an ``Idempotency-Key`` the open transaction is handed to ``app.core.idempotency``
    instead, which stores the response in it before committing."""
    database: Database = request.app.state.database
    write = request.method not in _READ_ONLY_METHODS
    handoff = request.scope.get("state", {}).get("idempotency")
    if handoff is None or handoff.stack is not None or not write:
        async with database.transaction(write=write) as session:
            yield session
        return
    stack = AsyncExitStack()
    session = await stack.enter_async_context(database.transaction(write=True))
    session.info[SHARED_TRANSACTION] = True  # the stored response commits with the change
    try:
        yield session
    except BaseException:
        await stack.__aexit__(*sys.exc_info())  # rolls back and re-raises
        raise
    handoff.stack, handoff.session = stack, session


async def get_write_session(request: Request) -> AsyncIterator[AsyncSession]:
    """For reads that also write (e.g. auditing an unmasked contact): on SQLite, upgrading a
    read transaction to a write fails at once under contention, so these start as writes."""
    database: Database = request.app.state.database
    async with database.transaction(write=True) as session:
        yield session


# --------------------------------------------------------------------------- driver path

_T = TypeVar("_T")


def orm_from_row(cls: type[_T], values: Mapping[str, Any]) -> _T:
    """An ORM object (in no session) carrying a row a Core statement returned, filled as a
    load fills one: the constructor's per-attribute events cost ~20 µs on the claim path."""
    instance: _T = cls._sa_class_manager.new_instance()  # type: ignore[attr-defined]
    instance.__dict__.update(values)
    return instance


@dataclass(frozen=True)
class _DriverStatement:
    """A Core SELECT compiled once for a dialect: the SQL SQLAlchemy itself would send, how
    to turn named parameters into asyncpg's positional ones, and how to read the record."""

    sql: str
    # Per ``$n``, in order: the parameter's key, the value the statement fixes for it (e.g.
    # ``literal(1)``; ``_REQUIRED`` if the caller must give one) and its type's bind processor.
    arguments: tuple[tuple[str, Any, Callable[[Any], Any] | None], ...]
    # Per selected column: its type's result processor (e.g. UTCDateTime's).
    processors: tuple[Callable[[Any], Any] | None, ...]
    # A named tuple class with the selected columns' keys as attributes, as ``Row`` has.
    row: Callable[[list[Any]], Any]


_REQUIRED = object()
# What runs on the driver: a SELECT, or an INSERT/UPDATE/DELETE (with RETURNING, to fetch).
DriverStatement = Select[Any] | Insert | Update | Delete
# Per dialect (one per engine), per statement object: statements are module-level constants.
_driver_statements: weakref.WeakKeyDictionary[
    Dialect, dict[int, tuple[DriverStatement, _DriverStatement]]
] = weakref.WeakKeyDictionary()


def _driver_statement(statement: DriverStatement, dialect: Dialect) -> _DriverStatement:
    compiled_here = _driver_statements.setdefault(dialect, {})
    cached = compiled_here.get(id(statement))
    if cached is not None and cached[0] is statement:
        return cached[1]
    compiled = statement.compile(dialect=dialect)
    if compiled.positiontup is None or compiled.post_compile_params:
        raise ValueError("only statements with plain positional parameters run on the driver")
    arguments = []
    for name in compiled.positiontup:
        bind = compiled.binds[name]
        fixed = _REQUIRED if bind.required else bind.effective_value
        arguments.append((bind.key, fixed, bind.type._cached_bind_processor(dialect)))
    columns = list(statement.exported_columns)  # a SELECT's columns, or what it RETURNs
    prepared = _DriverStatement(
        sql=compiled.string,
        arguments=tuple(arguments),
        processors=tuple(column.type._cached_result_processor(dialect, None) for column in columns),
        row=_row_maker([str(column.key) for column in columns]),
    )
    compiled_here[id(statement)] = (statement, prepared)
    return prepared


def _row_maker(keys: list[str]) -> Callable[[list[Any]], Any]:
    row_class: Any = namedtuple("DriverRow", keys)  # type: ignore[misc]
    return cast(Callable[[list[Any]], Any], row_class._make)


async def fetch_one_on_driver(
    connection: AsyncConnection,
    statement: DriverStatement,
    params: Mapping[str, Any],
    *,
    alone: bool = False,
) -> Any:
    """Run a hot SELECT (e.g. one made of data-modifying CTEs), or INSERT … RETURNING, on
    the asyncpg connection itself, in ``connection``'s transaction; returns its first row or
    None.

    With ``alone``, when no transaction has begun on the connection yet, the statement is a
    transaction of its own instead (PostgreSQL commits it as it ends; the session's commit
    then has nothing to do): no BEGIN and COMMIT round trips, and the row locks it takes are
    held only while it runs. Only for a statement that writes all or nothing and is
    everything the request writes (``may_commit_alone``).

    The row has the selected columns' keys as attributes and values through the column
    types, as ``(await connection.execute(statement, params)).first()`` would; errors are
    wrapped as SQLAlchemy wraps them (``IntegrityError`` for a unique violation). What it
    skips is SQLAlchemy's per-execution work (execution context, parameter and result
    processing set-up, result object) and the greenlet hop, which on the claim path cost
    ~0.1 ms of the ~1.3 ms of server CPU per request.
    """
    prepared, pooled = await _on_driver(connection, statement, alone=alone)
    record = await _driver_call(connection, pooled, prepared, "fetchrow", params)
    return _driver_row(prepared, record)


async def fetch_all_on_driver(
    connection: AsyncConnection, statement: Select[*TupleAny], params: Mapping[str, Any]
) -> list[Any]:
    """``fetch_one_on_driver`` for a SELECT whose every row is wanted (a listing page), in
    ``connection``'s transaction: the rows as ``(await connection.execute(statement,
    params)).all()`` would give them."""
    prepared, pooled = await _on_driver(connection, statement, alone=False)
    records = await _driver_call(connection, pooled, prepared, "fetch", params)
    return [_driver_row(prepared, record) for record in records]


async def _on_driver(
    connection: AsyncConnection, statement: DriverStatement, *, alone: bool
) -> tuple[_DriverStatement, Any]:
    """The compiled statement and the pooled connection to run it on, in ``connection``'s
    transaction (begun now unless ``alone``)."""
    if connection.dialect.driver != "asyncpg":
        raise ValueError("the driver path needs the asyncpg driver")
    prepared = _driver_statement(statement, connection.dialect)
    sync_connection = connection.sync_connection
    if sync_connection is not None and sync_connection.in_transaction():
        # The pooled connection in hand: no I/O, so no greenlet is needed to get it.
        pooled = sync_connection.connection
    else:
        pooled = await connection.get_raw_connection()
    adapted: Any = pooled.dbapi_connection  # SQLAlchemy's adapter of the asyncpg connection
    # The adapter sends BEGIN lazily, with the first statement: send it now, so this
    # statement is part of the transaction the session will commit or roll back (unless it
    # is to be a transaction of its own).
    if adapted._transaction is None and not alone:
        try:
            await adapted._start_transaction()
        except Exception as error:
            await _raise_wrapped(connection, adapted, "BEGIN", error)
    return prepared, pooled


async def _driver_call(
    connection: AsyncConnection,
    pooled: Any,
    prepared: _DriverStatement,
    method: str,
    params: Mapping[str, Any],
) -> Any:
    """``fetchrow`` or ``fetch`` on the asyncpg connection, errors wrapped."""
    args = _driver_arguments(prepared, params)
    try:
        return await getattr(pooled.driver_connection, method)(prepared.sql, *args)
    except Exception as error:
        await _raise_wrapped(connection, pooled.dbapi_connection, prepared.sql, error)


async def _raise_wrapped(
    connection: AsyncConnection, adapted: Any, sql: str, error: Exception
) -> NoReturn:
    wrapped, disconnected = _driver_error(connection.dialect, adapted, sql, error)
    if disconnected:
        await connection.invalidate(wrapped.orig)
    raise wrapped from error


async def fetch_one_in_request(
    session: AsyncSession,
    statement: DriverStatement,
    params: Mapping[str, Any],
    *,
    alone: bool = False,
) -> Any:
    """A hot statement of the request's session, on the driver. With ``alone`` (it writes
    all or nothing and is everything the request writes) it is a transaction of its own
    when the session allows that (``may_commit_alone``): on a connection straight from the
    pool if the session has not begun, else as ``fetch_one_on_driver`` decides."""
    alone = alone and may_commit_alone(session)
    if alone and isinstance(session.bind, AsyncEngine) and not session.in_transaction():
        return await fetch_one_alone(session.bind, statement, params)
    return await fetch_one_on_driver(await session.connection(), statement, params, alone=alone)


async def fetch_all_in_request(
    session: AsyncSession, statement: Select[*TupleAny], params: Mapping[str, Any]
) -> list[Any]:
    """Every row of a plain SELECT (no row locks) of the request: the same rows
    ``(await session.execute(statement, params)).all()`` would give.

    Under asyncpg it runs on the driver; and while the session has not begun, alone, on a
    connection held only while it runs. At READ COMMITTED, PostgreSQL's level and ours,
    each statement sees what was committed when it started, inside a transaction or not: a
    SELECT the request's transaction would begin with sees the same rows when it runs
    before that transaction begins; only one that must see the transaction's own writes
    or take locks has to run in it. Run alone, the reads of a listing page hold a pooled
    connection for one round trip each instead of the four of BEGIN, reads and COMMIT."""
    if statement._for_update_arg is None and may_read_alone(session):
        engine = cast(AsyncEngine, session.bind)
        prepared, records = await _run_alone(engine, statement, params, "fetch")
        return [_driver_row(prepared, record) for record in records]
    connection = await session.connection()
    if connection.dialect.driver == "asyncpg":
        return await fetch_all_on_driver(connection, statement, params)
    return list((await connection.execute(statement, params)).all())


def may_read_alone(session: AsyncSession) -> bool:
    """Whether a plain SELECT of the request may run outside its transaction: PostgreSQL
    under asyncpg, and nothing has begun (no writes to see, no locks held)."""
    bind = session.bind
    return (
        isinstance(bind, AsyncEngine)
        and bind.dialect.driver == "asyncpg"
        and not session.in_transaction()
    )


async def fetch_one_alone(
    engine: AsyncEngine, statement: DriverStatement, params: Mapping[str, Any]
) -> Any:
    """``fetch_one_on_driver(..., alone=True)`` on a connection taken straight from the
    engine's pool, outside any session: for a statement that is everything a request writes
    when the request's session has not begun (``may_commit_alone``). Beginning the
    session's transaction only to run it cost ~60 µs more per claim."""
    return _driver_row(*await _run_alone(engine, statement, params, "fetchrow"))


async def _run_alone(
    engine: AsyncEngine, statement: DriverStatement, params: Mapping[str, Any], method: str
) -> tuple[_DriverStatement, Any]:
    """``method`` (``fetchrow`` or ``fetch``) of the statement, as a transaction of its own
    on a connection from the pool, given back at once."""
    if engine.dialect.driver != "asyncpg":
        raise ValueError("running a statement alone needs the asyncpg driver")
    prepared = _driver_statement(statement, engine.dialect)
    args = _driver_arguments(prepared, params)
    pooled = await engine.raw_connection()
    adapted: Any = pooled.dbapi_connection
    try:
        driver: Any = pooled.driver_connection  # the asyncpg connection
        result = await getattr(driver, method)(prepared.sql, *args)
    except Exception as error:
        wrapped, disconnected = _driver_error(engine.dialect, adapted, prepared.sql, error)
        if disconnected:
            # Closing a dead connection awaits the driver: in SQLAlchemy's greenlet.
            await greenlet_spawn(pooled.invalidate, wrapped.orig)
        raise wrapped from error
    except BaseException:
        # Cancelled mid-statement: the connection's state is unknown, so it is not reused
        # (outside a greenlet SQLAlchemy terminates it at once, without awaiting).
        pooled.invalidate()
        raise
    finally:
        pooled.close()  # back to the pool (no reset on return); after invalidate, a no-op
    return prepared, result


def _driver_arguments(prepared: _DriverStatement, params: Mapping[str, Any]) -> list[Any]:
    args = []
    for key, fixed, processor in prepared.arguments:
        value = params[key] if key in params or fixed is _REQUIRED else fixed
        args.append(processor(value) if processor is not None else value)
    return args


def _driver_row(prepared: _DriverStatement, record: Any) -> Any:
    if record is None:
        return None
    return prepared.row(
        [
            processor(value) if processor is not None else value
            for value, processor in zip(record, prepared.processors, strict=True)
        ]
    )


def _driver_error(
    dialect: Dialect, adapted: Any, sql: str, error: Exception
) -> tuple[StatementError, bool]:
    """What ``connection.execute`` would have raised for this asyncpg error: the adapter's
    DB-API error wrapped in SQLAlchemy's class for it; and whether the connection died (the
    caller invalidates it, so the pool replaces it)."""
    dbapi = adapted.dbapi
    dbapi_error: Exception = error
    if not isinstance(error, dbapi.Error):
        try:
            adapted._handle_exception(error)  # raises the DB-API error it translates to
        except Exception as translated:
            dbapi_error = translated
    disconnected = isinstance(dbapi_error, dbapi.Error) and dialect.is_disconnect(
        dbapi_error, adapted, None
    )
    wrapped = DBAPIError.instance(
        sql,
        None,
        dbapi_error,
        dbapi.Error,
        hide_parameters=True,
        connection_invalidated=disconnected,
        dialect=dialect,
    )
    return wrapped, bool(disconnected)
