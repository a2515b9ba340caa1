from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, BigIntPK, UTCDateTime, utcnow

STORAGE_KEY_MAX = 80


class PhotoKind(enum.StrEnum):
    wish = "wish"  # shows the wish (the owner or an organizer uploads it)
    proof = "proof"  # shows a claim's fulfilment (the claimer uploads it)


class Photo(Base):
    """A re-encoded image and its thumbnail, kept in the photo storage under
    ``<storage_key>/full.jpg`` and ``<storage_key>/thumbnail.jpg``.

    Every photo belongs to a wish (whose visibility it follows); proof photos also to the
    claim they prove. How many a wish or claim may have is checked under the wish's row lock.
    """

    __tablename__ = "photos"
    __table_args__ = (
        CheckConstraint("kind IN ('wish', 'proof')", name="kind"),
        CheckConstraint(
            "(kind = 'wish' AND claim_id IS NULL) OR (kind = 'proof' AND claim_id IS NOT NULL)",
            name="proof_has_claim",
        ),
        CheckConstraint(
            "width > 0 AND height > 0 AND thumbnail_width > 0 AND thumbnail_height > 0",
            name="dimensions_positive",
        ),
        Index("ix_photos_wish_id_kind_id", "wish_id", "kind", "id"),
        Index("ix_photos_claim_id_id", "claim_id", "id"),
        Index("uq_photos_storage_key", "storage_key", unique=True),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    wish_id: Mapped[int] = mapped_column(ForeignKey("wishes.id", ondelete="CASCADE"))
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id", ondelete="CASCADE"))
    uploader_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    storage_key: Mapped[str] = mapped_column(String(STORAGE_KEY_MAX))
    content_type: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    byte_size: Mapped[int] = mapped_column(Integer)
    thumbnail_width: Mapped[int] = mapped_column(Integer)
    thumbnail_height: Mapped[int] = mapped_column(Integer)
    thumbnail_byte_size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def variant_key(self, variant: str) -> str:
        return f"{self.storage_key}/{variant}.jpg"
