from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.core.pagination import Page
from app.core.types import Id, UTCTime
from app.photos.models import PhotoKind


class PhotoRead(BaseModel):
    """A photo, re-encoded as JPEG without metadata, with short-lived signed URLs."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "id": "7",
                "kind": "wish",
                "wish_id": "42",
                "claim_id": None,
                "width": 2048,
                "height": 1536,
                "content_type": "image/jpeg",
                "byte_size": 412345,
                "thumbnail_width": 320,
                "thumbnail_height": 240,
                "url": "https://example.cn/v1/photos/7/full?expires=1796000400&signature=Qm9…",
                "thumbnail_url": "https://example.cn/v1/photos/7/thumbnail?expires=1796000400&signature=…",
                "expires_at": "2026-11-28T09:00:00Z",
                "uploaded_by": "12",
                "created_at": "2026-11-28T08:45:12Z",
            }
        }
    )

    id: Id
    kind: PhotoKind = Field(description="`wish`: shows the wish; `proof`: a claim's fulfilment.")
    wish_id: Id
    claim_id: Id | None = Field(description="The claim a proof photo belongs to.")
    width: int = Field(description="Of the full-size image (`url`), in pixels.")
    height: int
    content_type: str = Field(description="Of both images; `image/jpeg`.")
    byte_size: int
    thumbnail_width: int
    thumbnail_height: int
    url: str = Field(
        description="The full-size image (at most 2048 px on its longest side by default); "
        "needs no Authorization header; works until `expires_at`."
    )
    thumbnail_url: str = Field(description="The thumbnail (320 px on its longest side).")
    expires_at: UTCTime = Field(description="When both URLs stop working; list again for new.")
    uploaded_by: Id | None
    created_at: UTCTime


class PhotoPage(Page[PhotoRead]):
    pass
