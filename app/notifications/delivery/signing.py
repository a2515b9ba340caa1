"""Standard Webhooks signatures (https://www.standardwebhooks.com/): the signed content is
``{webhook-id}.{webhook-timestamp}.{body}``, the signature HMAC-SHA256 with the secret's
bytes, sent as ``webhook-signature: v1,<base64>``. A secret is ``whsec_`` + base64 of
24–64 random bytes. The few lines are written out here rather than pulling in a package."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
# How far a receiver should let a timestamp stray from its clock (the spec's suggestion).
DEFAULT_TOLERANCE_SECONDS = 5 * 60


class InvalidSecret(ValueError):
    pass


def secret_bytes(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret(f"a webhook secret starts with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSecret("a webhook secret is whsec_ followed by base64") from exc
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise InvalidSecret(
            f"a webhook secret holds {MIN_SECRET_BYTES}–{MAX_SECRET_BYTES} bytes, not {len(key)}"
        )
    return key


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    key: bytes,
    *,
    message_id: str,
    timestamp: str,
    signatures: str,
    body: bytes,
    now: float,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver does: the timestamp is recent and one of the space-separated
    ``v1,`` signatures matches (compared in constant time)."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent_at) > tolerance_seconds:
        return False
    expected = sign(key, message_id, sent_at, body)
    return any(
        hmac.compare_digest(candidate.encode(), expected.encode())
        for candidate in signatures.split()
    )
