from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from app.core.auth import CurrentActor
from app.core.conditional import answer_read, required_if_match
from app.core.deps import AuditedReadSession, DbSession
from app.core.nobody import Route
from app.core.pagination import PageParams, build_page, page_params
from app.core.problems import problem_responses
from app.core.types import MAX_ID, PathDigits
from app.wishes import service
from app.wishes.models import WishStatus
from app.wishes.privacy import mask_address, mask_contact_phone, mask_name
from app.wishes.schemas import (
    CancelIn,
    ConfirmIn,
    ReasonIn,
    WishCreate,
    WishPage,
    WishRead,
    WishUpdate,
)
from app.wishes.service import WishView

router = APIRouter(route_class=Route, prefix="/v1/wishes", tags=["wishes"])

WishId = Annotated[int, Path(ge=1, le=MAX_ID, description="Wish id."), PathDigits]
Paging = Annotated[PageParams, Depends(page_params)]


def wish_fields(view: WishView) -> dict[str, Any]:
    """What ``view``'s viewer is shown of the wish, as ``WishRead``'s fields (masked unless
    they may see the contact)."""
    wish = view.wish
    visible = view.contact_visible
    return {
        "id": wish.id,
        "title": wish.title,
        "description": wish.description,
        "category": wish.category,
        "region_id": wish.region_id,
        "community_id": wish.community_id,
        "street_id": wish.street_id,
        "status": wish.status,
        "slots_total": wish.slots_total,
        "slots_claimed": wish.slots_claimed,
        "slots_fulfilled": wish.slots_fulfilled,
        "slots_remaining": wish.slots_total - wish.slots_claimed,
        "deadline": wish.deadline,
        "beneficiary_name": wish.beneficiary_name
        if visible
        else mask_name(wish.beneficiary_name) or "",
        "resident_id": wish.resident_id,
        "creator_id": wish.creator_id,
        "published_on_behalf": wish.resident_id != wish.creator_id,
        "contact": {
            "name": wish.contact_name if visible else mask_name(wish.contact_name),
            "phone": wish.contact_phone if visible else mask_contact_phone(wish.contact_phone),
            "address": wish.contact_address
            if visible
            else mask_address(wish.contact_address, view.community_name),
            "masked": not visible,
        },
        "review_note": wish.review_note if view.relation != service.Relation.public else None,
        "rating": wish.rating,
        "thanks": wish.thanks,
        "created_at": wish.created_at,
        "updated_at": wish.updated_at,
        "fulfilled_at": wish.fulfilled_at,
        "confirmed_at": wish.confirmed_at,
    }


def wish_read(view: WishView) -> WishRead:
    return WishRead.model_validate(wish_fields(view))


@router.post(
    "",
    status_code=201,
    summary="Publish a wish (pending review; open at once when an organizer publishes in scope)",
    responses=problem_responses(400, 401, 403, 404, 422),
)
async def create_wish(body: WishCreate, session: DbSession, actor: CurrentActor) -> WishRead:
    view = await service.create_wish(
        session,
        actor,
        title=body.title,
        description=body.description,
        category=body.category,
        region_id=body.region_id,
        slots_total=body.slots_total,
        deadline=body.deadline,
        contact=body.contact,
        on_behalf_of=body.on_behalf_of,
    )
    return wish_read(view)


@router.get(
    "",
    summary="Wishes you may see, newest first",
    description=(
        "Everyone sees open and claimed wishes; residents also their own in every state; "
        "claimers those they claimed; organizers everything in their regions. `region_id` "
        "means the region's whole subtree. Contact details are masked unless you are the "
        "owner, an organizer in scope, or hold an active claim on the wish."
    ),
    responses=problem_responses(401, 404, 422),
)
async def list_wishes(
    session: AuditedReadSession,
    actor: CurrentActor,
    paging: Paging,
    status: Annotated[list[WishStatus] | None, Query(max_length=8)] = None,
    category: Annotated[str | None, Query(max_length=32)] = None,
    region_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    mine: Annotated[bool, Query(description="Only wishes I published or that are for me.")] = False,
) -> WishPage:
    after_id = paging.after_id("wishes")
    views = await service.list_wishes(
        session,
        actor,
        statuses=status,
        category=category,
        region_id=region_id,
        mine=mine,
        after_id=after_id,
        limit=paging.limit,
    )
    items, next_cursor = build_page(views, paging.limit, "wishes", lambda v: [v.wish.id])
    # One validation for the page (a listing's hot path): ~2x cheaper than a model per wish.
    return WishPage.model_validate(
        {"items": [wish_fields(view) for view in items], "next_cursor": next_cursor}
    )


@router.get(
    "/{wish_id}",
    summary="A wish (with a strong ETag; If-None-Match → 304)",
    responses={**problem_responses(401, 404, 422), 304: {"description": "Not modified"}},
)
async def get_wish(
    wish_id: WishId,
    request: Request,
    response: Response,
    session: AuditedReadSession,
    actor: CurrentActor,
) -> WishRead:
    view = await service.get_wish(session, actor, wish_id=wish_id)
    current = service.wish_etag(view)
    unchanged = answer_read(request, response, current)
    if unchanged is not None:
        return unchanged  # type: ignore[return-value]
    return wish_read(view)


@router.patch(
    "/{wish_id}",
    summary="Edit my wish while pending review or open (If-Match: its ETag)",
    description="412 `precondition_failed` when the wish changed since you read it, 428 "
    "`precondition_required` without If-Match; 409 `invalid_state` once it is claimed or "
    "closed, `slots_below_claimed`.",
    responses=problem_responses(400, 401, 403, 404, 409, 412, 422, 428),
)
async def update_wish(
    wish_id: WishId,
    body: WishUpdate,
    request: Request,
    response: Response,
    session: DbSession,
    actor: CurrentActor,
) -> WishRead:
    if_match = required_if_match(request)
    changes = body.model_dump(exclude_unset=True)
    view = await service.update_wish(
        session, actor, wish_id=wish_id, if_match=if_match, changes=changes
    )
    response.headers["ETag"] = service.wish_etag(view)
    return wish_read(view)


def tagged(view: WishView, response: Response) -> WishRead:
    """An action's answer, with the ETag of the wish it left (ready for the next PATCH)."""
    response.headers["ETag"] = service.wish_etag(view)
    return wish_read(view)


@router.post(
    "/{wish_id}/approve",
    summary="Approve a pending wish (organizer in scope)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def approve_wish(
    wish_id: WishId, response: Response, session: DbSession, actor: CurrentActor
) -> WishRead:
    return tagged(await service.approve(session, actor, wish_id=wish_id), response)


@router.post(
    "/{wish_id}/reject",
    summary="Reject a pending wish with a reason (organizer in scope)",
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def reject_wish(
    wish_id: WishId, body: ReasonIn, response: Response, session: DbSession, actor: CurrentActor
) -> WishRead:
    view = await service.reject(session, actor, wish_id=wish_id, reason=body.reason)
    return tagged(view, response)


@router.post(
    "/{wish_id}/cancel",
    summary="Cancel a wish while nothing is fulfilled (owner, or organizer in scope)",
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def cancel_wish(
    wish_id: WishId,
    response: Response,
    session: DbSession,
    actor: CurrentActor,
    body: CancelIn | None = None,
) -> WishRead:
    reason = body.reason if body else None
    return tagged(await service.cancel(session, actor, wish_id=wish_id, reason=reason), response)


@router.post(
    "/{wish_id}/confirm",
    summary="Confirm a fulfilled wish, with a rating and thanks (the resident)",
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def confirm_wish(
    wish_id: WishId,
    response: Response,
    session: DbSession,
    actor: CurrentActor,
    body: ConfirmIn | None = None,
) -> WishRead:
    body = body or ConfirmIn()
    view = await service.confirm(
        session, actor, wish_id=wish_id, rating=body.rating, thanks=body.thanks
    )
    return tagged(view, response)
