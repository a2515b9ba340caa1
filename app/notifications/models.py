"""Notifications: the in-app inbox (one row per user and event) and the push outbox.

The inbox row is written in the transaction of the change it tells about. When a push
gateway is configured, a delivery row is written with it (same transaction); a background
task sends due delivery rows after commit and deletes each once the gateway took it, so the
outbox holds only what is still to send and the dead letters.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, BigIntPK, UTCDateTime, utcnow

KIND_MAX = 40
DELIVERY_ERROR_MAX = 300


class NotificationKind(enum.StrEnum):
    wish_approved = "wish_approved"  # → the resident and the creator
    wish_rejected = "wish_rejected"  # → the resident and the creator
    wish_claimed = "wish_claimed"  # → the resident (the creator when published for someone)
    claim_fulfilled = "claim_fulfilled"  # → the resident (likewise)
    wish_confirmed = "wish_confirmed"  # → the claimers, with the thanks
    claim_revoked = "claim_revoked"  # → the claimer
    claim_released = "claim_released"  # → the claimer and the resident (claim deadlines)
    claim_deadline_soon = "claim_deadline_soon"  # → the claimer, before the claim's deadline
    event_opening_soon = "event_opening_soon"  # → members of the pooled communities
    allocation_result = "allocation_result"  # → each member who ranked wishes
    match_proposed = "match_proposed"  # → each member given a wish by a matching run


class DeliveryStatus(enum.StrEnum):
    pending = "pending"  # to send at next_attempt_at (or being sent: leased until then)
    dead = "dead"  # gave up after the maximum number of attempts


class Notification(Base):
    """One inbox entry. ``data`` holds ids as strings and titles, never contact details.
    The displayed title is rendered from ``kind`` and ``data`` in the reader's language."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user_id_id", "user_id", "id"),
        # The unread listing and count read only this (small) index.
        Index(
            "ix_notifications_unread",
            "user_id",
            "id",
            sqlite_where=text("read_at IS NULL"),
            postgresql_where=text("read_at IS NULL"),
        ),
        # Delta sync reads a user's inbox changed since a token (app/sync).
        Index("ix_notifications_user_id_sync_version", "user_id", "sync_version"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(KIND_MAX))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Stamped by a database trigger on every write, never by the application (app/sync).
    sync_version: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class NotificationDelivery(Base):
    """The push outbox: one row per notification to send to the gateway. ``attempts`` counts
    sends started (a claim by a sender raises it and leases the row until
    ``next_attempt_at``, so a sender that dies mid-send leaves it due again)."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'dead')", name="status"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        Index(
            "ix_notification_deliveries_due",
            "next_attempt_at",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    notification_id: Mapped[int] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.pending.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(DELIVERY_ERROR_MAX))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NotificationMark(Base):
    """That a one-time notification about something was sent: the key of "once". E.g.
    (``event_opening``, event id, its ``starts_at``): moving the start sends a new reminder,
    a second server process or tick sends none."""

    __tablename__ = "notification_marks"

    topic: Mapped[str] = mapped_column(String(KIND_MAX), primary_key=True)
    subject_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    occasion: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
