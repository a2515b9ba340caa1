"""Short-lived signed photo URLs: ``/v1/photos/{id}/{variant}?expires=…&signature=…``.

The signature is HMAC-SHA256 under the app's secret over the photo id, its random storage
key, the variant and the expiry, so a URL opens exactly one image until its expiry (never
another photo that later gets the same id: SQLite may reuse the id of a deleted last row),
without an Authorization header
(image views in the app load URLs, they do not add headers). URLs are handed out only to
people who may see the photo; one that leaks works for minutes, not for ever.

Expiries are rounded up to a whole ``EXPIRY_STEP`` so that listing the same photos twice in
a row gives the same URLs, and the app's image cache (keyed by URL) hits.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import math
from dataclasses import dataclass
from datetime import UTC, datetime

EXPIRY_STEP = 300  # seconds
SIGNATURE_LENGTH = 43  # unpadded URL-safe base64 of 32 bytes
_CONTEXT = b"microwish photo url v2"


class PhotoVariant(enum.StrEnum):
    full = "full"
    thumbnail = "thumbnail"


@dataclass(frozen=True)
class SignedLink:
    expires: int  # Unix time
    signature: str


def expires_at(expires: int) -> datetime:
    return datetime.fromtimestamp(expires, UTC)


def _signature(
    secret: str, photo_id: int, storage_key: str, variant: PhotoVariant, expires: int
) -> str:
    message = b"%s\n%d\n%s\n%s\n%d" % (
        _CONTEXT,
        photo_id,
        storage_key.encode(),
        variant.value.encode(),
        expires,
    )
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def expiry(now: datetime, ttl_seconds: int) -> int:
    """Unix time ``ttl_seconds`` or a little more after ``now``, on an EXPIRY_STEP boundary."""
    earliest = now.timestamp() + ttl_seconds
    return math.ceil(earliest / EXPIRY_STEP) * EXPIRY_STEP


def sign(
    secret: str, photo_id: int, storage_key: str, variant: PhotoVariant, expires: int
) -> SignedLink:
    return SignedLink(
        expires=expires, signature=_signature(secret, photo_id, storage_key, variant, expires)
    )


def signature_valid(
    secret: str,
    photo_id: int,
    storage_key: str,
    variant: PhotoVariant,
    expires: int,
    signature: str,
) -> bool:
    expected = _signature(secret, photo_id, storage_key, variant, expires)
    return hmac.compare_digest(expected.encode(), signature.encode("ascii", "replace"))
