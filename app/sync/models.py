"""The database's sync epoch and SQLite's change counter (one row; see app/sync/service.py)."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base

EPOCH_MAX = 32


class SyncState(Base):
    """``epoch`` is random per database (made by the migration) and part of every sync token,
    so a token from another database is refused. ``counter`` is SQLite's change counter,
    bumped by the triggers for every row they stamp; PostgreSQL stamps transaction ids and
    leaves it at 0."""

    __tablename__ = "sync_state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    epoch: Mapped[str] = mapped_column(String(EPOCH_MAX))
    counter: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
