"""Hold row locks from a second connection while a request runs, to put two transactions'
lock orders against each other on purpose (a deadlock test that does not rely on luck)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine


@asynccontextmanager
async def other_transaction(async_database_url: str) -> AsyncIterator[AsyncConnection]:
    """A transaction on its own connection, committed when the block ends."""
    engine = create_async_engine(async_database_url)
    try:
        async with engine.begin() as connection:
            yield connection
    finally:
        await engine.dispose()


async def lock_row(connection: AsyncConnection, table: str, key: str, row_id: str) -> None:
    """Take a row's write lock the way an UPDATE does (on SQLite: the database's write lock)."""
    await connection.execute(
        text(f"UPDATE {table} SET {key} = {key} WHERE {key} = :id"), {"id": int(row_id)}
    )


async def until_someone_waits(connection: AsyncConnection, request: asyncio.Task[object]) -> None:
    """Return once another session waits for a lock (PostgreSQL), or after a moment in which
    the request could only have gone as far as the write lock (SQLite)."""
    if connection.dialect.name != "postgresql":
        await asyncio.sleep(0.3)
        return
    for _ in range(200):
        assert not request.done(), "the request did not wait for the held lock"
        waiting = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
        if waiting:
            return
        await asyncio.sleep(0.025)
    raise AssertionError("nobody waited for the held lock")
