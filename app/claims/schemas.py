from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.claims.models import NOTE_MAX, ClaimSource, ClaimStatus
from app.core.pagination import Page
from app.core.types import Id, Input
from app.wishes.models import MAX_SLOTS, REASON_MAX, WishStatus


class ClaimCreate(Input):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"slots": 1}})

    slots: int = Field(
        strict=True, default=1, ge=1, le=MAX_SLOTS, description="Slots of the wish to take."
    )


class FulfilIn(Input):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"note": "已送到王阿姨家并调试好"}}
    )

    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=NOTE_MAX)] = ""


class RevokeIn(Input):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"reason": "长期未联系居民"}}
    )

    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=REASON_MAX)
    ]


class WishBrief(BaseModel):
    id: Id
    title: str
    category: str
    status: WishStatus
    region_id: Id


class ClaimRead(BaseModel):
    id: Id
    wish_id: Id
    member_id: Id
    member_name: str | None = None
    slots: int
    status: ClaimStatus
    source: ClaimSource
    event_id: Id | None = Field(default=None, description="The claim event it was made in.")
    created_at: datetime
    updated_at: datetime
    fulfilled_at: datetime | None
    fulfil_note: str | None
    ended_at: datetime | None
    end_reason: str | None
    deadline: datetime | None = Field(
        default=None,
        description="Fulfil by then, or the claim is released (null: no deadline).",
    )
    extended_at: datetime | None = Field(
        default=None, description="When the member used their one extension."
    )
    wish: WishBrief | None = None


class ClaimPage(Page[ClaimRead]):
    pass
