from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from app.core.pagination import Page
from app.core.phone import normalize_phone
from app.core.types import Id, Input, UTCTime
from app.wishes.models import (
    CONTACT_ADDRESS_MAX,
    CONTACT_NAME_MAX,
    MAX_SLOTS,
    REASON_MAX,
    THANKS_MAX,
    WISH_DESCRIPTION_MAX,
    WISH_TITLE_MAX,
    WishStatus,
)


def _text(max_length: int, min_length: int = 0) -> object:
    return StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length)


Phone = Annotated[str, StringConstraints(max_length=32), AfterValidator(normalize_phone)]
Name = Annotated[str, _text(CONTACT_NAME_MAX, 1)]
Reason = Annotated[str, _text(REASON_MAX, 1)]


class ContactIn(Input):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    phone: Phone | None = Field(default=None, description="Mainland numbers may omit +86.")
    address: Annotated[str, _text(CONTACT_ADDRESS_MAX, 1)] | None = None


class OnBehalfOf(Input):
    """Who the wish is for, when an organizer publishes it: a registered resident
    (``user_id``) or someone without the app (``name``)."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id | None = None
    name: Name | None = None

    @model_validator(mode="after")
    def _one_of(self) -> OnBehalfOf:
        if (self.user_id is None) == (self.name is None):
            raise ValueError("give exactly one of user_id and name")
        return self


def _bare_user_id(value: object) -> object:
    """``"on_behalf_of": "42"`` is read as ``{"user_id": "42"}``."""
    if isinstance(value, str | int) and not isinstance(value, bool):
        return {"user_id": value}
    return value


class WishCreate(Input):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "title": "轮椅一台",
                "description": "腿脚不便，想要一台轻便轮椅方便下楼晒太阳",
                "category": "disability_support",
                "region_id": "5",
                "slots_total": 1,
                "deadline": "2026-12-31T16:00:00Z",
                "contact": {"name": "王阿姨", "phone": "13912345678", "address": "东七社区3栋201"},
            }
        },
    )

    title: Annotated[str, _text(WISH_TITLE_MAX, 1)]
    description: Annotated[str, _text(WISH_DESCRIPTION_MAX)] = ""
    category: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    region_id: Id = Field(description="A community or a grid.")
    slots_total: int = Field(
        strict=True,
        default=1,
        ge=1,
        le=MAX_SLOTS,
        description="Helpers or units needed (many-to-one).",
    )
    deadline: UTCTime | None = Field(default=None, description="In the future, within a year.")
    contact: ContactIn | None = Field(
        default=None, description="Defaults to the resident's name and phone."
    )
    on_behalf_of: Annotated[OnBehalfOf | None, BeforeValidator(_bare_user_id)] = Field(
        default=None,
        description='Organizers only: publish for another resident: `{"user_id"}` of a '
        'registered one (a bare user id is taken too) or `{"name"}` of someone without '
        "the app.",
    )


class WishUpdate(Input):
    """What the owner may change while the wish is pending review or open. Send the
    wish's ETag as ``If-Match``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"description": "腿脚不便，想要一台可折叠的轻便轮椅"}},
    )

    title: Annotated[str, _text(WISH_TITLE_MAX, 1)] | None = None
    description: Annotated[str, _text(WISH_DESCRIPTION_MAX)] | None = None
    category: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    slots_total: int | None = Field(
        strict=True,
        default=None,
        ge=1,
        le=MAX_SLOTS,
        description="Not below the slots already claimed.",
    )
    deadline: UTCTime | None = None
    contact: ContactIn | None = None


class ReasonIn(Input):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"reason": "信息不完整"}}
    )

    reason: Reason


class CancelIn(Input):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, _text(REASON_MAX)] | None = None


class ConfirmIn(Input):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"rating": 5, "thanks": "谢谢小李！"}}
    )

    rating: int | None = Field(strict=True, default=None, ge=1, le=5)
    thanks: Annotated[str, _text(THANKS_MAX)] | None = None


class ContactRead(BaseModel):
    name: str | None
    phone: str | None = Field(description="Masked (139****5678) unless you may see it.")
    address: str | None = Field(description="Cut to the community unless you may see it.")
    masked: bool


class WishRead(BaseModel):
    id: Id
    title: str
    description: str
    category: str
    region_id: Id
    community_id: Id | None
    street_id: Id | None
    status: WishStatus
    slots_total: int
    slots_claimed: int
    slots_fulfilled: int
    slots_remaining: int
    deadline: datetime | None
    beneficiary_name: str
    resident_id: Id | None
    creator_id: Id
    published_on_behalf: bool
    contact: ContactRead
    review_note: str | None
    rating: int | None
    thanks: str | None
    created_at: datetime
    updated_at: datetime
    fulfilled_at: datetime | None
    confirmed_at: datetime | None


class WishPage(Page[WishRead]):
    pass
