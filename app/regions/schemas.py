from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.core.pagination import Page
from app.core.types import Id, Input
from app.regions.models import REGION_NAME_MAX, RegionKind

RegionName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=REGION_NAME_MAX)
]


class RegionCreate(Input):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"kind": "community", "name": "东七社区", "parent_id": "3"}},
    )

    kind: RegionKind
    name: RegionName = Field(description=f"1–{REGION_NAME_MAX} characters.")
    parent_id: Id | None = Field(
        default=None, description="Required except for a district (the root)."
    )


class RegionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: Id
    kind: RegionKind
    name: str
    parent_id: Id | None
    ancestor_ids: list[Id] = Field(description="From the district down to the parent.")
    created_at: datetime


class OrganizerGrantCreate(Input):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"user_id": "7"}})

    user_id: Id


class OrganizerGrantRead(BaseModel):
    id: Id
    user_id: Id
    region_id: Id
    display_name: str
    created_at: datetime


class RegionPage(Page[RegionRead]):
    pass


class OrganizerGrantPage(Page[OrganizerGrantRead]):
    pass
