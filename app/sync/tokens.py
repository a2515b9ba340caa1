"""Sync tokens: opaque to clients, JSON in URL-safe base64 here.

A token says where a client's copy stands: ``base``, the version its copy is complete up to
(every change at or after it is still to come; ``None`` while a full snapshot is being
paged), and, between the pages of one pass, ``position`` (the last entry sent) and ``floor``
(the base the next pass will start from: the version read by the pass's first page). With
them go the database's epoch, the user, the fingerprint of what the user's sync covers and
the times the versions were read (for expiry). Not signed: a token only ever selects the
bearer's own data, so a forged one can do no more than make its bearer miss or repeat its
own changes.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from app.core.errors import ValidationFailed

FORMAT = 1
MAX_TOKEN_LENGTH = 512
# Sections of a pass, in order; a position names one and an id in it.
SECTIONS = ("wishes", "claims", "notifications")
_MAX_BIGINT = 2**63


@dataclass(frozen=True)
class Position:
    section: str
    after_id: int


@dataclass(frozen=True)
class SyncToken:
    epoch: str
    user_id: int
    fingerprint: str
    base: int | None
    base_at: int | None
    position: Position | None = None
    floor: int | None = None
    floor_at: int | None = None

    @property
    def oldest_at(self) -> int | None:
        """When the oldest version this token depends on was read (unix seconds)."""
        times = [moment for moment in (self.base_at, self.floor_at) if moment is not None]
        return min(times) if times else None


def encode(token: SyncToken) -> str:
    body: dict[str, Any] = {
        "f": FORMAT,
        "e": token.epoch,
        "u": token.user_id,
        "h": token.fingerprint,
        "b": token.base,
        "bt": token.base_at,
    }
    if token.position is not None:
        body["p"] = [token.position.section, token.position.after_id]
        body["fl"] = token.floor
        body["ft"] = token.floor_at
    raw = json.dumps(body, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _int(value: object, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_BIGINT:
        raise ValidationFailed("invalid_sync_token")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise ValidationFailed("invalid_sync_token")
    return value


def decode(text: str) -> SyncToken:
    """Raises ``ValidationFailed("invalid_sync_token")`` for anything this module did not make."""
    if not 1 <= len(text) <= MAX_TOKEN_LENGTH:
        raise ValidationFailed("invalid_sync_token")
    try:
        padded = text + "=" * (-len(text) % 4)
        body = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationFailed("invalid_sync_token") from exc
    if not isinstance(body, dict) or body.get("f") != FORMAT:
        raise ValidationFailed("invalid_sync_token")
    position = None
    if "p" in body:
        raw = body["p"]
        if not isinstance(raw, list) or len(raw) != 2 or raw[0] not in SECTIONS:
            raise ValidationFailed("invalid_sync_token")
        position = Position(section=raw[0], after_id=_int(raw[1]) or 0)
    token = SyncToken(
        epoch=_str(body.get("e")),
        user_id=_int(body.get("u")) or 0,
        fingerprint=_str(body.get("h")),
        base=_int(body.get("b"), optional=True),
        base_at=_int(body.get("bt"), optional=True),
        position=position,
        floor=_int(body.get("fl"), optional=True) if position else None,
        floor_at=_int(body.get("ft"), optional=True) if position else None,
    )
    # A base needs its time; a position needs the floor the pass will end on.
    if (token.base is None) != (token.base_at is None):
        raise ValidationFailed("invalid_sync_token")
    if position is not None and (token.floor is None or token.floor_at is None):
        raise ValidationFailed("invalid_sync_token")
    return token
