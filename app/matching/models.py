from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, BigIntPK, UTCDateTime, utcnow


class MatchingRun(Base):
    """One batch assignment: its inputs (for audit and recomputation), objective, load spread
    and timings. Its proposed pairs are ``MatchingAssignment`` rows."""

    __tablename__ = "matching_runs"
    __table_args__ = (
        CheckConstraint("status IN ('computed', 'applied')", name="status"),
        Index("ix_matching_runs_region_id_id", "region_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    organizer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"))
    status: Mapped[str] = mapped_column(String(16), default="computed")
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    wish_count: Mapped[int] = mapped_column(Integer)
    member_count: Mapped[int] = mapped_column(Integer)
    candidate_count: Mapped[int] = mapped_column(Integer)
    slots_open: Mapped[int] = mapped_column(Integer)
    slots_filled: Mapped[int] = mapped_column(Integer)
    total_score: Mapped[float] = mapped_column(Float)
    greedy_slots_filled: Mapped[int] = mapped_column(Integer)
    greedy_total_score: Mapped[float] = mapped_column(Float)
    load: Mapped[dict[str, Any]] = mapped_column(JSON)
    unfilled: Mapped[list[dict[str, int]]] = mapped_column(JSON)
    candidates_ms: Mapped[int] = mapped_column(Integer)
    solve_ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    applied_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class MatchingAssignment(Base):
    __tablename__ = "matching_assignments"
    __table_args__ = (
        CheckConstraint("status IN ('proposed', 'applied', 'skipped')", name="status"),
        Index(
            "uq_matching_assignments_run_wish_member", "run_id", "wish_id", "member_id", unique=True
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("matching_runs.id", ondelete="CASCADE"))
    wish_id: Mapped[int] = mapped_column(ForeignKey("wishes.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.user_id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(Float)
    components: Mapped[dict[str, float]] = mapped_column(JSON)
    locality_level: Mapped[str] = mapped_column(String(16))
    general_help: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="proposed")
    skip_reason: Mapped[str | None] = mapped_column(String(32))
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id", ondelete="SET NULL"))
