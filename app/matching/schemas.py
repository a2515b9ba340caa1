from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.types import Id, Input

MAX_IDS = 10_000


class ScoreComponent(BaseModel):
    name: Literal["category", "text", "locality", "capacity", "urgency", "fairness"]
    value: float = Field(description="0–1, before weighting.")
    weight: float
    contribution: float = Field(description="value × weight; the score is their sum.")
    reason: str = Field(description="Readable, in the language of Accept-Language.")


class ScoreBreakdown(BaseModel):
    score: float
    locality_level: Literal["grid", "community", "street", "district"]
    components: list[ScoreComponent]


class CandidateRead(BaseModel):
    member_id: Id
    display_name: str
    capacity_remaining: int
    breakdown: ScoreBreakdown


class CandidateList(BaseModel):
    items: list[CandidateRead]
    next_cursor: None = None


class RecommendedWish(BaseModel):
    id: Id
    title: str
    category: str
    region_id: Id
    slots_remaining: int
    deadline: datetime | None


class RecommendationRead(BaseModel):
    wish: RecommendedWish
    breakdown: ScoreBreakdown


class RecommendationList(BaseModel):
    items: list[RecommendationRead]
    next_cursor: None = None


class MatchingRunCreate(Input):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"region_id": "4"}})

    region_id: Id = Field(description="The region whose open wishes are matched (its subtree).")
    wish_ids: list[Id] | None = Field(
        default=None, max_length=MAX_IDS, description="Only these wishes (within the region)."
    )
    member_ids: list[Id] | None = Field(
        default=None, max_length=MAX_IDS, description="Only these members."
    )


class AssignmentRead(BaseModel):
    wish_id: Id
    member_id: Id
    score: float
    components: dict[str, float]
    locality_level: str
    status: Literal["proposed", "applied", "skipped"]
    skip_reason: str | None = Field(description="The claim's refusal code, when skipped.")
    claim_id: Id | None


class UnfilledWish(BaseModel):
    wish_id: Id
    slots_open: int
    slots_assigned: int


class Objective(BaseModel):
    slots_open: int
    slots_filled: int
    total_score: float


class LoadRead(BaseModel):
    members: int = Field(description="Members who could take work in this run.")
    max: int
    mean: float
    gini: float = Field(description="0 = perfectly even, towards 1 = concentrated.")


class MatchingRunRead(BaseModel):
    id: Id
    region_id: Id
    status: Literal["computed", "applied"]
    wish_count: int
    member_count: int
    candidate_count: int
    optimal: Objective
    greedy: Objective = Field(description="A best-pair-first baseline, for comparison.")
    load: LoadRead
    candidates_ms: int
    solve_ms: int
    inputs: dict[str, object] = Field(
        description="What the run was computed from: weights, ids, time; enough to recompute it."
    )
    assignments: list[AssignmentRead]
    unfilled: list[UnfilledWish] = Field(description="Wishes left unfilled or partly filled.")
    applied: int
    skipped: int
    created_at: datetime
    applied_at: datetime | None
