"""Notifications: written to the inbox and the delivery outbox in the caller's transaction,
delivered after commit. (Interface first; the implementation lands with the notifications
work of issue 6.)"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


async def notify(
    session: AsyncSession, *, user_ids: Iterable[int | None], kind: str, data: dict[str, Any]
) -> None:
    """Tell each user (None entries are skipped) that ``kind`` happened, with ``data``
    (ids as strings, no personal data beyond what the user may see)."""
    return None
