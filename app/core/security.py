"""Password hashing (argon2 via pwdlib), JWT access tokens, opaque refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import anyio.to_thread
import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from app.core.db import utcnow
from app.core.errors import Unauthorized
from app.core.types import MAX_ID

_password_hash = PasswordHash((Argon2Hasher(),))
# Verified against when the phone is unknown, so a wrong phone costs as much as a wrong password.
_DUMMY_HASH = _password_hash.hash("microwish-timing-equaliser")

JWT_ALGORITHM = "HS256"
ACCESS_AUDIENCE = "microwish:access"


def _verify(password: str, password_hash: str | None) -> bool:
    if password_hash is None:
        _password_hash.verify(password, _DUMMY_HASH)
        return False
    return _password_hash.verify(password, password_hash)


# argon2 takes tens of milliseconds of CPU on purpose: run it off the event loop.
async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(_password_hash.hash, password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    return await anyio.to_thread.run_sync(_verify, password, password_hash)


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    expires_at: datetime


def issue_access_token(*, user_id: int, secret_key: str, ttl_seconds: int) -> str:
    now = utcnow()
    payload = {
        "sub": str(user_id),
        "aud": ACCESS_AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_seconds)).timestamp()),
        # Unique per token: two issued within the same second (a login and an immediate
        # refresh) are still different tokens, as "a new pair" promises.
        "jti": secrets.token_urlsafe(9),
    }
    return jwt.encode(payload, secret_key, algorithm=JWT_ALGORITHM)


def decode_access_token(token: str, *, secret_key: str) -> AccessClaims:
    try:
        payload = jwt.decode(
            token,
            secret_key,
            algorithms=[JWT_ALGORITHM],
            audience=ACCESS_AUDIENCE,
            options={"require": ["sub", "exp", "aud"]},
        )
        subject = payload["sub"]
        # We only ever issue a user id in digits: anything else is not our token.
        if not (isinstance(subject, str) and subject.isascii() and subject.isdigit()):
            raise ValueError("not a user id")
        user_id = int(subject)
        if not 1 <= user_id <= MAX_ID:
            raise ValueError("not a user id")
        expires_at = datetime.fromtimestamp(payload["exp"], UTC)
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("token_expired", headers=_challenge("invalid_token")) from exc
    except (jwt.InvalidTokenError, ValueError, TypeError, OverflowError, OSError) as exc:
        raise Unauthorized(headers=_challenge("invalid_token")) from exc
    return AccessClaims(user_id=user_id, expires_at=expires_at)


_CLAIMS_STATE = "access_claims"


def request_access_claims(
    scope: MutableMapping[str, Any], token: str, *, secret_key: str
) -> AccessClaims:
    """``decode_access_token`` once per request: the Idempotency-Key middleware and the
    bearer dependency both need the user (a valid token's claims are kept in the request's
    state; an invalid one raises each time)."""
    state = scope.setdefault("state", {})
    known = state.get(_CLAIMS_STATE)
    if known is not None and known[0] == token:
        return cast(AccessClaims, known[1])
    claims = decode_access_token(token, secret_key=secret_key)
    state[_CLAIMS_STATE] = (token, claims)
    return claims


def _challenge(error: str | None = None) -> dict[str, str]:
    value = 'Bearer realm="microwish"'
    if error:
        value += f', error="{error}"'
    return {"WWW-Authenticate": value}


def bearer_challenge() -> dict[str, str]:
    return _challenge()


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    """Refresh tokens are stored hashed; they are random, so a fast hash is enough."""
    return hashlib.sha256(token.encode()).hexdigest()
