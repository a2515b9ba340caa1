from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from app.accounts.models import DISPLAY_NAME_MAX
from app.core.phone import normalize_phone
from app.core.types import Id, Input
from app.regions.models import RegionKind

Phone = Annotated[
    str,
    StringConstraints(max_length=32),
    AfterValidator(normalize_phone),
    Field(
        description="Any common spelling; mainland numbers may omit +86. Returned as E.164.",
        examples=["13800138000"],
    ),
]
Password = Annotated[str, Field(min_length=8, max_length=128, description="8–128 characters.")]
DisplayName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=DISPLAY_NAME_MAX),
    Field(description=f"1–{DISPLAY_NAME_MAX} characters."),
]
RefreshTokenValue = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class RegisterRequest(Input):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {"phone": "13800138000", "password": "s3cret-pass", "display_name": "王阿姨"}
        },
    )

    phone: Phone
    password: Password
    display_name: DisplayName


class TokenRequest(Input):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"phone": "13800138000", "password": "s3cret-pass"}},
    )

    phone: Phone
    # Not the registration rule: a wrong password is a 401, whatever its length.
    password: Annotated[str, Field(min_length=1, max_length=128)]


class RefreshRequest(Input):
    model_config = ConfigDict(extra="forbid")

    refresh_token: RefreshTokenValue


class OtpRequest(Input):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"phone": "13800138000"}}
    )

    phone: Phone


OtpCodeValue = Annotated[
    str,
    # [0-9], not \d: \d also matches the digits of other scripts.
    StringConstraints(pattern=r"^[0-9]{6}$"),
    Field(description="The 6 digits texted to the phone.", examples=["123456"]),
]


class OtpVerify(Input):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"phone": "13800138000", "code": "123456"}}
    )

    phone: Phone
    code: OtpCodeValue


class OtpSentRead(BaseModel):
    """The code is on its way (whether or not the phone has an account)."""

    model_config = ConfigDict(
        json_schema_extra={"example": {"expires_in": 300, "resend_after": 60}}
    )

    expires_in: int = Field(description="Seconds the code stays valid.")
    resend_after: int = Field(description="Seconds before another code may be asked for.")


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_expires_in: int = Field(description="Seconds until the refresh token expires.")


class GrantSummary(BaseModel):
    region_id: Id
    region_kind: RegionKind
    region_name: str


Role = Literal["resident", "member", "organizer", "admin"]


class MemberSummary(BaseModel):
    community_id: Id
    status: Literal["pending", "active", "suspended"]
    capacity: int
    active_claims: int
    capacity_remaining: int


class UserRead(BaseModel):
    """A user as they see themselves (their own phone unmasked)."""

    id: Id
    phone: str
    display_name: str
    roles: list[Role] = Field(
        description="resident (everyone), member (an active member profile), organizer, admin"
    )
    grants: list[GrantSummary]
    member: MemberSummary | None = Field(description="The member profile, in any status.")
    created_at: datetime
