"""Shared field types for schemas: string ids, bounded strings, UTC times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, WithJsonSchema

MAX_ID = 2**63 - 1


def _parse_id(value: object) -> object:
    # Ids travel as strings; accept a JSON integer too, but nothing else (no bools, floats).
    if isinstance(value, bool):
        raise ValueError("an id is a string of digits")
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit():
            raise ValueError("an id is a string of digits")
        return int(value)
    return value


Id = Annotated[
    int,
    BeforeValidator(_parse_id),
    Field(ge=1, le=MAX_ID),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": "^[1-9][0-9]{0,18}$", "example": "42"}),
]
"""A resource id: a string in JSON, a bigint in the database."""


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a time needs a zone, e.g. 2026-12-01T09:00:00Z")
    return value.astimezone(UTC)


UTCTime = Annotated[datetime, AfterValidator(_require_utc)]
"""An RFC 3339 time with an offset; stored and returned in UTC."""
