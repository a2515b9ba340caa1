"""Actions that take no request body refuse one they cannot ignore safely.

FastAPI ignores the body of a route that declares none, so ``POST /v1/wishes/{id}/approve``
with ``{"force": true}`` or a broken ``{`` would act as if nothing was sent. Bad input must
change nothing: such a route accepts no body, an empty one, ``{}`` or ``null`` (what HTTP
client libraries send by default), and answers 400 ``malformed_json`` for what is not JSON
and 422 ``validation_failed`` for anything else, before the handler runs. Every router is
an ``APIRouter(route_class=Route)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

_ACTING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_IGNORABLE: tuple[Any, ...] = ({}, None)


def _refusal(body: bytes) -> tuple[int, str, dict[str, Any], dict[str, Any]] | None:
    """Why a body-less route must refuse ``body`` (status, code, message parameters,
    problem fields), or None."""
    if not body.strip():
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        return 400, "malformed_json", {"reason": str(exc)[:200]}, {}
    if data in _IGNORABLE:
        return None
    error = {"loc": ["body"], "msg": "This action takes no request body", "type": "extra_forbidden"}
    return 422, "validation_failed", {}, {"errors": [error]}


class Route(APIRoute):
    """The project's route: an acting route that declares no body (uploads, which document
    and read their own multipart body, excepted) checks that none was sent."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_body = self.body_field is not None or "requestBody" in (self.openapi_extra or {})
        if takes_body or not ((self.methods or set()) & _ACTING):
            return handler

        async def guarded(request: Request) -> Response:
            # Small: BodyLimitMiddleware caps what reaches a route. Cached on the request.
            refusal = _refusal(await request.body())
            if refusal is None:
                return await handler(request)
            from app.core.problems import problem_response

            status, code, params, extra = refusal
            return problem_response(request, status=status, code=code, params=params, extra=extra)

        return guarded
