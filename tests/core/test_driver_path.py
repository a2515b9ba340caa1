"""``fetch_one_on_driver``: a hot statement run on the asyncpg connection itself must give
what ``connection.execute`` gives (row, types, errors) and stay in the session's transaction,
unless it is to be a transaction of its own (``alone``) and none has begun."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from sqlalchemy import Table, bindparam, func, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app.accounts.models import User
from app.core.config import normalize_database_url
from app.core.db import UTCDateTime, fetch_all_in_request, fetch_one_alone, fetch_one_on_driver

_users = cast(Table, User.__table__)
# The shape of the claim statement: a data-modifying CTE, a bound UTC time, values the
# statement fixes itself (``literal``), and a bind parameter used twice.
_inserted = (
    insert(_users)
    .from_select(
        ["phone", "display_name", "is_admin", "created_at"],
        select(
            bindparam("phone"),
            bindparam("name") + literal("!"),
            literal(False),
            bindparam("now", type_=UTCDateTime()),
        ),
    )
    .returning(*_users.c)
    .cte("u")
)
_INSERT_USER = select(
    select(func.count()).select_from(_inserted).scalar_subquery().label("inserted"),
    bindparam("name").label("echo"),
    *_inserted.c,
)


def _params(phone: str) -> dict[str, Any]:
    # A time in UTC+8: stored and read back as UTC.
    now = datetime(2026, 11, 27, 20, 30, 15, 123456, tzinfo=timezone(timedelta(hours=8)))
    return {"phone": phone, "name": "王阿姨", "now": now}


async def _count(sessions: async_sessionmaker[AsyncSession], phone: str) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).where(_users.c.phone == phone)) or 0)


@pytest.mark.anyio
async def test_driver_path_matches_execute_and_joins_the_transaction(
    backend: str, clean_database: str
) -> None:
    engine = create_async_engine(normalize_database_url(clean_database))
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        if backend != "postgresql":
            async with sessions() as session:
                with pytest.raises(ValueError, match="asyncpg"):
                    await fetch_one_on_driver(
                        await session.connection(), _INSERT_USER, _params("+8613800000001")
                    )
            return

        # Same row as SQLAlchemy's own execution (rolled back: phones are unique).
        async with sessions() as session:
            connection = await session.connection()
            expected = (await connection.execute(_INSERT_USER, _params("+8613800000001"))).one()
            await session.rollback()
        async with sessions() as session:
            connection = await session.connection()
            row = await fetch_one_on_driver(connection, _INSERT_USER, _params("+8613800000001"))
            assert row._fields == tuple(expected._fields)
            assert row.inserted == 1
            assert row.echo == "王阿姨"
            assert row.display_name == "王阿姨!"
            assert row.is_admin is False
            assert row.created_at == datetime(2026, 11, 27, 12, 30, 15, 123456, tzinfo=UTC)
            assert row.created_at.tzinfo is UTC
            for name in ("inserted", "echo", "phone", "display_name", "is_admin", "created_at"):
                assert getattr(row, name) == getattr(expected, name)
                assert type(getattr(row, name)) is type(getattr(expected, name))
            # In the session's transaction: its rollback undoes the insert.
            await session.rollback()
        assert await _count(sessions, "+8613800000001") == 0

        # The session's commit makes it stick, and a driver error is SQLAlchemy's error.
        async with sessions() as session:
            await fetch_one_on_driver(
                await session.connection(), _INSERT_USER, _params("+8613800000002")
            )
            await session.commit()
        assert await _count(sessions, "+8613800000002") == 1
        async with sessions() as session:
            with pytest.raises(IntegrityError) as raised:
                await fetch_one_on_driver(
                    await session.connection(), _INSERT_USER, _params("+8613800000002")
                )
            assert getattr(raised.value.orig, "sqlstate", None) == "23505"
            assert "王阿姨" not in str(raised.value)  # parameters stay out of errors
            await session.rollback()
            # The connection is still good after the rollback.
            assert await session.scalar(select(literal(1))) == 1

        # alone=True: a transaction of its own, committed as it ends (the session's rollback
        # cannot undo it) ...
        async with sessions() as session:
            await fetch_one_on_driver(
                await session.connection(), _INSERT_USER, _params("+8613800000003"), alone=True
            )
            assert await _count(sessions, "+8613800000003") == 1  # seen from elsewhere at once
            await session.rollback()
        assert await _count(sessions, "+8613800000003") == 1
        # ... a failed one leaves nothing and the session usable ...
        async with sessions() as session:
            with pytest.raises(IntegrityError):
                await fetch_one_on_driver(
                    await session.connection(), _INSERT_USER, _params("+8613800000003"), alone=True
                )
            assert await session.scalar(select(literal(1))) == 1
        # ... and once the session's transaction has begun, the statement stays in it.
        # (fetch_one_alone: the same on a connection straight from the pool, which goes
        # back to it after a success and after an error.)
        row = await fetch_one_alone(engine, _INSERT_USER, _params("+8613800000005"))
        assert row.inserted == 1
        assert row.created_at.tzinfo is UTC
        assert await _count(sessions, "+8613800000005") == 1
        with pytest.raises(IntegrityError):
            await fetch_one_alone(engine, _INSERT_USER, _params("+8613800000005"))
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        async with sessions() as session:
            assert await session.scalar(select(literal(1))) == 1  # BEGIN sent
            await fetch_one_on_driver(
                await session.connection(), _INSERT_USER, _params("+8613800000004"), alone=True
            )
            await session.rollback()
        assert await _count(sessions, "+8613800000004") == 0
    finally:
        await engine.dispose()


_USERS_BY_PHONE = (
    select(_users.c.phone, _users.c.display_name, _users.c.is_admin, _users.c.created_at)
    .where(_users.c.phone.like(bindparam("prefix") + "%"))
    .order_by(_users.c.phone)
)


@pytest.mark.anyio
async def test_fetch_all_reads_alone_until_the_transaction_begins(
    backend: str, clean_database: str
) -> None:
    """``fetch_all_in_request`` gives the rows ``session.execute`` gives. On PostgreSQL,
    while the session has not begun, the SELECT runs alone (it sees what is committed, as
    the first statement of a READ COMMITTED transaction would, and begins nothing); once
    the transaction has begun it runs in it and sees its uncommitted writes. A locking
    SELECT always runs in the transaction."""
    engine = create_async_engine(normalize_database_url(clean_database))
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    prefix = {"prefix": "+86139000"}
    try:
        async with sessions() as session:
            for phone in ("+8613900000002", "+8613900000001"):
                values = {
                    "display_name": "王阿姨",
                    "is_admin": False,
                    "created_at": datetime.now(UTC),
                }
                await session.execute(insert(_users).values(phone=phone, **values))
            assert await fetch_all_in_request(session, _USERS_BY_PHONE, prefix) == list(
                (await session.execute(_USERS_BY_PHONE, prefix)).all()
            )  # its own uncommitted rows: in the transaction
            await session.commit()

        async with sessions() as session:
            rows = await fetch_all_in_request(session, _USERS_BY_PHONE, prefix)
            assert [row.phone for row in rows] == ["+8613900000001", "+8613900000002"]
            assert rows[0].created_at.tzinfo is UTC
            assert rows[0].is_admin is False
            assert session.in_transaction() is (backend != "postgresql")
            expected = (await session.execute(_USERS_BY_PHONE, prefix)).all()
            assert [tuple(row) for row in rows] == [tuple(row) for row in expected]
            assert await fetch_all_in_request(session, _USERS_BY_PHONE, {"prefix": "+1"}) == []

        async with sessions() as session:
            locked = await fetch_all_in_request(session, _USERS_BY_PHONE.with_for_update(), prefix)
            assert len(locked) == 2
            assert session.in_transaction()  # the locks are the transaction's
            await session.rollback()
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


@pytest.mark.anyio
async def test_a_requests_session_is_closed_whichever_way_it_ends(
    backend: str, clean_database: str
) -> None:
    """``_transaction`` closes its session without a greenlet when it holds no transaction;
    either way nothing stays checked out or attached, commit hooks run after a commit only."""
    from app.core.db import _transaction

    engine = create_async_engine(normalize_database_url(clean_database))
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    hooked: list[dict[str, Any]] = []
    try:
        async with _transaction(sessions, [hooked.append]) as untouched:
            untouched.info["seen"] = True
        assert hooked == [{"seen": True}]
        async with _transaction(sessions, [hooked.append]) as used:
            user = User(phone="+8613900000009", display_name="王阿姨", is_admin=False)
            used.add(user)
            await used.flush()
        assert user not in used  # expunged by the close
        assert await _count(sessions, "+8613900000009") == 1

        async def fail() -> None:
            async with _transaction(sessions, [hooked.append]) as failed:
                await failed.execute(select(literal(1)))
                failed.info["failed"] = True
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await fail()
        assert len(hooked) == 1  # no hook for the rolled-back one (nor the empty one)
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
