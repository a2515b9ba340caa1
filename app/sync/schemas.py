from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.claims.schemas import ClaimRead
from app.core.types import Id
from app.notifications.schemas import NotificationRead
from app.wishes.schemas import WishRead


class Tombstone(BaseModel):
    type: Literal["wish", "claim", "notification"] = Field(
        description="What to drop. Today only wishes: claims and notifications are never "
        "deleted and always yours."
    )
    id: Id


class SyncPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "reset": False,
                "wishes": [],
                "claims": [],
                "notifications": [],
                "tombstones": [{"type": "wish", "id": "42"}],
                "next_token": "eyJmIjoxLCJlIjoiOGJjOC4uLiJ9",
                "has_more": False,
            }
        }
    )

    reset: bool = Field(
        description="A full snapshot begins: drop everything synced before applying this page "
        "(the first sync, or what your sync covers changed, e.g. a new organizer grant)."
    )
    wishes: list[WishRead] = Field(
        description="Wishes to insert or replace (by id), as GET /v1/wishes/{id} shows them to "
        "you: yours, those you hold a live claim on, the open ones of your communities."
    )
    claims: list[ClaimRead] = Field(
        description="Your claims to insert or replace, as in GET /v1/me/claims."
    )
    notifications: list[NotificationRead] = Field(
        description="Your notifications to insert or replace (read state included)."
    )
    tombstones: list[Tombstone] = Field(
        description="Drop these if you hold them: gone from your sync (e.g. an open wish of "
        "your community now claimed full, cancelled or expired; a wish you no longer claim) "
        "or no longer visible to you. May name things you never held: ignore those."
    )
    next_token: str = Field(description="Send as `since` next time (or now, if has_more).")
    has_more: bool = Field(description="More of this sync follows: call again with next_token.")
