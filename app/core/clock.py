"""The in-app clock: periodic jobs (claim reminders, purges) and ticks (opening and closing
events, releasing overdue claims and settling overdue wishes: see ``app.main``) run inside
the server, no cron needed. Each job run is one write transaction; the jobs are idempotent
conditional UPDATEs, so several server processes running them at once is harmless, and a
restarted server catches up on its first tick."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import Database

logger = logging.getLogger("microwish.clock")

Job = Callable[[AsyncSession], Awaitable[object]]


async def run_jobs_once(database: Database, jobs: Sequence[Job]) -> None:
    for job in jobs:
        try:
            async with database.transaction(write=True) as session:
                await job(session)
        except Exception:  # one failing job must not stop the clock
            logger.exception("clock job %s failed", getattr(job, "__name__", job))


async def run_clock(database: Database, jobs: Sequence[Job], interval_seconds: float) -> None:
    while True:
        await run_jobs_once(database, jobs)
        await asyncio.sleep(interval_seconds)


async def run_periodic(
    tick: Callable[[Database], Awaitable[object]], database: Database, interval_seconds: float
) -> None:
    """Call ``tick`` (which opens its own transactions) every interval, surviving failures."""
    while True:
        try:
            await tick(database)
        except Exception:
            logger.exception("periodic task %s failed", getattr(tick, "__name__", tick))
        await asyncio.sleep(interval_seconds)
