from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from app.claims import service
from app.claims.models import Claim, ClaimSource, ClaimStatus
from app.claims.schemas import ClaimCreate, ClaimPage, ClaimRead, FulfilIn, RevokeIn, WishBrief
from app.core.auth import CurrentActor
from app.core.conditional import answer_read, etag
from app.core.deps import AppSettings, DbSession
from app.core.nobody import Route
from app.core.pagination import PageParams, build_page, page_params
from app.core.problems import problem_responses
from app.core.ratelimit import RateLimits
from app.core.types import MAX_ID, PathDigits
from app.wishes.models import Wish, WishStatus

router = APIRouter(route_class=Route, tags=["claims"])

WishId = Annotated[int, Path(ge=1, le=MAX_ID, description="Wish id."), PathDigits]
ClaimId = Annotated[int, Path(ge=1, le=MAX_ID, description="Claim id."), PathDigits]
Paging = Annotated[PageParams, Depends(page_params)]


def claim_read(
    claim: Claim, *, wish: Wish | None = None, member_name: str | None = None
) -> ClaimRead:
    return ClaimRead(
        id=claim.id,
        wish_id=claim.wish_id,
        member_id=claim.member_id,
        member_name=member_name,
        slots=claim.slots,
        status=ClaimStatus(claim.status),
        source=ClaimSource(claim.source),
        event_id=claim.event_id,
        created_at=claim.created_at,
        updated_at=claim.updated_at,
        fulfilled_at=claim.fulfilled_at,
        fulfil_note=claim.fulfil_note,
        ended_at=claim.ended_at,
        end_reason=claim.end_reason,
        deadline=claim.deadline,
        extended_at=claim.extended_at,
        wish=WishBrief(
            id=wish.id,
            title=wish.title,
            category=wish.category,
            status=WishStatus(wish.status),
            region_id=wish.region_id,
        )
        if wish
        else None,
    )


@router.post(
    "/v1/wishes/{wish_id}/claims",
    status_code=201,
    summary="Claim slots of an open wish (active member)",
    description=(
        "409 `wish_full`, `already_claimed`, `capacity_reached`, `not_claimable`, `own_wish`; "
        "403 `not_a_member`, `member_not_active`, `out_of_area` (direct claims reach the "
        "member's home community and roster service regions)."
    ),
    responses=problem_responses(400, 401, 403, 404, 409, 422, 429),
)
async def claim_wish(
    wish_id: WishId,
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    settings: AppSettings,
    body: ClaimCreate | None = None,
) -> ClaimRead:
    limits: RateLimits = request.app.state.rate_limits
    await limits.hit(limits.claims, "claim", str(actor.user_id))
    claim = await service.claim_wish(
        session,
        actor,
        wish_id=wish_id,
        slots=body.slots if body else 1,
        district_wide=settings.direct_claim_scope == "district",
        alone=True,
    )
    return claim_read(claim)


@router.get(
    "/v1/wishes/{wish_id}/claims",
    summary="Claims of a wish (its owner, organizers in scope, its claimers)",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_wish_claims(
    wish_id: WishId, session: DbSession, actor: CurrentActor, paging: Paging
) -> ClaimPage:
    after_id = paging.after_id("wish_claims")
    rows = await service.claims_of_wish(
        session, actor, wish_id=wish_id, after_id=after_id, limit=paging.fetch
    )
    items, next_cursor = build_page(rows, paging.limit, "wish_claims", lambda r: [r[0].id])
    return ClaimPage(
        items=[claim_read(claim, member_name=name) for claim, name in items],
        next_cursor=next_cursor,
    )


@router.get(
    "/v1/me/claims", summary="My claims, newest first", responses=problem_responses(401, 422)
)
async def list_my_claims(
    session: DbSession,
    actor: CurrentActor,
    paging: Paging,
    status: Annotated[list[ClaimStatus] | None, Query(max_length=5)] = None,
) -> ClaimPage:
    after_id = paging.after_id("my_claims")
    rows = await service.my_claims(
        session,
        actor,
        statuses=[s.value for s in status] if status else None,
        after_id=after_id,
        limit=paging.fetch,
    )
    items, next_cursor = build_page(rows, paging.limit, "my_claims", lambda r: [r[0].id])
    return ClaimPage(
        items=[claim_read(claim, wish=wish) for claim, wish in items], next_cursor=next_cursor
    )


@router.get(
    "/v1/claims/{claim_id}",
    summary="A claim (the claimer, the wish's owner, organizers in scope; with an ETag)",
    responses={**problem_responses(401, 404, 422), 304: {"description": "Not modified"}},
)
async def get_claim(
    claim_id: ClaimId,
    request: Request,
    response: Response,
    session: DbSession,
    actor: CurrentActor,
) -> ClaimRead:
    claim, wish = await service.get_claim(session, actor, claim_id=claim_id)
    current = claim_etag(claim, wish)
    unchanged = answer_read(request, response, current)
    if unchanged is not None:
        return unchanged  # type: ignore[return-value]
    return claim_read(claim, wish=wish)


def claim_etag(claim: Claim, wish: Wish) -> str:
    # The claim embeds a brief of its wish: both versions name the representation.
    return etag("claim", claim.id, f"{claim.version}.{wish.version}")


def tagged(claim: Claim, wish: Wish, response: Response) -> ClaimRead:
    """An action's answer, with the ETag of the claim it left."""
    response.headers["ETag"] = claim_etag(claim, wish)
    return claim_read(claim, wish=wish)


@router.post(
    "/v1/claims/{claim_id}/withdraw",
    summary="Withdraw my active claim (its slots return to the wish)",
    description="403 `forbidden` (`not_your_claim`) for anyone but the claimer.",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def withdraw_claim(
    claim_id: ClaimId, response: Response, session: DbSession, actor: CurrentActor
) -> ClaimRead:
    claim, wish = await service.withdraw(session, actor, claim_id=claim_id)
    return tagged(claim, wish, response)


@router.post(
    "/v1/claims/{claim_id}/extend",
    summary="Extend my active claim's deadline, once",
    description=(
        "Adds the wish category's claim period again. 409 `already_extended`, "
        "`invalid_state` (not active, or already past its deadline); 403 `forbidden` "
        "(`not_your_claim`) for anyone but the claimer."
    ),
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def extend_claim(
    claim_id: ClaimId, response: Response, session: DbSession, actor: CurrentActor
) -> ClaimRead:
    claim, wish = await service.extend(session, actor, claim_id=claim_id)
    return tagged(claim, wish, response)


@router.post(
    "/v1/claims/{claim_id}/fulfil",
    summary="Report my claim fulfilled, with a note",
    description="403 `forbidden` (`not_your_claim`) for anyone but the claimer.",
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def fulfil_claim(
    claim_id: ClaimId,
    response: Response,
    session: DbSession,
    actor: CurrentActor,
    body: FulfilIn | None = None,
) -> ClaimRead:
    note = body.note if body else ""
    claim, wish = await service.fulfil(session, actor, claim_id=claim_id, note=note)
    return tagged(claim, wish, response)


@router.post(
    "/v1/claims/{claim_id}/revoke",
    summary="Revoke an active claim with a reason (organizer in scope)",
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def revoke_claim(
    claim_id: ClaimId, body: RevokeIn, response: Response, session: DbSession, actor: CurrentActor
) -> ClaimRead:
    claim, wish = await service.revoke(session, actor, claim_id=claim_id, reason=body.reason)
    return tagged(claim, wish, response)
