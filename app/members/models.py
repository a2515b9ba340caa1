from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, BigIntPK, UTCDateTime, utcnow

RESOURCE_TITLE_MAX = 60
RESOURCE_DESCRIPTION_MAX = 500
ROSTER_MAX_ENTRIES = 20
DEFAULT_CAPACITY = 3
MAX_CAPACITY = 50


class MemberStatus(enum.StrEnum):
    pending = "pending"
    active = "active"
    suspended = "suspended"


class Member(Base):
    """A user's member profile. ``active_claims`` counts their claims in state ``active`` and
    is only ever changed by conditional UPDATEs in the same transaction as the claim.

    There is deliberately no CHECK ``active_claims <= capacity``: an organizer may lower a
    capacity below what the member holds (they keep their claims); the claim statement's
    ``active_claims < capacity`` condition is what stops new ones.
    """

    __tablename__ = "members"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'active', 'suspended')", name="status"),
        CheckConstraint(f"capacity BETWEEN 0 AND {MAX_CAPACITY}", name="capacity_range"),
        CheckConstraint("active_claims >= 0", name="active_claims_non_negative"),
    )

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    community_id: Mapped[int] = mapped_column(ForeignKey("regions.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=MemberStatus.pending.value)
    capacity: Mapped[int] = mapped_column(Integer, default=DEFAULT_CAPACITY)
    active_claims: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MemberResource(Base):
    """One entry of a member's resource roster (资源清单)."""

    __tablename__ = "member_resources"
    __table_args__ = (CheckConstraint("quantity BETWEEN 1 AND 9999", name="quantity_range"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.user_id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(ForeignKey("categories.slug"))
    title: Mapped[str] = mapped_column(String(RESOURCE_TITLE_MAX))
    description: Mapped[str] = mapped_column(String(RESOURCE_DESCRIPTION_MAX), default="")
    quantity: Mapped[int] = mapped_column(Integer, default=1)


class MemberResourceRegion(Base):
    """A region a roster entry is offered in (its subtree)."""

    __tablename__ = "member_resource_regions"

    resource_id: Mapped[int] = mapped_column(
        ForeignKey("member_resources.id", ondelete="CASCADE"), primary_key=True
    )
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"), primary_key=True)


class MemberArea(Base):
    """Where a member may claim directly: their home community and every service region of
    their roster, flattened so the claim path tests it with one indexed lookup. Rebuilt
    whenever the roster or home community changes."""

    __tablename__ = "member_areas"
    __table_args__ = (UniqueConstraint("member_id", "region_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.user_id", ondelete="CASCADE"))
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"))
