"""The connection pool's queue (``app.core.pool``): newcomers may take a free connection
while the waiters are young, a waiter that loses keeps its place, one past its patience is
handed the next connection and no newcomer may take it first, and a waiter that gives up
(timeout, cancellation) never loses a connection."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.queue import Empty

from app.core.config import normalize_database_url
from app.core.pool import PatientAsyncAdaptedQueuePool, PatientQueue

pytestmark = pytest.mark.anyio


async def _get(queue: PatientQueue[str], seconds: float | None = None) -> str:
    # The pool calls ``get`` from SQLAlchemy's greenlet, as here.
    return await greenlet_spawn(queue.get, True, seconds)


def _queue(patience: float) -> PatientQueue[str]:
    queue: PatientQueue[str] = PatientQueue(4)
    queue.patience = patience
    return queue


async def test_a_young_waiter_may_lose_to_a_newcomer_but_keeps_its_place() -> None:
    queue = _queue(patience=60.0)
    got: dict[str, str] = {}

    async def take(name: str) -> None:
        got[name] = await _get(queue)

    first = asyncio.create_task(take("first"))
    second = asyncio.create_task(take("second"))
    await asyncio.sleep(0)  # both wait now
    queue.put_nowait("a")  # wakes `first`, which has not run yet
    assert queue.get_nowait() == "a"  # a newcomer takes it (throughput first)
    await asyncio.sleep(0)  # `first` finds nothing and waits again, ahead of `second`
    queue.put_nowait("b")
    queue.put_nowait("c")
    await asyncio.gather(first, second)
    assert got == {"first": "b", "second": "c"}


async def test_a_waiter_past_its_patience_is_handed_the_next_item() -> None:
    queue = _queue(patience=0.01)
    waiting = asyncio.create_task(_get(queue))
    await asyncio.sleep(0.02)  # out of patience now
    queue.put_nowait("a")  # handed over directly
    with pytest.raises(Empty):
        queue.get_nowait()  # a newcomer cannot take it
    assert await waiting == "a"

    # An item queued while the waiter was young goes to it once it is out of patience,
    # even when a newcomer asks first.
    late = asyncio.create_task(_get(queue))
    await asyncio.sleep(0)
    queue._items.append("b")  # (as if put while `late` was woken and lost the race)
    await asyncio.sleep(0.02)
    with pytest.raises(Empty):
        queue.get_nowait()
    assert await late == "b"
    assert queue.empty()


async def test_a_waiter_that_gives_up_loses_nothing() -> None:
    queue = _queue(patience=0.0)  # every put hands over directly
    with pytest.raises(Empty):
        await _get(queue, seconds=0.02)
    queue.put_nowait("a")  # the timed-out waiter left the line: queued
    assert queue.qsize() == 1
    assert await _get(queue, seconds=0.02) == "a"

    doomed = asyncio.create_task(_get(queue))
    patient = asyncio.create_task(_get(queue))
    await asyncio.sleep(0.001)
    queue.put_nowait("b")  # handed to `doomed`, which has not run yet
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert await patient == "b"  # passed on

    queue.patience = 60.0
    woken = asyncio.create_task(_get(queue))
    other = asyncio.create_task(_get(queue))
    await asyncio.sleep(0)
    queue.put_nowait("c")  # wakes `woken` to compete; it is cancelled before it runs
    woken.cancel()
    with pytest.raises(asyncio.CancelledError):
        await woken
    assert await other == "c"  # the next waiter was woken in its place
    assert queue.empty()


async def test_an_engine_on_the_patient_pool_serves_everyone_and_returns_everything(
    backend: str, clean_database: str
) -> None:
    engine = create_async_engine(
        normalize_database_url(clean_database),
        poolclass=PatientAsyncAdaptedQueuePool,
        pool_size=2,
        max_overflow=0,
    )
    waited: list[float] = []

    async def request() -> None:
        asked = time.monotonic()
        async with engine.connect() as connection:
            waited.append(time.monotonic() - asked)
            assert await connection.scalar(text("SELECT 1")) == 1
            await asyncio.sleep(0.002)

    try:
        await asyncio.gather(*(request() for _ in range(60)))
        assert len(waited) == 60
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        cancelled = [asyncio.create_task(request()) for _ in range(10)]
        await asyncio.sleep(0.003)
        for task in cancelled:
            task.cancel()
        await asyncio.gather(*cancelled, return_exceptions=True)
        await asyncio.gather(*(request() for _ in range(10)))  # nothing was lost
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


async def test_an_item_given_back_is_kept_even_when_the_queue_is_full() -> None:
    """An overflow connection handed to a waiter that then gives up, while the pool's own
    connections have filled the queue: it is queued anyway (not lost, and the waiter's
    cancellation is not turned into an error of the queue's)."""
    queue: PatientQueue[str] = PatientQueue(1)
    queue.patience = 0.0
    waiting = asyncio.create_task(_get(queue))
    await asyncio.sleep(0.001)
    queue.put_nowait("overflow")  # handed to `waiting`, which has not run yet
    queue.put_nowait("pooled")  # the queue is full now
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert sorted([queue.get_nowait(), queue.get_nowait()]) == ["overflow", "pooled"]
