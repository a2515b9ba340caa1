"""Keyset pagination: opaque cursors and the ``{"items": [...], "next_cursor": ...}`` page.

A cursor is the sort key of the last item of a page, JSON in URL-safe base64, tagged with
the listing it belongs to so a cursor from one listing is refused by another. Never OFFSET.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, or_

from app.core.errors import ValidationFailed

T = TypeVar("T")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_CURSOR_LENGTH = 512


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: str | None

    def after_id(self, listing: str) -> int | None:
        """The id a listing keyed by id alone resumes after (None on the first page)."""
        if self.cursor is None:
            return None
        key = decode_cursor(listing, self.cursor, 1)[0]
        if not isinstance(key, int):
            raise ValidationFailed("invalid_cursor")
        return key

    @property
    def fetch(self) -> int:
        """Rows to ask for: one more than the page, to know whether another follows."""
        return self.limit + 1


async def page_params(  # async: no threadpool hop per request
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, 1–{MAX_LIMIT}.")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page."),
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


def encode_cursor(listing: str, key: Sequence[Any]) -> str:
    raw = json.dumps([listing, list(key)], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(listing: str, cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        tag, key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, TypeError, UnicodeDecodeError) as exc:
        raise ValidationFailed("invalid_cursor") from exc
    if tag != listing or not isinstance(key, list) or len(key) != arity:
        raise ValidationFailed("invalid_cursor")
    if not all(_is_key_part(part) for part in key):
        raise ValidationFailed("invalid_cursor")
    return key


def _is_key_part(part: object) -> bool:
    if isinstance(part, bool):
        return False
    if isinstance(part, int):
        return -(2**63) <= part < 2**63  # a bigint; anything larger would fail in the database
    return isinstance(part, str)


def after(
    columns: Sequence[Any], key: Sequence[Any], *, descending: bool = False
) -> ColumnElement[bool]:
    """Rows strictly after ``key`` in the order of ``columns`` (all ascending or all descending).

    Spelled as nested OR/AND rather than a row-value comparison so both databases can use
    the index on the leading column.
    """
    clauses = []
    for position, column in enumerate(columns):
        equal_prefix = [columns[i] == key[i] for i in range(position)]
        beyond = column < key[position] if descending else column > key[position]
        clauses.append(and_(*equal_prefix, beyond))
    return or_(*clauses)


def build_page(
    rows: Sequence[T], limit: int, listing: str, key_of: Any
) -> tuple[list[T], str | None]:
    """``rows`` was fetched with ``limit + 1``: the extra row only says a next page exists."""
    items = list(rows[:limit])
    next_cursor = encode_cursor(listing, key_of(items[-1])) if len(rows) > limit and items else None
    return items, next_cursor
