from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, BigIntPK, UTCDateTime, utcnow

NOTE_MAX = 500


class ClaimStatus(enum.StrEnum):
    active = "active"
    fulfilled = "fulfilled"
    withdrawn = "withdrawn"
    released = "released"
    revoked = "revoked"


class ClaimSource(enum.StrEnum):
    direct = "direct"
    event = "event"
    match = "match"


class Claim(Base):
    __tablename__ = "claims"
    __table_args__ = (
        CheckConstraint("slots >= 1", name="slots_positive"),
        CheckConstraint(
            "status IN ('active', 'fulfilled', 'withdrawn', 'released', 'revoked')",
            name="status",
        ),
        CheckConstraint("source IN ('direct', 'event', 'match')", name="source"),
        # Invariant 3: at most one live claim per (wish, member), whatever the concurrency.
        Index(
            "uq_claims_live_wish_member",
            "wish_id",
            "member_id",
            unique=True,
            sqlite_where=text("status IN ('active', 'fulfilled')"),
            postgresql_where=text("status IN ('active', 'fulfilled')"),
        ),
        Index("ix_claims_member_id_id", "member_id", "id"),
        Index("ix_claims_wish_id_status", "wish_id", "status"),
        Index("ix_claims_event_id_id", "event_id", "id"),
        # The release and reminder clock jobs read active claims by deadline.
        Index(
            "ix_claims_active_deadline",
            "deadline",
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    wish_id: Mapped[int] = mapped_column(ForeignKey("wishes.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.user_id", ondelete="CASCADE"))
    slots: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default=ClaimStatus.active.value)
    source: Mapped[str] = mapped_column(String(16), default=ClaimSource.direct.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fulfil_note: Mapped[str | None] = mapped_column(String(NOTE_MAX))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(NOTE_MAX))
    ended_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The claim event it was made in (rush or allocation), else NULL.
    event_id: Mapped[int | None] = mapped_column(ForeignKey("claim_events.id", ondelete="SET NULL"))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    # Fulfil by then or the claim is released (set when the claim is made; NULL: none, as
    # for claims that had ended before deadlines existed). ``extended_at``: the member's one
    # extension; ``reminded_at``: the reminder before the current deadline was sent.
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    extended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Stamped by a database trigger on every write, never by the application (app/sync).
    sync_version: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
