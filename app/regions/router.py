from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from app.core.auth import CurrentActor
from app.core.conditional import tagged_read
from app.core.deps import DbSession
from app.core.nobody import Route
from app.core.pagination import PageParams, build_page, page_params
from app.core.problems import problem_responses
from app.core.types import MAX_ID, PathDigits
from app.regions import service
from app.regions.models import OrganizerGrant, RegionKind
from app.regions.schemas import (
    OrganizerGrantCreate,
    OrganizerGrantPage,
    OrganizerGrantRead,
    RegionCreate,
    RegionPage,
    RegionRead,
)

router = APIRouter(route_class=Route, prefix="/v1/regions", tags=["regions"])

RegionId = Annotated[int, Path(ge=1, le=MAX_ID, description="Region id."), PathDigits]
UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="User id."), PathDigits]
Paging = Annotated[PageParams, Depends(page_params)]


@router.post(
    "",
    status_code=201,
    summary="Create a region (admin)",
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def create_region(body: RegionCreate, session: DbSession, actor: CurrentActor) -> RegionRead:
    region = await service.create_region(
        session, actor, kind=body.kind, name=body.name, parent_id=body.parent_id
    )
    return RegionRead.model_validate(region)


@router.get(
    "",
    summary="List the children of a region (the districts without parent_id; with kind "
    "alone, every region of that kind, e.g. all communities)",
    responses=problem_responses(404, 422),
)
async def list_regions(
    session: DbSession,
    paging: Paging,
    parent_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    kind: RegionKind | None = None,
) -> RegionPage:
    after_id = paging.after_id("regions")
    rows = await service.list_regions(
        session, parent_id=parent_id, kind=kind, after_id=after_id, limit=paging.fetch
    )
    items, next_cursor = build_page(rows, paging.limit, "regions", lambda r: [r.id])
    return RegionPage(items=[RegionRead.model_validate(r) for r in items], next_cursor=next_cursor)


@router.get(
    "/{region_id}",
    summary="Get a region (with an ETag)",
    responses={**problem_responses(404, 422), 304: {"description": "Not modified"}},
)
async def get_region(
    region_id: RegionId, request: Request, response: Response, session: DbSession
) -> RegionRead:
    region = RegionRead.model_validate(await service.get_region(session, region_id))
    unchanged = tagged_read(request, response, "region", region_id, region)
    return region if unchanged is None else unchanged  # type: ignore[return-value]


@router.post(
    "/{region_id}/organizers",
    status_code=201,
    summary="Grant a user organizer rights over this region's subtree (admin)",
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def grant_organizer(
    region_id: RegionId, body: OrganizerGrantCreate, session: DbSession, actor: CurrentActor
) -> OrganizerGrantRead:
    grant, user = await service.grant_organizer(
        session, actor, region_id=region_id, user_id=body.user_id
    )
    return _grant_read(grant, user.display_name)


@router.get(
    "/{region_id}/organizers",
    summary="List the organizers granted this region (admin)",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_organizers(
    region_id: RegionId, session: DbSession, actor: CurrentActor, paging: Paging
) -> OrganizerGrantPage:
    after_id = paging.after_id("organizers")
    rows = await service.list_organizers(
        session, actor, region_id=region_id, after_id=after_id, limit=paging.fetch
    )
    items, next_cursor = build_page(rows, paging.limit, "organizers", lambda row: [row[0].id])
    return OrganizerGrantPage(
        items=[_grant_read(grant, user.display_name) for grant, user in items],
        next_cursor=next_cursor,
    )


@router.delete(
    "/{region_id}/organizers/{user_id}",
    status_code=204,
    summary="Revoke an organizer grant (admin)",
    responses=problem_responses(401, 403, 404, 422),
)
async def revoke_organizer(
    region_id: RegionId, user_id: UserId, session: DbSession, actor: CurrentActor
) -> Response:
    await service.revoke_organizer(session, actor, region_id=region_id, user_id=user_id)
    return Response(status_code=204)


def _grant_read(grant: OrganizerGrant, display_name: str) -> OrganizerGrantRead:
    return OrganizerGrantRead.model_validate(
        {
            "id": grant.id,
            "user_id": grant.user_id,
            "region_id": grant.region_id,
            "display_name": display_name,
            "created_at": grant.created_at,
        }
    )
