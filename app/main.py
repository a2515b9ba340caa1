"""The ASGI application: ``create_app()`` builds one; ``app`` is the default instance."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from app.accounts.router import router as accounts_router
from app.accounts.service import purge_expired_otp_codes
from app.categories.router import router as categories_router
from app.claims import deadlines as claim_deadlines
from app.claims import service as claims_service
from app.claims.router import router as claims_router
from app.claims.service import remind_before_deadlines as remind_claim_deadlines
from app.core.bodylimit import BodyLimitMiddleware
from app.core.clock import Job, run_clock, run_periodic
from app.core.config import Settings, get_settings
from app.core.db import Database, create_database
from app.core.head import HeadAsGetMiddleware
from app.core.idempotency import IdempotencyMiddleware, purge_expired
from app.core.problem_docs import router as problem_docs_router
from app.core.problems import document_problems, install_problem_handlers
from app.core.ratelimit import RateLimits
from app.core.runtime import tune_garbage_collector
from app.core.sms import SmsOutbox, create_sms_sender
from app.events import service as events_service
from app.events.live import LiveFeeds
from app.events.router import board_router as events_board_router
from app.events.router import router as events_router
from app.health.router import router as health_router
from app.matching.router import router as matching_router
from app.members.router import router as members_router
from app.models import import_all_models
from app.notifications import service as notifications_service
from app.notifications.delivery.webhook import sender_for
from app.notifications.router import router as notifications_router
from app.photos.router import router as photos_router
from app.regions.router import router as regions_router
from app.sync.router import router as sync_router
from app.wishes import service as wishes_service
from app.wishes.router import router as wishes_router

API_DESCRIPTION = """\
Backend of the district micro-wish (微心愿) app.

JSON under `/v1`, bearer tokens, RFC 3339 UTC times, string ids. Errors are RFC 9457
`application/problem+json` with a stable `code`; `title`/`detail` follow `Accept-Language`
(zh-CN by default, en). Lists take `?limit=` (1–100) and `?cursor=` and return
`{"items": [...], "next_cursor": "..." | null}`.
"""


# Periodic jobs of the in-app clock (see app.core.clock).
CLOCK_JOBS: list[Job] = [remind_claim_deadlines, purge_expired_otp_codes]


async def pass_deadlines(database: Database) -> None:
    """The deadline clock's tick, every second: claims past their deadline are released,
    then wishes past theirs expire (or end fulfilled as far as they got), so a wish whose
    last claim ran out is settled in the same tick. A cheap indexed read each; a write only
    when something is due."""
    await claims_service.release_due(database)
    await wishes_service.expire_due(database)


_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "example": "5f0c7a9e-claim-3",
    "description": "Retry safely: a repeated request with the same key (per user, kept 48 h) "
    "gets the first response again, with `Idempotent-Replayed: true`, instead of acting "
    "twice. 409 `idempotency_in_flight` while the first is still running; 422 "
    "`idempotency_key_reused` for a different request under the same key. On the routes "
    "that issue tokens the answer is replayed for 10 minutes, and the same key with another "
    "body is simply another request.",
}
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": True,
    "schema": {"type": "string"},
    "example": '"wish-42-3.u"',
    "description": "The ETag you read: 412 `precondition_failed` if the resource changed "
    "since, 428 `precondition_required` without it.",
}
_IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "An ETag you hold: 304 Not Modified while it is current.",
}


def document_headers(schema: dict[str, Any]) -> dict[str, Any]:
    """The conditional and idempotency headers, which the handlers read from the request
    (app.core.idempotency, app.core.conditional), in the OpenAPI document."""
    for operations in schema.get("paths", {}).values():
        for method, operation in operations.items():
            parameters = operation.setdefault("parameters", [])
            if method == "post":
                parameters.append(_IDEMPOTENCY_KEY)
                for status, response in operation.get("responses", {}).items():
                    if status.startswith("2"):
                        response.setdefault("headers", {})["Idempotent-Replayed"] = {
                            "schema": {"type": "string", "enum": ["true"]},
                            "description": "Present on a replayed response.",
                        }
            elif method == "patch":
                parameters.append(_IF_MATCH)
            elif method == "get" and "304" in operation.get("responses", {}):
                parameters.append(_IF_NONE_MATCH)
                operation["responses"]["200"].setdefault("headers", {})["ETag"] = {
                    "schema": {"type": "string"},
                    "description": "Strong validator of this representation.",
                }
    return schema


def _operation_id(route: APIRoute) -> str:
    # Stable, readable operation ids for generated clients: the handler's name.
    return route.name


OPENAPI_TAGS = [
    {"name": "health", "description": "Whether the service and its database answer."},
    {"name": "accounts", "description": "Sign-up, login (password or SMS code), tokens, who am I."},
    {
        "name": "regions",
        "description": "The district's streets, communities and grids; organizers.",
    },
    {"name": "categories", "description": "What wishes and offers are about."},
    {"name": "members", "description": "Members, their rosters of what they offer, approval."},
    {"name": "wishes", "description": "Publishing, reviewing, editing and browsing wishes."},
    {"name": "claims", "description": "Claiming, fulfilling, confirming; a member's claims."},
    {"name": "photos", "description": "Photos of wishes and proof of fulfilment."},
    {"name": "matching", "description": "Organizers' proposed matches of members to wishes."},
    {"name": "claim events", "description": "Cross-community claim events and their board."},
    {"name": "notifications", "description": "The in-app inbox."},
    {"name": "sync", "description": "Delta sync for offline phones."},
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    import_all_models()  # every mapper configured before the first request
    logging.basicConfig(level=settings.log_level.upper())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = create_database(settings)
        # Every session carries the claim deadline policy (claims, extensions, clock jobs).
        claim_deadlines.install(database, settings)
        app.state.database = database
        app.state.live_feeds = LiveFeeds(database, settings)
        jobs: list[Job] = [
            *CLOCK_JOBS,
            partial(purge_expired, ttl=timedelta(hours=settings.idempotency_ttl_hours)),
        ]
        clocks = [
            asyncio.create_task(
                run_clock(database, jobs, settings.clock_interval_seconds), name="clock"
            ),
            # Events open and close on the second, and deadlines pass on the second: a
            # cheap read each tick, a write only when one is due (and a restarted server
            # catches up on its first tick).
            asyncio.create_task(
                run_periodic(
                    events_service.catch_up_all, database, settings.event_clock_interval_seconds
                ),
                name="event-clock",
            ),
            asyncio.create_task(
                run_periodic(pass_deadlines, database, settings.deadline_clock_interval_seconds),
                name="deadline-clock",
            ),
            # Members are reminded before a claim event opens (once per event and start).
            asyncio.create_task(
                run_periodic(
                    partial(
                        notifications_service.remind_event_openings,
                        lead=timedelta(minutes=settings.event_reminder_minutes),
                    ),
                    database,
                    settings.clock_interval_seconds,
                ),
                name="event-reminders",
            ),
        ]
        # Notifications go to the push gateway after commit, when one is configured.
        push = sender_for(database, settings)
        if push is not None:
            clocks.append(asyncio.create_task(push.run(), name="push-webhook"))
        # What startup built lives as long as the process: out of the collector's way.
        tune_garbage_collector()
        try:
            yield
        finally:
            for clock in clocks:
                clock.cancel()
            for clock in clocks:
                with contextlib.suppress(asyncio.CancelledError):
                    await clock
            if push is not None:
                await push.close()
            await app.state.live_feeds.close()
            await app.state.sms.drain()
            await database.dispose()

    app = FastAPI(
        title="microwish",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        # /v1/wishes/ is an unknown path (a 404 problem), not a redirect to /v1/wishes.
        redirect_slashes=False,
        generate_unique_id_function=_operation_id,
        # The documentation's order (the routes are matched in another: see below).
        openapi_tags=OPENAPI_TAGS,
    )
    app.state.settings = settings
    # Claim events this process has seen opened (see app.events.router.opened_on_time).
    app.state.events_past_opening = set()
    app.state.rate_limits = RateLimits(settings)
    app.state.sms = SmsOutbox(create_sms_sender(settings))
    install_problem_handlers(app)
    # Every POST takes an optional Idempotency-Key (see app.core.idempotency).
    app.add_middleware(IdempotencyMiddleware)
    # Outside it: a JSON body over 1 MiB is refused before anyone holds or parses it.
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(HeadAsGetMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "Location", "Retry-After", "Idempotent-Replayed"],
        )
    # Routes are tried one by one in this order, so the claim rush's endpoints come first:
    # matching a claim took a tenth of its server CPU when its router came seventh.
    for router in (
        claims_router,
        events_router,
        health_router,
        accounts_router,
        regions_router,
        categories_router,
        members_router,
        wishes_router,
        photos_router,
        matching_router,
        events_board_router,
        notifications_router,
        sync_router,
        problem_docs_router,
    ):
        app.include_router(router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_headers(document_problems(FastAPI.openapi(app)))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


app = create_app()
