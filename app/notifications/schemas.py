from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.pagination import Page
from app.core.types import Id, Input


class NotificationRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "id": "981",
                "kind": "wish_claimed",
                "title": "心愿「需要一台轮椅」有人认领了",
                "data": {
                    "wish_id": "42",
                    "wish_title": "需要一台轮椅",
                    "wish_status": "claimed",
                    "claim_id": "317",
                    "slots": 1,
                    "source": "direct",
                },
                "created_at": "2026-12-01T01:02:03Z",
                "read_at": None,
            }
        }
    )

    id: Id
    kind: str = Field(
        description="wish_approved, wish_rejected, wish_claimed, claim_fulfilled, "
        "wish_confirmed, claim_revoked, claim_released, claim_deadline_soon, "
        "event_opening_soon, allocation_result, match_proposed (more may be added: show "
        "`title` for unknown ones)."
    )
    title: str = Field(description="What happened, in the Accept-Language (zh-CN or en).")
    data: dict[str, Any] = Field(
        description="The ids (strings) and titles the app needs to open what it is about."
    )
    created_at: datetime
    read_at: datetime | None


class NotificationPage(Page[NotificationRead]):
    pass


class UnreadCount(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"unread": 3}})

    unread: int


class ReadAllIn(Input):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"up_to_id": "981"}})

    up_to_id: Id | None = Field(
        default=None,
        description="Only notifications up to this id (the newest the app has shown), so one "
        "arriving meanwhile stays unread. Default: all.",
    )


class ReadAllResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"marked": 3, "unread": 0}})

    marked: int = Field(description="Notifications marked read by this call.")
    unread: int = Field(description="Unread notifications left.")
