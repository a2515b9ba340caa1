"""Claim events (集中认领): the unclaimed wishes of several communities pooled for a window.

While an event is live each pooled wish carries ``wishes.event_id``: the claim statements
refuse a direct claim on such a wish and take an event claim only on a wish pooled in that
very event, so "claimable only through the event" is a column the conditional UPDATE reads,
not a check in Python. Closing clears the column: the wish is back home.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, BigIntPK, UTCDateTime, utcnow

EVENT_TITLE_MAX = 80
MAX_EVENT_COMMUNITIES = 100
MAX_QUOTA = 50
MAX_PREFERENCES = 20


class EventStatus(enum.StrEnum):
    draft = "draft"
    scheduled = "scheduled"
    live = "live"
    closed = "closed"


class EventMode(enum.StrEnum):
    rush = "rush"
    allocate = "allocate"


class PoolMode(enum.StrEnum):
    """What an event pools at opening, before it opens: not stored, read off its entries
    (``chosen`` while any is ``selected``)."""

    communities = "communities"  # every open wish of its communities, except those removed
    chosen = "chosen"  # only the selected ones


class PoolState(enum.StrEnum):
    selected = "selected"  # chosen by the organizer before opening
    pooled = "pooled"  # in the pool while the event is live
    skipped = "skipped"  # chosen, but no longer open with free slots at opening
    removed = "removed"  # taken out again before opening
    returned = "returned"  # back home at close


class ClaimEvent(Base):
    __tablename__ = "claim_events"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'scheduled', 'live', 'closed')", name="status"),
        CheckConstraint("mode IN ('rush', 'allocate')", name="mode"),
        CheckConstraint(f"per_member_quota BETWEEN 1 AND {MAX_QUOTA}", name="quota_range"),
        CheckConstraint(
            "ends_at IS NULL OR starts_at IS NULL OR ends_at > starts_at", name="window"
        ),
        Index("ix_claim_events_status_starts_at", "status", "starts_at"),
        Index("ix_claim_events_status_ends_at", "status", "ends_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    organizer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(EVENT_TITLE_MAX))
    mode: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    per_member_quota: Mapped[int] = mapped_column(Integer)
    # Read-only access to the live board and its stream for the screen at the ceremony.
    board_token: Mapped[str] = mapped_column(String(64))
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opened_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Allocate mode: the seed, the exact inputs and the result, so anyone can recompute it.
    allocation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))


class ClaimEventCommunity(Base):
    __tablename__ = "claim_event_communities"

    event_id: Mapped[int] = mapped_column(
        ForeignKey("claim_events.id", ondelete="CASCADE"), primary_key=True
    )
    community_id: Mapped[int] = mapped_column(ForeignKey("regions.id"), primary_key=True)


class ClaimEventWish(Base):
    """A wish chosen for or pooled in an event, with what it had free when pooled."""

    __tablename__ = "claim_event_wishes"
    __table_args__ = (
        CheckConstraint(
            "state IN ('selected', 'pooled', 'skipped', 'removed', 'returned')", name="state"
        ),
        Index("ix_claim_event_wishes_wish_id", "wish_id"),
    )

    event_id: Mapped[int] = mapped_column(
        ForeignKey("claim_events.id", ondelete="CASCADE"), primary_key=True
    )
    wish_id: Mapped[int] = mapped_column(
        ForeignKey("wishes.id", ondelete="CASCADE"), primary_key=True
    )
    community_id: Mapped[int] = mapped_column(ForeignKey("regions.id"))
    state: Mapped[str] = mapped_column(String(16))
    slots_free_at_open: Mapped[int | None] = mapped_column(Integer)
    pooled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ClaimEventParticipant(Base):
    """A member's live event claims, against the event's quota: the claim statement raises
    ``claims`` only while it is under ``per_member_quota`` (invariant 4)."""

    __tablename__ = "claim_event_participants"
    __table_args__ = (CheckConstraint("claims >= 0", name="claims_non_negative"),)

    event_id: Mapped[int] = mapped_column(
        ForeignKey("claim_events.id", ondelete="CASCADE"), primary_key=True
    )
    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.user_id", ondelete="CASCADE"), primary_key=True
    )
    claims: Mapped[int] = mapped_column(Integer, default=0)


class ClaimEventPreference(Base):
    """Allocate mode: a member's ranked wishes (rank 1 = most wanted)."""

    __tablename__ = "claim_event_preferences"
    __table_args__ = (
        CheckConstraint(f"rank BETWEEN 1 AND {MAX_PREFERENCES}", name="rank_range"),
        Index("uq_claim_event_preferences_rank", "event_id", "member_id", "rank", unique=True),
    )

    event_id: Mapped[int] = mapped_column(
        ForeignKey("claim_events.id", ondelete="CASCADE"), primary_key=True
    )
    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.user_id", ondelete="CASCADE"), primary_key=True
    )
    wish_id: Mapped[int] = mapped_column(
        ForeignKey("wishes.id", ondelete="CASCADE"), primary_key=True
    )
    rank: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
