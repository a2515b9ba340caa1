"""The one place where errors become RFC 9457 ``application/problem+json`` responses."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.routing import Match

from app.core.errors import DomainError
from app.core.i18n import Lang, negotiate_language, render

logger = logging.getLogger("microwish.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "/problems/"


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where the bad value is, e.g. ['body', 'phone'].")
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem; ``code`` is stable and meant for programs, ``title``/``detail``
    for people (zh-CN by default, en with ``Accept-Language: en``)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "example": {
                "type": "/problems/not_found",
                "title": "未找到",
                "status": 404,
                "detail": "区域不存在。",
                "code": "not_found",
                "instance": "/v1/regions/42",
            }
        },
    )

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[FieldError] | None = None


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    params: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    lang: Lang | None = None,
    message: str | None = None,
) -> JSONResponse:
    lang = lang or negotiate_language(request.headers.get("accept-language"))
    title, detail = render(message or code, lang, params or {})
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.url.path,
    }
    if extra:
        body.update({key: value for key, value in extra.items() if key not in body})
    response_headers = {"Content-Language": lang, "Vary": "Accept-Language"}
    response_headers.update(headers or {})
    return JSONResponse(
        body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=response_headers
    )


def domain_problem(request: Request, exc: DomainError) -> JSONResponse:
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        params=exc.params,
        extra=exc.extra,
        headers=exc.headers,
        message=exc.message,
    )


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return domain_problem(request, exc)


def _field_errors(errors: Any) -> list[dict[str, Any]]:
    # Never echo the offending input back: it may be a password or a phone number.
    return [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error["type"]}
        for error in errors
    ]


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    json_error = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if json_error is not None:
        reason = (json_error.get("ctx") or {}).get("error", "")
        return problem_response(
            request, status=400, code="malformed_json", params={"reason": reason}
        )
    return problem_response(
        request, status=422, code="validation_failed", extra={"errors": _field_errors(errors)}
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    415: "unsupported_media_type",
    429: "rate_limited",
}


# FastAPI's own 400 for a body it could not decode at all (invalid UTF-8, nesting too deep
# for the parser, an integer of thousands of digits): a malformed body like any other.
_UNREADABLE_BODY = "There was an error parsing the body"


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _UNREADABLE_BODY:
        return problem_response(
            request,
            status=400,
            code="malformed_json",
            params={"reason": "not UTF-8 JSON this service can read"},
        )
    code = _HTTP_CODES.get(
        exc.status_code, "bad_request" if exc.status_code < 500 else "internal_error"
    )
    params: dict[str, Any] = {"resource": "route", "method": request.method}
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return problem_response(
        request, status=exc.status_code, code=code, params=params, headers=headers
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """Every method some route answers on this path (RFC 9110 §15.5.6): Starlette names only
    those of the first route that matched the path (``/v1/wishes`` is a GET route and a
    POST route)."""
    allowed = []
    for method in _METHODS:
        probe = {**request.scope, "method": "GET" if method == "HEAD" else method}
        if any(route.matches(probe)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The driver's own message ("database is locked", "connection refused"), never the
    # statement or its parameters, which may hold personal data.
    original = getattr(exc, "orig", None)
    shown = original if original is not None else exc
    message = str(original)[:200] if original is not None else ""
    logger.error("database unavailable: %s: %s", type(shown).__name__, message)
    return problem_response(
        request, status=503, code="service_unavailable", headers={"Retry-After": "5"}
    )


# PostgreSQL refuses text it cannot store (a NUL character, invalid encoding): that is bad
# input, not a server fault. SQLite stores such text as given.
_UNSTORABLE_TEXT = {"22021", "22P05"}


# The database cannot serve now (too many connections, shutting down, connection lost, the
# database or its role gone) or asks for a retry (serialization failure, deadlock): 503
# with Retry-After, not a 500.
_RETRY_LATER_CLASSES = ("08", "53", "57P", "3D", "28")
_RETRY_LATER = {"40001", "40P01"}
# SQLite's equivalents (primary result codes): busy, locked, I/O error, corrupt, full,
# cannot open, not a database.
_SQLITE_RETRY_LATER = {5, 6, 10, 11, 13, 14, 26}


def _causes(exc: BaseException) -> list[BaseException]:
    """The error, what the driver raised under it (``orig``) and what caused it, in turn."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop(0)
        if current is None or any(current is known for known in seen):
            continue
        seen.append(current)
        pending += [getattr(current, "orig", None), current.__cause__, current.__context__]
    return seen


def _sqlstate(exc: BaseException) -> str | None:
    for cause in _causes(exc):
        state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if isinstance(state, str):
            return state
    return None


def _retry_later(exc: BaseException) -> bool:
    """The database (or the network to it) cannot serve now: a refused, reset or lost
    connection, no free connection in the pool, a database gone, corrupt or full, or a
    state that asks for a retry. Also when the driver's error reaches us unwrapped (a
    connection taken straight from the pool). Other errors (a photo store's timeout, a
    bug) stay 500s with their traceback."""
    state = _sqlstate(exc)
    if state is not None:
        return state in _RETRY_LATER or state.startswith(_RETRY_LATER_CLASSES)
    for cause in _causes(exc):
        if isinstance(cause, ConnectionError | PoolTimeout | InterfaceError | OperationalError):
            # InterfaceError: the connection closed under us; OperationalError (as the
            # route handler maps it): also when raised outside a route, in a middleware.
            return True
        if getattr(cause, "connection_invalidated", False):
            return True
        sqlite_code = getattr(cause, "sqlite_errorcode", None)
        if isinstance(sqlite_code, int) and sqlite_code & 0xFF in _SQLITE_RETRY_LATER:
            return True
    return False


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if _sqlstate(exc) in _UNSTORABLE_TEXT:
        return problem_response(request, status=422, code="unstorable_text")
    return await _unexpected_error(request, exc)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    if _retry_later(exc):
        return await _database_unavailable(request, exc)
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(request, status=500, code="internal_error")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting the problem+json a route may answer."""
    descriptions = {
        400: "Malformed request (e.g. invalid JSON)",
        401: "Missing, invalid or expired access token",
        403: "Authenticated but not allowed",
        404: "Not found",
        409: "Conflicts with the current state",
        412: "Precondition failed (If-Match names an older version)",
        428: "Precondition required (send If-Match with the ETag you read)",
        413: "Payload too large",
        415: "Unsupported media type",
        422: "Validation failed",
        410: "Gone (e.g. a sync token too old to continue from)",
        429: "Rate limited",
        503: "Database unavailable",
    }
    return {
        status: {"model": Problem, "description": descriptions.get(status, "Problem")}
        for status in statuses
    }


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite an OpenAPI document so every 4xx/5xx answers ``application/problem+json``
    with the ``Problem`` schema (FastAPI would say application/json, and its default 422
    would describe a shape this API never sends)."""
    problem_content = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in schema.get("paths", {}).values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation or method == "post":
                # Every body is capped (uploads by their own limits, the rest at 1 MiB; a
                # POST that takes none refuses a large one too).
                responses.setdefault("413", {"description": "Payload too large"})
            if method == "post":
                # Any POST under an Idempotency-Key whose first attempt is still running.
                responses.setdefault(
                    "409",
                    {
                        "description": "`idempotency_in_flight`: a request with the same "
                        "Idempotency-Key is still running (retry after `Retry-After`)"
                    },
                )
            for status, response in operation.get("responses", {}).items():
                if status[:1] in {"4", "5"}:
                    response["content"] = problem_content
    components = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema
