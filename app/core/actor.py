"""Who is making the request. Built from the access token; what they may do is loaded
lazily (``app.regions.access.scope_of``) so endpoints that don't need it don't pay for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Actor:
    user_id: int
    # Per-request memo of the loaded authorization scope (see app.regions.access).
    cache: dict[str, Any] = field(default_factory=dict, repr=False)
