"""The one authorization helper: may this actor act on this region?

Every service asks here; routers never check roles themselves. An admin may act anywhere;
an organizer granted region G may act on G and everything below it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.actor import Actor
from app.core.errors import Forbidden, NotFound, Unauthorized
from app.regions import repository
from app.regions.models import Region

_SCOPE_KEY = "scope"


class Placed(Protocol):
    """Something located in the region tree by its level ids."""

    district_id: Any
    street_id: Any
    community_id: Any
    grid_id: Any


@dataclass(frozen=True)
class Grant:
    region_id: int
    kind: str


@dataclass(frozen=True)
class Scope:
    user_id: int
    is_admin: bool
    grants: tuple[Grant, ...]

    @property
    def is_organizer(self) -> bool:
        return bool(self.grants)

    def covers(self, placed: Placed) -> bool:
        """True when the actor may act on ``placed`` (a region, or anything carrying its
        region's level ids, like a wish): admin, or it lies in a granted subtree."""
        if self.is_admin:
            return True
        return any(getattr(placed, f"{grant.kind}_id") == grant.region_id for grant in self.grants)


async def scope_of(session: AsyncSession, actor: Actor) -> Scope:
    cached = actor.cache.get(_SCOPE_KEY)
    if isinstance(cached, Scope):
        return cached
    found = await repository.admin_flag_and_grants(session, actor.user_id)
    if found is None:
        # A valid token for a user that no longer exists.
        raise Unauthorized()
    is_admin, granted = found
    grants = tuple(Grant(region_id=region_id, kind=kind) for region_id, kind in granted)
    scope = Scope(user_id=actor.user_id, is_admin=is_admin, grants=grants)
    actor.cache[_SCOPE_KEY] = scope
    return scope


async def require_admin(session: AsyncSession, actor: Actor) -> Scope:
    scope = await scope_of(session, actor)
    if not scope.is_admin:
        raise Forbidden(reason="admin_required")
    return scope


async def require_region_scope(session: AsyncSession, actor: Actor, region_id: int) -> Region:
    """The region, if the actor may act on it; ``not_found`` or ``out_of_scope`` otherwise."""
    region = await repository.get(session, region_id)
    if region is None:
        raise NotFound(resource="region")
    scope = await scope_of(session, actor)
    if not scope.covers(region):
        raise Forbidden(reason="out_of_scope")
    return region
