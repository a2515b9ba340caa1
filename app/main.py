"""The ASGI application: ``create_app()`` builds one; ``app`` is the default instance."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from app.accounts.router import router as accounts_router
from app.categories.router import router as categories_router
from app.claims.router import router as claims_router
from app.core.clock import Job, run_clock, run_periodic
from app.core.config import Settings, get_settings
from app.core.db import create_database
from app.core.problem_docs import router as problem_docs_router
from app.core.problems import document_problems, install_problem_handlers
from app.core.ratelimit import RateLimits
from app.events import service as events_service
from app.events.live import LiveFeeds
from app.events.router import board_router as events_board_router
from app.events.router import router as events_router
from app.health.router import router as health_router
from app.matching.router import router as matching_router
from app.members.router import router as members_router
from app.models import import_all_models
from app.regions.router import router as regions_router
from app.wishes.router import router as wishes_router
from app.wishes.service import expire_overdue as expire_overdue_wishes

API_DESCRIPTION = """\
Backend of the district micro-wish (微心愿) app.

JSON under `/v1`, bearer tokens, RFC 3339 UTC times, string ids. Errors are RFC 9457
`application/problem+json` with a stable `code`; `title`/`detail` follow `Accept-Language`
(zh-CN by default, en). Lists take `?limit=` (1–100) and `?cursor=` and return
`{"items": [...], "next_cursor": "..." | null}`.
"""


# Periodic jobs of the in-app clock (see app.core.clock).
CLOCK_JOBS: list[Job] = [expire_overdue_wishes]


def _operation_id(route: APIRoute) -> str:
    # Stable, readable operation ids for generated clients: the handler's name.
    return route.name


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    import_all_models()  # every mapper configured before the first request
    logging.basicConfig(level=settings.log_level.upper())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = create_database(settings)
        app.state.database = database
        app.state.live_feeds = LiveFeeds(database, settings)
        clocks = [
            asyncio.create_task(
                run_clock(database, CLOCK_JOBS, settings.clock_interval_seconds), name="clock"
            ),
            # Events open and close on the second: a cheap read each tick, a write only
            # when one is due (and a restarted server catches up on its first tick).
            asyncio.create_task(
                run_periodic(
                    events_service.catch_up_all, database, settings.event_clock_interval_seconds
                ),
                name="event-clock",
            ),
        ]
        try:
            yield
        finally:
            for clock in clocks:
                clock.cancel()
            for clock in clocks:
                with contextlib.suppress(asyncio.CancelledError):
                    await clock
            await app.state.live_feeds.close()
            await database.dispose()

    app = FastAPI(
        title="microwish",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.settings = settings
    app.state.rate_limits = RateLimits(settings)
    install_problem_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "Location", "Retry-After", "Idempotent-Replayed"],
        )
    for router in (
        health_router,
        accounts_router,
        regions_router,
        categories_router,
        members_router,
        wishes_router,
        claims_router,
        matching_router,
        events_router,
        events_board_router,
        problem_docs_router,
    ):
        app.include_router(router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


app = create_app()
