from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    JsonValue,
    StringConstraints,
    TypeAdapter,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from app.core.pagination import Page
from app.core.types import Id, Input, UTCTime
from app.events.models import (
    EVENT_TITLE_MAX,
    MAX_EVENT_COMMUNITIES,
    MAX_PREFERENCES,
    MAX_QUOTA,
    EventMode,
    EventStatus,
    PoolMode,
    PoolState,
)
from app.wishes.models import MAX_SLOTS, WishStatus

Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=EVENT_TITLE_MAX)
]
MAX_WISHES_PER_CALL = 500

_CREATE_EXAMPLE: dict[str, JsonValue] = {
    "title": "海棠街道12月集中认领",
    "community_ids": ["12", "13"],
    "mode": "rush",
    "starts_at": "2026-12-05T01:00:00Z",
    "ends_at": "2026-12-05T03:00:00Z",
    "per_member_quota": 2,
}


class EventCreate(Input):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": _CREATE_EXAMPLE})

    title: Title
    community_ids: list[Id] = Field(min_length=1, max_length=MAX_EVENT_COMMUNITIES)
    mode: EventMode = EventMode.rush
    starts_at: UTCTime | None = Field(
        default=None,
        description="When it opens (at most 5 minutes ago: clock skew); without it the "
        "event is a draft.",
    )
    ends_at: UTCTime | None = Field(
        default=None, description="When it closes; without it an organizer closes it."
    )
    per_member_quota: int = Field(
        strict=True,
        default=3,
        ge=1,
        le=MAX_QUOTA,
        description="Live claims a member may hold in the event.",
    )
    wish_ids: list[Id] = Field(
        default_factory=list,
        max_length=MAX_WISHES_PER_CALL,
        description="Pool only these wishes; by default every open wish with free slots of "
        "the communities at opening.",
    )


class EventUpdate(Input):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"per_member_quota": 1}}
    )

    title: Title | None = None
    community_ids: list[Id] | None = Field(
        default=None, min_length=1, max_length=MAX_EVENT_COMMUNITIES
    )
    starts_at: UTCTime | None = None
    ends_at: UTCTime | None = None
    per_member_quota: int | None = Field(strict=True, default=None, ge=1, le=MAX_QUOTA)


class WishIdsIn(Input):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"wish_ids": ["101", "102"]}}
    )

    wish_ids: list[Id] = Field(min_length=1, max_length=MAX_WISHES_PER_CALL)


class EventClaimCreate(Input):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"wish_id": "101", "slots": 1}}
    )

    wish_id: Id
    slots: int = Field(strict=True, default=1, ge=1, le=MAX_SLOTS)


class PreferencesIn(Input):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"wish_ids": ["101", "205"]}}
    )

    wish_ids: list[Id] = Field(max_length=MAX_PREFERENCES, description="Most wanted first.")

    # The bare array is taken as this object before validation rather than declared as a
    # second union branch: a bad id is then reported once, at ["body", "wish_ids", i], not
    # once per branch under pydantic's internal branch names.
    @model_validator(mode="before")
    @classmethod
    def _bare_array(cls, value: Any) -> Any:
        return {"wish_ids": value} if isinstance(value, list) else value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        as_object = handler(core_schema)
        as_array = TypeAdapter(Annotated[list[Id], Field(max_length=MAX_PREFERENCES)]).json_schema()
        return {"anyOf": [as_object, as_array | {"description": "The wish ids alone."}]}


class PreferencesRead(BaseModel):
    event_id: Id
    wish_ids: list[Id]


class CommunityBrief(BaseModel):
    id: Id
    name: str


class EventRead(BaseModel):
    id: Id
    title: str
    mode: EventMode
    status: EventStatus
    starts_at: datetime | None
    ends_at: datetime | None
    per_member_quota: int
    communities: list[CommunityBrief]
    organizer_id: Id
    wishes_pooled: int = Field(description="Wishes pooled at opening (0 before).")
    slots_pooled: int = Field(
        description="Slots the pooled wishes offered: free at opening, or claimed in the "
        "event where more (a slot an earlier claim gave back during it)."
    )
    slots_claimed: int = Field(
        description="Slots held by live claims made in the event (once closed: at its close)."
    )
    members: int = Field(
        description="Members holding live claims made in the event (once closed: at its close)."
    )
    my_claims: int | None = Field(
        default=None, description="Your live claims in this event (null: none yet)."
    )
    my_preferences: list[Id] = Field(default_factory=list)
    board_url: str | None = Field(
        default=None,
        description="The live board for the big screen, with its access token (organizers "
        "who manage the event only).",
    )
    opened_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class EventPage(Page[EventRead]):
    pass


class PoolWishRead(BaseModel):
    wish_id: Id
    title: str
    category: str
    community_id: Id
    state: PoolState
    status: WishStatus
    slots_total: int
    slots_claimed: int
    slots_remaining: int
    slots_free_at_open: int | None
    in_pool_now: bool = Field(description="Pooled in this event right now (claimable through it).")


class PoolWishPage(Page[PoolWishRead]):
    pool_mode: PoolMode | None = Field(
        description="What the event pools at opening: `communities` (every open wish of its "
        "communities with free slots, except those `removed`) or `chosen` (only the "
        "`selected` ones); null once opened (the states then say what was pooled)."
    )


class CommunityReport(BaseModel):
    community_id: Id | None = Field(description="The community; null on the totals row.")
    name: str
    wishes_pooled: int
    slots_pooled: int
    slots_claimed: int
    slots_fulfilled: int
    wishes_filled: int
    members: int
    time_to_fill_seconds: float | None = Field(
        description="From opening until the last pooled wish of the community was full "
        "(null: not all were)."
    )
    median_wish_fill_seconds: float | None


class UnclaimedWish(BaseModel):
    wish_id: Id
    title: str
    community_id: Id
    slots_free_at_open: int
    slots_claimed: int


class ReportPart(enum.StrEnum):
    """Which table of the report a CSV download holds."""

    communities = "communities"
    unclaimed = "unclaimed"


class EventReport(BaseModel):
    event_id: Id
    title: str
    status: EventStatus
    mode: EventMode
    opened_at: datetime | None
    closed_at: datetime | None
    communities: list[CommunityReport]
    totals: CommunityReport
    unclaimed: list[UnclaimedWish] = Field(description="Pooled wishes not (fully) claimed in it.")
