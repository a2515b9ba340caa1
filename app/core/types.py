"""Shared field types for schemas: string ids, bounded strings, UTC times."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
)

MAX_ID = 2**63 - 1


def _parse_id(value: object) -> object:
    # Ids travel as strings; accept a JSON integer too, but nothing else (no bools, floats).
    if isinstance(value, bool):
        raise ValueError("an id is a string of digits")
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit() or len(value) > 19:
            raise ValueError("an id is a string of at most 19 digits")
        return int(value)
    return value


def _path_digits(value: object) -> object:
    # A path id is digits only: int() would also read "1_0" as 10 and " 1" as 1.
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("an id is a string of digits")
    return value


PathDigits = BeforeValidator(_path_digits)
"""Put after ``Path(...)`` in an id path parameter's ``Annotated`` (before it, FastAPI
writes the bounds into the OpenAPI schema as ge/le instead of minimum/maximum)."""


Id = Annotated[
    int,
    BeforeValidator(_parse_id),
    Field(ge=1, le=MAX_ID),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": "^[1-9][0-9]{0,18}$", "example": "42"}),
]
"""A resource id: a string in JSON, a bigint in the database."""


_RFC3339_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _require_rfc3339(value: object) -> object:
    # Pydantic also reads numbers and digit strings as Unix times; the contract says RFC 3339.
    if isinstance(value, str) and _RFC3339_START.match(value):
        return value
    if isinstance(value, datetime):
        return value
    raise ValueError("a time is an RFC 3339 string, e.g. 2026-12-01T09:00:00Z")


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a time needs a zone, e.g. 2026-12-01T09:00:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise ValueError("a time between the years 1 and 9999 in UTC") from None


def rfc3339(moment: datetime) -> str:
    """A time as the API writes it: RFC 3339 in UTC, with ``Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


UTCTime = Annotated[datetime, BeforeValidator(_require_rfc3339), AfterValidator(_require_utc)]
"""An RFC 3339 time with an offset; stored and returned in UTC."""


class Input(BaseModel):
    """Base of request bodies (each also sets ``extra="forbid"``): text may not hold NUL
    characters, which PostgreSQL cannot store and SQLite would, so both refuse them alike
    (422 ``validation_failed``), and no client means them."""

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("text may not contain NUL characters")
        return value
