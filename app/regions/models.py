from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, BigIntPK, UTCDateTime, utcnow

REGION_NAME_MAX = 60


class RegionKind(enum.StrEnum):
    district = "district"
    street = "street"
    community = "community"
    grid = "grid"


# The only parent kind each kind may have; a district is a root.
PARENT_KIND: dict[RegionKind, RegionKind | None] = {
    RegionKind.district: None,
    RegionKind.street: RegionKind.district,
    RegionKind.community: RegionKind.street,
    RegionKind.grid: RegionKind.community,
}


class Region(Base):
    """A node of the district → street → community → grid tree.

    Each region carries the ids of its ancestors *and itself* by level (``district_id`` …
    ``grid_id``), so "is X inside the subtree of R" is ``X.<R.kind>_id == R.id``: one
    indexed equality, no recursive query, no collation-dependent prefix matching.
    """

    __tablename__ = "regions"
    __table_args__ = (
        UniqueConstraint("parent_id", "name"),
        # Roots have no parent, so the constraint above does not cover them.
        Index(
            "uq_regions_root_name",
            "name",
            unique=True,
            sqlite_where=text("parent_id IS NULL"),
            postgresql_where=text("parent_id IS NULL"),
        ),
        CheckConstraint("kind IN ('district', 'street', 'community', 'grid')", name="kind"),
        CheckConstraint("(parent_id IS NULL) = (kind = 'district')", name="root_is_district"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(REGION_NAME_MAX))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id", ondelete="RESTRICT"))
    district_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"), index=True)
    street_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"), index=True)
    community_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"), index=True)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def level_id(self, kind: str) -> int | None:
        """The id of this region's ancestor (or itself) at level ``kind``."""
        value: int | None = getattr(self, f"{kind}_id")
        return value

    @property
    def ancestor_ids(self) -> list[int]:
        levels = (self.district_id, self.street_id, self.community_id, self.grid_id)
        return [level for level in levels if level is not None and level != self.id]


class OrganizerGrant(Base):
    """The user organizes the subtree rooted at the region."""

    __tablename__ = "organizer_grants"
    __table_args__ = (UniqueConstraint("user_id", "region_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id", ondelete="CASCADE"), index=True)
    granted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
