from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints

from app.core.pagination import Page
from app.core.types import Id, Input
from app.members.models import (
    MAX_CAPACITY,
    RESOURCE_DESCRIPTION_MAX,
    RESOURCE_TITLE_MAX,
    ROSTER_MAX_ENTRIES,
    MemberStatus,
)

CategorySlug = Annotated[str, StringConstraints(min_length=1, max_length=32)]
SERVICE_REGIONS_MAX = 10


class MemberApply(Input):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"community_id": "4", "capacity": 3}}
    )

    community_id: Id = Field(
        description="The member's home community (a region of kind community)."
    )
    capacity: int = Field(
        strict=True,
        default=3,
        ge=1,
        le=10,
        description="Claims held at once (1–10; an organizer may change it).",
    )


class MemberUpdate(Input):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"capacity": 5}})

    capacity: int = Field(
        strict=True,
        ge=0,
        le=MAX_CAPACITY,
        description="Lowering it below the claims held keeps them and blocks new ones.",
    )


class MemberRead(BaseModel):
    user_id: Id
    display_name: str
    community_id: Id
    status: MemberStatus
    capacity: int
    active_claims: int
    capacity_remaining: int
    created_at: datetime
    reviewed_at: datetime | None


class MemberPage(Page[MemberRead]):
    pass


class ResourceIn(Input):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "category": "repair",
                "title": "水电维修",
                "description": "周末可上门，自带工具",
                "quantity": 2,
                "service_region_ids": ["3"],
            }
        },
    )

    category: CategorySlug
    title: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=RESOURCE_TITLE_MAX)
    ]
    description: Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=RESOURCE_DESCRIPTION_MAX)
    ] = ""
    quantity: int = Field(strict=True, default=1, ge=1, le=9999)
    service_region_ids: list[Id] = Field(
        default_factory=list,
        max_length=SERVICE_REGIONS_MAX,
        # The issue calls them "service regions": that spelling is taken too.
        validation_alias=AliasChoices("service_region_ids", "service_regions"),
        description="Regions (any level) where this is offered, besides the home community "
        "(also accepted as `service_regions`).",
    )


Roster = Annotated[list[ResourceIn], Field(max_length=ROSTER_MAX_ENTRIES)]


class ResourceRead(BaseModel):
    id: Id
    category: str
    title: str
    description: str
    quantity: int
    service_region_ids: list[Id]


class RosterRead(BaseModel):
    items: list[ResourceRead]
    next_cursor: None = None
