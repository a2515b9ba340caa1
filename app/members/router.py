from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response

from app.core.auth import CurrentActor
from app.core.conditional import answer_read, required_if_match
from app.core.deps import DbSession
from app.core.nobody import Route
from app.core.pagination import PageParams, build_page, page_params
from app.core.problems import problem_responses
from app.core.types import MAX_ID, PathDigits
from app.members import service
from app.members.models import ROSTER_MAX_ENTRIES, Member, MemberResource, MemberStatus
from app.members.schemas import (
    MemberApply,
    MemberPage,
    MemberRead,
    MemberUpdate,
    ResourceIn,
    ResourceRead,
    RosterRead,
)

router = APIRouter(route_class=Route, prefix="/v1/members", tags=["members"])

UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="The member's user id."), PathDigits]
Paging = Annotated[PageParams, Depends(page_params)]


def member_read(found: tuple[Member, str]) -> MemberRead:
    member, display_name = found
    return MemberRead(
        user_id=member.user_id,
        display_name=display_name,
        community_id=member.community_id,
        status=MemberStatus(member.status),
        capacity=member.capacity,
        active_claims=member.active_claims,
        capacity_remaining=max(member.capacity - member.active_claims, 0),
        created_at=member.created_at,
        reviewed_at=member.reviewed_at,
    )


def roster_read(rows: list[tuple[MemberResource, list[int]]]) -> RosterRead:
    return RosterRead(
        items=[
            ResourceRead(
                id=resource.id,
                category=resource.category,
                title=resource.title,
                description=resource.description,
                quantity=resource.quantity,
                service_region_ids=region_ids,
            )
            for resource, region_ids in rows
        ]
    )


@router.post(
    "",
    status_code=201,
    summary="Apply to be a member of a community (pending until an organizer approves)",
    responses=problem_responses(400, 401, 404, 409, 422),
)
async def apply_membership(
    body: MemberApply, session: DbSession, actor: CurrentActor
) -> MemberRead:
    return member_read(
        await service.apply(session, actor, community_id=body.community_id, capacity=body.capacity)
    )


@router.get(
    "",
    summary="Members in the organizer's scope (e.g. ?status=pending to review)",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_members(
    session: DbSession,
    actor: CurrentActor,
    paging: Paging,
    status: MemberStatus | None = None,
    region_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> MemberPage:
    after_id = paging.after_id("members")
    rows = await service.list_members(
        session,
        actor,
        status=status,
        region_id=region_id,
        after_id=after_id,
        limit=paging.fetch,
    )
    items, next_cursor = build_page(rows, paging.limit, "members", lambda row: [row[0].user_id])
    return MemberPage(items=[member_read(row) for row in items], next_cursor=next_cursor)


def _member_answer(request: Request, response: Response, found: tuple[Member, str]) -> MemberRead:
    """A profile read: 304, or the profile with its ETag (the same from /me and /{user_id})."""
    unchanged = answer_read(request, response, service.member_etag(found[0]))
    return member_read(found) if unchanged is None else unchanged  # type: ignore[return-value]


@router.get(
    "/me",
    summary="My member profile (with the same ETag as /v1/members/{user_id})",
    responses={**problem_responses(401, 404), 304: {"description": "Not modified"}},
)
async def get_my_membership(
    request: Request, response: Response, session: DbSession, actor: CurrentActor
) -> MemberRead:
    found = await service.get_member(session, actor, user_id=actor.user_id)
    return _member_answer(request, response, found)


@router.get("/me/resources", summary="My resource roster", responses=problem_responses(401, 404))
async def get_my_resources(session: DbSession, actor: CurrentActor) -> RosterRead:
    return roster_read(await service.get_roster(session, actor, user_id=actor.user_id))


@router.put(
    "/me/resources",
    summary="Replace my resource roster",
    description=f"A JSON array of at most {ROSTER_MAX_ENTRIES} entries; it replaces the roster.",
    responses=problem_responses(400, 401, 404, 422),
)
async def replace_my_resources(
    body: Annotated[list[ResourceIn], Body(max_length=ROSTER_MAX_ENTRIES)],
    session: DbSession,
    actor: CurrentActor,
) -> RosterRead:
    return roster_read(await service.replace_roster(session, actor, entries=body))


@router.get(
    "/{user_id}",
    summary="A member profile (the member, or an organizer in scope; with an ETag)",
    responses={**problem_responses(401, 403, 404, 422), 304: {"description": "Not modified"}},
)
async def get_member(
    user_id: UserId, request: Request, response: Response, session: DbSession, actor: CurrentActor
) -> MemberRead:
    found = await service.get_member(session, actor, user_id=user_id)
    return _member_answer(request, response, found)


@router.get(
    "/{user_id}/resources",
    summary="A member's roster (the member, or an organizer in scope)",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_member_resources(
    user_id: UserId, session: DbSession, actor: CurrentActor
) -> RosterRead:
    return roster_read(await service.get_roster(session, actor, user_id=user_id))


@router.patch(
    "/{user_id}",
    summary="Change a member's capacity (organizer in scope; If-Match: the profile's ETag)",
    responses=problem_responses(400, 401, 403, 404, 412, 422, 428),
)
async def update_member(
    user_id: UserId,
    body: MemberUpdate,
    request: Request,
    response: Response,
    session: DbSession,
    actor: CurrentActor,
) -> MemberRead:
    found = await service.set_capacity(
        session,
        actor,
        user_id=user_id,
        capacity=body.capacity,
        if_match=required_if_match(request),
    )
    response.headers["ETag"] = service.member_etag(found[0])
    return member_read(found)


@router.post(
    "/{user_id}/approve",
    summary="Approve (or reinstate) a member (organizer in scope)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def approve_member(user_id: UserId, session: DbSession, actor: CurrentActor) -> MemberRead:
    return member_read(await service.approve(session, actor, user_id=user_id))


@router.post(
    "/{user_id}/suspend",
    summary="Suspend a member: no new claims (organizer in scope)",
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def suspend_member(
    user_id: UserId,
    session: DbSession,
    actor: CurrentActor,
) -> MemberRead:
    return member_read(await service.suspend(session, actor, user_id=user_id))
