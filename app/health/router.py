from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.requests import Request

from app.core.db import Database
from app.core.errors import ServiceUnavailable
from app.core.nobody import Route
from app.core.problems import problem_responses

router = APIRouter(route_class=Route, tags=["health"])

HEALTH_DB_TIMEOUT_SECONDS = 2.0


class Health(BaseModel):
    status: Literal["ok"]
    database: Literal["sqlite", "postgresql"]


@router.get(
    "/v1/health",
    summary="200 when the service and its database answer, else 503 (HEAD too)",
    responses=problem_responses(503),
)
async def health(request: Request) -> Health:
    database: Database = request.app.state.database
    try:
        async with asyncio.timeout(HEALTH_DB_TIMEOUT_SECONDS):
            await database.ping()
    except Exception as exc:  # whatever the cause, the database does not answer
        raise ServiceUnavailable(headers={"Retry-After": "5"}) from exc
    return Health(status="ok", database="sqlite" if database.is_sqlite else "postgresql")
