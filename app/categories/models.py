from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base

CATEGORY_SLUG_MAX = 32

# The district's categories, in display order. A migration inserts them; the table is the
# source of truth at run time (a district may add its own).
DEFAULT_CATEGORIES: tuple[tuple[str, str, str], ...] = (
    ("daily_necessities", "生活物资", "Daily necessities"),
    ("repair", "维修", "Repair"),
    ("companionship", "陪伴", "Companionship"),
    ("tutoring", "课业辅导", "Tutoring"),
    ("health", "医疗健康", "Health"),
    ("elder_care", "助老", "Elder care"),
    ("child_care", "助幼", "Child care"),
    ("disability_support", "助残", "Disability support"),
    ("other", "其他", "Other"),
)


class Category(Base):
    __tablename__ = "categories"

    slug: Mapped[str] = mapped_column(String(CATEGORY_SLUG_MAX), primary_key=True)
    label_zh: Mapped[str] = mapped_column(String(40))
    label_en: Mapped[str] = mapped_column(String(60))
    position: Mapped[int] = mapped_column(Integer, default=0)
