"""``Idempotency-Key`` on side-effecting POSTs (IETF httpapi idempotency-key draft).

A phone that loses its connection mid-request retries with the same key; the retry must not
claim twice. How:

1. *Reserve* the (user, key) in a short transaction of its own: insert an ``in_flight``
   row carrying a fingerprint of the request (method, path, body). Only one request can
   insert it; one that finds it gets the stored response (``done``, same fingerprint),
   422 ``idempotency_key_reused`` (a different request under the same key) or 409
   ``idempotency_in_flight`` (the first is still running).
2. Run the request. Its session dependency does not commit on its own: it hands the open
   transaction back here.
3. Store the response on the key's row **in that same transaction**, then commit. The
   change and its stored response become visible together, or neither does; a crash in
   between leaves the row ``in_flight`` with nothing changed, and after
   ``STALE_AFTER`` a retry takes it over and runs again.

A request that fails (a problem response) changed nothing: its reservation is dropped, so
a retry runs again. Keys are kept ``settings.idempotency_ttl_hours`` (≥ 24 h), per user.
Calls without a token (register, asking for a code, the token routes) share one anonymous
scope, so there the key is bound to the body (``_ANONYMOUS_ROUTES``); any other route called
without a valid token is passed straight on, to answer 401 as it would without a key.

The routes that hand out tokens (``/v1/auth/token``, ``/refresh``, ``/otp/verify``) are
replayable too, since a refresh token or a code is spent by its first use and a lost answer
would otherwise log the phone out. Their answers are credentials, so:

- the stored body is sealed (AES-GCM) with a key derived from the server secret and the
  request body itself (which holds the password, refresh token or code, none of them kept
  in the clear): a copy of the database cannot open it;
- the key is bound to the body: the same key with another body is simply another request,
  which runs (and meets the route's own attempt counters and rate limits) instead of
  telling a guesser "wrong body" for free;
- a replay is honoured for ``CREDENTIAL_REPLAY_WINDOW`` only (lost-answer retries come
  within seconds); after it the request runs again like any first attempt.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
from collections.abc import MutableMapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    BigInteger,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    bindparam,
    delete,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.db import (
    Base,
    BigIntPK,
    Database,
    UTCDateTime,
    fetch_one_alone,
    fetch_one_on_driver,
    utcnow,
)
from app.core.errors import Conflict, DomainError, ValidationFailed

HEADER = "idempotency-key"
KEY_MAX = 255
STALE_AFTER = timedelta(seconds=60)
ANONYMOUS = 0  # scope of unauthenticated requests (user ids start at 1)
# Routes whose responses carry fresh credentials (see the module doc).
_CREDENTIAL_ROUTES = frozenset({"/v1/auth/token", "/v1/auth/refresh", "/v1/auth/otp/verify"})
# Routes for callers without a token. Their keys share one scope, so a key is bound to the
# body there: two people who happen to pick the same key are two requests, never one
# person's answer replayed to the other (nor a 422 that tells them a key is in use).
_ANONYMOUS_ROUTES = _CREDENTIAL_ROUTES | {"/v1/auth/register", "/v1/auth/otp/request"}
CREDENTIAL_REPLAY_WINDOW = timedelta(minutes=10)
# Response headers worth replaying.
_REPLAYED_HEADERS = {b"content-type", b"location", b"etag", b"content-language"}


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (
        Index("uq_idempotency_keys_scope_key", "user_scope", "key", unique=True),
        Index("ix_idempotency_keys_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # The user id, or 0 for unauthenticated requests (no FK: a deleted user's keys expire).
    user_scope: Mapped[int] = mapped_column(BigIntPK)
    key: Mapped[str] = mapped_column(String(KEY_MAX))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # in_flight | done
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[str | None] = mapped_column(String(2000))
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@dataclass
class Handoff:
    """Set on the request's state: the session dependency leaves its open transaction
    here instead of committing it."""

    stack: AsyncExitStack | None = None
    session: AsyncSession | None = None


@dataclass
class _Stored:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass
class _Captured:
    messages: list[Message] = field(default_factory=list)

    def stored(self) -> _Stored:
        start = next(m for m in self.messages if m["type"] == "http.response.start")
        body = b"".join(
            m.get("body", b"") for m in self.messages if m["type"] == "http.response.body"
        )
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() in _REPLAYED_HEADERS]
        return _Stored(status=int(start["status"]), headers=headers, body=body)


def _canonical_body(scope: Scope, body: bytes) -> bytes:
    """The body as a retry of the same request would send it again. JSON: the same data
    (key order and spacing are the client library's business). Multipart (a photo): the
    same bytes but for the boundary, which HTTP clients pick at random for every attempt."""
    content_type = next(
        (value for name, value in scope.get("headers", []) if name == b"content-type"), b""
    ).decode("latin-1")
    media_type, _, parameters = content_type.partition(";")
    media_type = media_type.strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, or nested too deep to compare
            return body
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    if media_type == "multipart/form-data":
        for parameter in parameters.split(";"):
            name, _, value = parameter.strip().partition("=")
            boundary = value.strip().strip('"').encode("latin-1")
            if name.strip().lower() == "boundary" and boundary:
                return body.replace(boundary, b"<boundary>")
    return body


def _fingerprint(scope: Scope, canonical_body: bytes) -> str:
    digest = hashlib.sha256()
    digest.update(scope["method"].encode())
    digest.update(b"\0" + scope["path"].encode() + b"\0" + scope.get("query_string", b""))
    digest.update(b"\0" + canonical_body)
    return digest.hexdigest()


@dataclass(frozen=True)
class _Seal:
    """Seals a credential route's stored answer with a key only the same request can derive
    (server secret + the request's own body, which carries the secret it was answered for)."""

    key: bytes

    @classmethod
    def for_request(cls, secret_key: str, canonical_body: bytes) -> _Seal:
        derived = hmac.new(
            secret_key.encode(), b"microwish idempotent credentials\0" + canonical_body, "sha256"
        )
        return cls(derived.digest())

    def close(self, body: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self.key).encrypt(nonce, body, None)

    def open(self, sealed: bytes) -> bytes | None:
        try:
            return AESGCM(self.key).decrypt(sealed[:12], sealed[12:], None)
        except (InvalidTag, ValueError):  # sealed under another server secret
            return None


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(IdempotencyKey)


_table = cast(Table, IdempotencyKey.__table__)
# PostgreSQL: the reservation as one statement, built once, run as a transaction of its own.
_RESERVE = (
    pg_insert(_table)
    .values(
        user_scope=bindparam("user_scope", type_=BigInteger()),
        key=bindparam("key", type_=String()),
        fingerprint=bindparam("fingerprint", type_=String()),
        status="in_flight",
        created_at=bindparam("now", type_=UTCDateTime()),
        updated_at=bindparam("now", type_=UTCDateTime()),
    )
    .on_conflict_do_nothing(index_elements=["user_scope", "key"])
    .returning(_table.c.id)
)
_STORE = (
    update(_table)
    .where(
        _table.c.user_scope == bindparam("scope_of_key"), _table.c.key == bindparam("key_of_row")
    )
    .values(
        status="done",
        response_status=bindparam("response_status"),
        response_headers=bindparam("response_headers"),
        response_body=bindparam("response_body"),
        updated_at=bindparam("now"),
    )
    .returning(_table.c.id)
)
_RELEASE = (
    delete(_table)
    .where(
        _table.c.user_scope == bindparam("user_scope", type_=BigInteger()),
        _table.c.key == bindparam("key", type_=String()),
        _table.c.status == "in_flight",
    )
    .returning(_table.c.id)
)


async def _reserve(
    database: Database, user_scope: int, key: str, fingerprint: str, seal: _Seal | None = None
) -> _Stored | None:
    """Reserve the key (None), or return the response already stored for it. With ``seal``
    (a credential route) the stored body is opened with it, and an answer older than
    ``CREDENTIAL_REPLAY_WINDOW`` (or one that no longer opens) is not replayed: the key is
    taken over and the request runs again."""
    now = utcnow()
    if not database.is_sqlite:
        # The common case, a new key: one round trip (no BEGIN and COMMIT around it).
        reserved = await fetch_one_alone(
            database.engine,
            _RESERVE,
            {"user_scope": user_scope, "key": key, "fingerprint": fingerprint, "now": now},
        )
        if reserved is not None:
            return None
    async with database.transaction(write=True) as session:
        inserted = await session.execute(
            _insert(session)
            .values(
                user_scope=user_scope,
                key=key,
                fingerprint=fingerprint,
                status="in_flight",
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["user_scope", "key"])
            .returning(IdempotencyKey.id)
        )
        if inserted.first() is not None:
            return None
        row = await session.scalar(
            select(IdempotencyKey).where(
                IdempotencyKey.user_scope == user_scope, IdempotencyKey.key == key
            )
        )
        if row is None:  # expired and purged in between: reserve again next time
            raise Conflict("idempotency_in_flight")
        if row.fingerprint != fingerprint:
            raise ValidationFailed("idempotency_key_reused")
        if row.status == "done":
            assert row.response_status is not None
            headers = [
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in json.loads(row.response_headers or "[]")
            ]
            body: bytes | None = row.response_body or b""
            if seal is not None:
                fresh = row.created_at >= now - CREDENTIAL_REPLAY_WINDOW
                body = seal.open(body) if fresh and body else None
            if body is not None:
                return _Stored(row.response_status, headers, body)
            taken_over = IdempotencyKey.status == "done"
        else:
            # In flight. A reservation older than STALE_AFTER belongs to a request that died
            # before committing (nothing of it was stored): take it over.
            taken_over = (IdempotencyKey.status == "in_flight") & (
                IdempotencyKey.updated_at < now - STALE_AFTER
            )
        taken = await session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.id == row.id, taken_over)
            .values(
                status="in_flight",
                response_status=None,
                response_headers=None,
                response_body=None,
                created_at=now,
                updated_at=now,
            )
            .returning(IdempotencyKey.id)
        )
        if taken.first() is None:
            raise Conflict("idempotency_in_flight", headers={"Retry-After": "1"})
        return None


async def _store(
    session: AsyncSession, user_scope: int, key: str, stored: _Stored, seal: _Seal | None
) -> None:
    connection = await session.connection()
    params = {
        "scope_of_key": user_scope,
        "key_of_row": key,
        "response_status": stored.status,
        "response_headers": json.dumps(
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in stored.headers]
        ),
        "response_body": stored.body if seal is None else seal.close(stored.body),
        "now": utcnow(),
    }
    if connection.dialect.driver == "asyncpg":
        await fetch_one_on_driver(connection, _STORE, params)  # in the request's transaction
    else:
        await connection.execute(_STORE, params)


async def _release(database: Database, user_scope: int, key: str) -> None:
    params = {"user_scope": user_scope, "key": key}
    if not database.is_sqlite:
        await fetch_one_alone(database.engine, _RELEASE, params)  # one statement, one round trip
        return
    async with database.transaction(write=True) as session:
        await session.execute(_RELEASE, params)


async def purge_expired(session: AsyncSession, *, ttl: timedelta) -> int:
    """The clock's job: forget keys older than the TTL."""
    result = await session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - ttl)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# The body is held in memory to fingerprint and replay it: never more than the largest
# request any route accepts (a photo, plus room for its multipart envelope).
_ENVELOPE = 64 * 1024


async def _bounded_body(request: Request) -> tuple[bytes, bool]:
    """The body, and whether it is all of it: reading stops past the cap (what was read is
    returned, for the route to go on from)."""
    settings = request.app.state.settings
    cap = int(getattr(settings, "photo_max_bytes", 10 * 1024 * 1024)) + _ENVELOPE
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        return b"", False
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        chunks.append(chunk)
        if size > cap:
            return b"".join(chunks), False
    return b"".join(chunks), True


def _user_scope(request: Request) -> int:
    from app.core.security import request_access_claims

    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return ANONYMOUS
    try:
        claims = request_access_claims(
            request.scope, token, secret_key=request.app.state.settings.secret_key
        )
    except DomainError:
        return ANONYMOUS  # the route itself answers 401
    return claims.user_id


def _valid_key(key: str) -> bool:
    return 1 <= len(key) <= KEY_MAX and key.isascii() and key.isprintable()


class IdempotencyMiddleware:
    """Idempotency-Key handling for every POST (see the module doc). A middleware, so it
    sees the final response, problem responses included: a request that ended in an error
    changed nothing and its reservation is dropped."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        key = request.headers.get(HEADER)
        # Anonymous routes: one scope, even with a bearer token that lapses between attempts.
        anonymous_route = scope["path"] in _ANONYMOUS_ROUTES
        user_scope = ANONYMOUS if anonymous_route else _user_scope(request)
        if key is None or (not anonymous_route and user_scope == ANONYMOUS):
            # No key; or a route that needs a token called without a valid one: the route
            # answers 401 as it would without the key (nothing is reserved or read first).
            await self.app(scope, receive, send)
            return
        try:
            await self._handle(request, key, user_scope, scope, receive, send)
        except DomainError as refusal:
            from app.core.problems import domain_problem

            await domain_problem(request, refusal)(scope, receive, send)

    async def _handle(
        self,
        request: Request,
        key: str,
        user_scope: int,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        if not _valid_key(key):
            raise ValidationFailed("invalid_idempotency_key", max_length=KEY_MAX)
        body, complete = await _bounded_body(request)
        if not complete:
            # Larger than any route accepts (an oversized photo): nothing to remember. The
            # route refuses it with its own answer (413 image_too_large).
            read = [{"type": "http.request", "body": body, "more_body": True}]

            async def rest() -> Message:
                return read.pop() if read else await receive()

            await self.app(scope, rest, send)
            return
        database: Database = request.app.state.database
        canonical = _canonical_body(scope, body)
        fingerprint = _fingerprint(scope, canonical)
        seal = None
        if scope["path"] in _ANONYMOUS_ROUTES:
            # Bound to the body (see the module doc and _ANONYMOUS_ROUTES).
            key = hashlib.sha256(f"{fingerprint}\0{key}".encode()).hexdigest()
            if scope["path"] in _CREDENTIAL_ROUTES:
                seal = _Seal.for_request(request.app.state.settings.secret_key, canonical)
        stored = await _reserve(database, user_scope, key, fingerprint, seal)
        if stored is not None:
            await _send_stored(send, stored, replayed=True)
            return

        delivered = False

        async def replay_body() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        handoff = Handoff()
        scope.setdefault("state", {})["idempotency"] = handoff
        captured = _Captured()

        async def capture(message: Message) -> None:
            captured.messages.append(message)

        try:
            await self.app(scope, replay_body, capture)
            response = captured.stored()
            if response.status >= 400:
                # Rolled back (the session saw the error): nothing to remember.
                if handoff.stack is not None:
                    stack, handoff.stack = handoff.stack, None
                    await stack.aclose()
                await _release(database, user_scope, key)
            elif handoff.stack is not None:
                assert handoff.session is not None
                await _store(handoff.session, user_scope, key, response, seal)
                stack, handoff.stack = handoff.stack, None
                await stack.aclose()  # commit: the change and its response together
            else:
                async with database.transaction(write=True) as session:
                    await _store(session, user_scope, key, response, seal)
        except BaseException:
            if handoff.stack is not None:
                stack, handoff.stack = handoff.stack, None
                await stack.__aexit__(*sys.exc_info())
            await _release(database, user_scope, key)
            raise
        for message in captured.messages:
            await send(message)


async def _send_stored(send: Send, stored: _Stored, *, replayed: bool) -> None:
    headers = [h for h in stored.headers if h[0].lower() != b"content-length"]
    headers.append((b"content-length", str(len(stored.body)).encode()))
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": stored.status, "headers": headers})
    await send({"type": "http.response.body", "body": stored.body})


def handoff_of(request: Request) -> Handoff | None:
    state: MutableMapping[str, Any] = request.scope.get("state", {})
    handoff = state.get("idempotency")
    return handoff if isinstance(handoff, Handoff) else None
