from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, BigIntPK, UTCDateTime, utcnow

WISH_TITLE_MAX = 60
WISH_DESCRIPTION_MAX = 2000
CONTACT_NAME_MAX = 50
CONTACT_ADDRESS_MAX = 200
REASON_MAX = 500
THANKS_MAX = 500
MAX_SLOTS = 100


class WishStatus(enum.StrEnum):
    pending_review = "pending_review"
    open = "open"
    claimed = "claimed"
    fulfilled = "fulfilled"
    confirmed = "confirmed"
    rejected = "rejected"
    cancelled = "cancelled"
    expired = "expired"


PUBLIC_STATUSES = (WishStatus.open.value, WishStatus.claimed.value)
# Statuses of wishes that were never public: only their owner and organizers know of them.
NEVER_PUBLISHED = (WishStatus.pending_review.value, WishStatus.rejected.value)
# A claim can exist (and slots be held) only while the wish is in one of these.
LIVE_STATUSES = (WishStatus.open.value, WishStatus.claimed.value)


class Wish(Base):
    """A resident's micro-wish.

    ``slots_claimed`` is the sum of slots of its active and fulfilled claims and
    ``slots_fulfilled`` of its fulfilled ones; both move only through conditional UPDATEs in
    the claim transactions, and CHECK constraints make an overshoot impossible. The region's
    level ids are copied in so subtree filters and organizer scope are indexed equalities.
    """

    __tablename__ = "wishes"
    __table_args__ = (
        CheckConstraint(f"slots_total BETWEEN 1 AND {MAX_SLOTS}", name="slots_total_range"),
        CheckConstraint("slots_claimed BETWEEN 0 AND slots_total", name="slots_claimed_range"),
        CheckConstraint(
            "slots_fulfilled BETWEEN 0 AND slots_claimed", name="slots_fulfilled_range"
        ),
        CheckConstraint(
            "status IN ('pending_review', 'open', 'claimed', 'fulfilled', 'confirmed', "
            "'rejected', 'cancelled', 'expired')",
            name="status",
        ),
        CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="rating_range"),
        Index("ix_wishes_status_id", "status", "id"),
        Index("ix_wishes_community_id_status_id", "community_id", "status", "id"),
        Index("ix_wishes_street_id_status_id", "street_id", "status", "id"),
        Index("ix_wishes_resident_id_id", "resident_id", "id"),
        Index("ix_wishes_creator_id_id", "creator_id", "id"),
        Index("ix_wishes_event_id_id", "event_id", "id"),
        Index(
            "ix_wishes_deadline_open",
            "deadline",
            sqlite_where=text("status IN ('open', 'pending_review')"),
            postgresql_where=text("status IN ('open', 'pending_review')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # The beneficiary, when they have an account; NULL when an organizer publishes for
    # someone without a phone (then beneficiary_name says who).
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    beneficiary_name: Mapped[str] = mapped_column(String(CONTACT_NAME_MAX))
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"))
    district_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"))
    street_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"))
    community_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"))
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"))
    category: Mapped[str] = mapped_column(ForeignKey("categories.slug"))
    title: Mapped[str] = mapped_column(String(WISH_TITLE_MAX))
    description: Mapped[str] = mapped_column(String(WISH_DESCRIPTION_MAX), default="")
    slots_total: Mapped[int] = mapped_column(Integer, default=1)
    slots_claimed: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    slots_fulfilled: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    status: Mapped[str] = mapped_column(String(16))
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    contact_name: Mapped[str | None] = mapped_column(String(CONTACT_NAME_MAX))
    contact_phone: Mapped[str | None] = mapped_column(String(16))
    contact_address: Mapped[str | None] = mapped_column(String(CONTACT_ADDRESS_MAX))
    review_note: Mapped[str | None] = mapped_column(String(REASON_MAX))
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rating: Mapped[int | None] = mapped_column(Integer)
    thanks: Mapped[str | None] = mapped_column(String(THANKS_MAX))
    cancel_reason: Mapped[str | None] = mapped_column(String(REASON_MAX))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The live claim event this wish is pooled in (see app/events/models.py); NULL otherwise.
    event_id: Mapped[int | None] = mapped_column(ForeignKey("claim_events.id", ondelete="SET NULL"))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    # Stamped by a database trigger on every write, never by the application (app/sync).
    sync_version: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class ContactAccess(Base):
    """Audit of unmasked contact reads by someone other than the wish's owner (PIPL)."""

    __tablename__ = "contact_access_log"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    wish_id: Mapped[int] = mapped_column(ForeignKey("wishes.id", ondelete="CASCADE"), index=True)
    viewer_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
