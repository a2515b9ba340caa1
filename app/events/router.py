from __future__ import annotations

import csv
import io
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.requests import Request

from app.claims.router import claim_read
from app.claims.schemas import ClaimRead
from app.core.actor import Actor
from app.core.auth import CurrentActor, _bearer, get_actor
from app.core.conditional import answer_read, required_if_match
from app.core.db import Database
from app.core.deps import DbSession
from app.core.errors import Unauthorized
from app.core.nobody import Route
from app.core.pagination import PageParams, build_page, page_params
from app.core.problems import problem_responses
from app.core.ratelimit import RateLimits
from app.core.types import MAX_ID, PathDigits
from app.events import service
from app.events.live import LiveFeeds
from app.events.models import EventMode, EventStatus, PoolState
from app.events.schemas import (
    CommunityBrief,
    CommunityReport,
    EventClaimCreate,
    EventCreate,
    EventPage,
    EventRead,
    EventReport,
    EventUpdate,
    PoolWishPage,
    PoolWishRead,
    PreferencesIn,
    PreferencesRead,
    ReportPart,
    UnclaimedWish,
    WishIdsIn,
)
from app.wishes.models import Wish, WishStatus

router = APIRouter(route_class=Route, prefix="/v1/claim-events", tags=["claim events"])
board_router = APIRouter(route_class=Route, tags=["claim events"])

EventId = Annotated[int, Path(ge=1, le=MAX_ID, description="Claim event id."), PathDigits]
WishId = Annotated[int, Path(ge=1, le=MAX_ID, description="Wish id."), PathDigits]
Paging = Annotated[PageParams, Depends(page_params)]


async def caught_up(request: Request, event_id: EventId) -> None:
    """An event whose opening or closing time has passed is opened or closed before it is
    served, even if the clock has not come round yet."""
    database: Database = request.app.state.database
    await service.catch_up(database, event_id)


CaughtUp = Depends(caught_up)


async def opened_on_time(request: Request) -> None:
    """Before a rush claim: an event whose opening time has come is opened first, so the
    taps at the opening second are not refused while the clock's next tick is due. An event
    never goes back to scheduled, so once this process has seen it past opening it does not
    look again: a rush pays one read per event and process, not one per claim. A route
    dependency runs before the request's session opens, as it must: on SQLite the
    catch-up's own write transaction would otherwise wait on the request's. It reads the
    raw path parameter (the claim's hot path: no second validation of it); a bad one is
    left to the endpoint's 422."""
    raw: str = request.path_params.get("event_id", "")
    past_opening: set[str] = request.app.state.events_past_opening
    if raw in past_opening:
        return
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19 and 1 <= int(raw) <= MAX_ID):
        return
    database: Database = request.app.state.database
    status = await service.catch_up(database, int(raw))
    if status in (EventStatus.live.value, EventStatus.closed.value):
        past_opening.add(raw)


def event_read(view: service.EventView, request: Request | None = None) -> EventRead:
    event = view.event
    board_url = None
    if view.may_manage and request is not None:
        board_url = str(request.url_for("event_board", event_id=str(event.id))) + (
            f"?token={event.board_token}"
        )
    return EventRead(
        id=event.id,
        title=event.title,
        mode=EventMode(event.mode),
        status=EventStatus(event.status),
        starts_at=event.starts_at,
        ends_at=event.ends_at,
        per_member_quota=event.per_member_quota,
        communities=[CommunityBrief(id=c.id, name=c.name) for c in view.communities],
        organizer_id=event.organizer_id,
        wishes_pooled=view.wishes_pooled,
        slots_pooled=view.slots_pooled,
        slots_claimed=view.slots_claimed,
        members=view.members,
        my_claims=view.my_claims,
        my_preferences=view.my_preferences,
        board_url=board_url,
        opened_at=event.opened_at,
        closed_at=event.closed_at,
        created_at=event.created_at,
        updated_at=event.updated_at,
    )


# First in this router (routes are tried in order): the rush's endpoint.
@router.post(
    "/{event_id}/claims",
    status_code=201,
    summary="Claim a pooled wish in a live rush event (first come, first served)",
    description="409 `quota_reached`, `not_in_event`, `wish_full`, `already_claimed`, "
    "`capacity_reached`, `not_claimable`, `own_wish`, `wrong_event_mode`, `invalid_state` "
    "(the event is not live); 403 `not_a_member`, `member_not_active`; 429 `rate_limited`.",
    dependencies=[Depends(opened_on_time)],
    responses=problem_responses(400, 401, 403, 404, 409, 422, 429),
)
async def claim_in_event(
    event_id: EventId,
    body: EventClaimCreate,
    request: Request,
    session: DbSession,
    actor: CurrentActor,
) -> ClaimRead:
    limits: RateLimits = request.app.state.rate_limits
    await limits.hit(limits.event_claims, "event_claim", str(actor.user_id))
    claim = await service.rush_claim(
        session, actor, event_id=event_id, wish_id=body.wish_id, slots=body.slots
    )
    return claim_read(claim)


@router.post(
    "",
    status_code=201,
    summary="Create a claim event over communities the organizer covers",
    description="Without `starts_at` the event is a `draft`; with it, `scheduled`: the "
    "in-app clock opens it at `starts_at` and closes it at `ends_at`.",
    responses=problem_responses(400, 401, 403, 422),
)
async def create_event(
    body: EventCreate, request: Request, session: DbSession, actor: CurrentActor
) -> EventRead:
    view = await service.create_event(
        session,
        actor,
        title=body.title,
        community_ids=body.community_ids,
        mode=body.mode,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        per_member_quota=body.per_member_quota,
        wish_ids=body.wish_ids,
    )
    return event_read(view, request)


@router.get("", summary="Claim events, newest first", responses=problem_responses(401, 422))
async def list_events(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    paging: Paging,
    status: Annotated[list[EventStatus] | None, Query(max_length=4)] = None,
) -> EventPage:
    views = await service.list_events(
        session,
        actor,
        statuses=[s.value for s in status] if status else None,
        after_id=paging.after_id("claim_events"),
        limit=paging.fetch,
    )
    items, next_cursor = build_page(views, paging.limit, "claim_events", lambda v: [v.event.id])
    return EventPage(items=[event_read(v, request) for v in items], next_cursor=next_cursor)


@router.get(
    "/{event_id}",
    summary="A claim event (with an ETag; If-None-Match → 304)",
    dependencies=[CaughtUp],
    responses={**problem_responses(401, 404, 422), 304: {"description": "Not modified"}},
)
async def get_event(
    event_id: EventId, request: Request, response: Response, session: DbSession, actor: CurrentActor
) -> EventRead:
    view = await service.get_event(session, actor, event_id=event_id)
    current = service.event_etag(view)
    unchanged = answer_read(request, response, current)
    if unchanged is not None:
        return unchanged  # type: ignore[return-value]
    return event_read(view, request)


@router.patch(
    "/{event_id}",
    summary="Change a draft or scheduled event (organizer covering it; If-Match: its ETag)",
    dependencies=[CaughtUp],
    responses=problem_responses(400, 401, 403, 404, 409, 412, 422, 428),
)
async def update_event(
    event_id: EventId,
    body: EventUpdate,
    request: Request,
    response: Response,
    session: DbSession,
    actor: CurrentActor,
) -> EventRead:
    if_match = required_if_match(request)
    # The fields sent, as parsed (model_dump would turn ids back into strings).
    changes: dict[str, Any] = {name: getattr(body, name) for name in body.model_fields_set}
    view = await service.update_event(
        session, actor, event_id=event_id, changes=changes, if_match=if_match
    )
    refreshed = await service.get_event(session, actor, event_id=event_id)
    response.headers["ETag"] = service.event_etag(refreshed)
    return event_read(view, request)


@router.post(
    "/{event_id}/wishes",
    summary="Choose wishes for the pool (draft or scheduled)",
    description="Once any wish is chosen, only the chosen ones are pooled at opening (those "
    "still open with free slots); otherwise every such wish of the communities. In an event "
    "that pools its communities, sending only wishes it left out lets them back in (it keeps "
    "pooling its communities); sending any other wish chooses all those sent.",
    dependencies=[CaughtUp],
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def add_event_wishes(
    event_id: EventId, body: WishIdsIn, request: Request, session: DbSession, actor: CurrentActor
) -> EventRead:
    view = await service.add_wishes(session, actor, event_id=event_id, wish_ids=body.wish_ids)
    return event_read(view, request)


@router.delete(
    "/{event_id}/wishes/{wish_id}",
    summary="Take a wish out of the pool (draft or scheduled)",
    description="A chosen wish; or, when the event chose none (it pools every open wish of "
    "its communities), any wish of its communities, which is then left out at opening.",
    dependencies=[CaughtUp],
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def remove_event_wish(
    event_id: EventId, wish_id: WishId, request: Request, session: DbSession, actor: CurrentActor
) -> EventRead:
    view = await service.remove_wish(session, actor, event_id=event_id, wish_id=wish_id)
    return event_read(view, request)


def _pool_read(entry: Any, wish: Wish, event_id: int) -> PoolWishRead:
    return PoolWishRead(
        wish_id=wish.id,
        title=wish.title,
        category=wish.category,
        community_id=entry.community_id,
        state=PoolState(entry.state),
        status=WishStatus(wish.status),
        slots_total=wish.slots_total,
        slots_claimed=wish.slots_claimed,
        slots_remaining=wish.slots_total - wish.slots_claimed,
        slots_free_at_open=entry.slots_free_at_open,
        in_pool_now=wish.event_id == event_id,
    )


@router.get(
    "/{event_id}/wishes",
    summary="The event's chosen or pooled wishes",
    description="Each with its `state` (`selected`, `pooled`, `skipped`, `removed`, "
    "`returned`). Before opening, an event that chose no wishes lists those it would pool "
    "now (every open wish of its communities with free slots) as `selected`, and those "
    "taken out as `removed`.",
    dependencies=[CaughtUp],
    responses=problem_responses(401, 404, 422),
)
async def list_event_wishes(
    event_id: EventId, session: DbSession, actor: CurrentActor, paging: Paging
) -> PoolWishPage:
    mode, rows = await service.pool_page(
        session,
        actor,
        event_id=event_id,
        after_id=paging.after_id("event_wishes"),
        limit=paging.fetch,
    )
    items, next_cursor = build_page(rows, paging.limit, "event_wishes", lambda r: [r[1].id])
    return PoolWishPage(
        items=[_pool_read(entry, wish, event_id) for entry, wish in items],
        next_cursor=next_cursor,
        pool_mode=mode,
    )


@router.post(
    "/{event_id}/open",
    summary="Open now (from draft or scheduled): pools the wishes",
    dependencies=[CaughtUp],
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def open_event(
    event_id: EventId, request: Request, session: DbSession, actor: CurrentActor
) -> EventRead:
    return event_read(await service.open_event(session, actor, event_id=event_id), request)


@router.post(
    "/{event_id}/close",
    summary="Close now: unclaimed wishes return home (allocate mode: allocates first)",
    dependencies=[CaughtUp],
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def close_event(
    event_id: EventId, request: Request, session: DbSession, actor: CurrentActor
) -> EventRead:
    return event_read(await service.close_event(session, actor, event_id=event_id), request)


@router.put(
    "/{event_id}/preferences",
    summary="Rank pooled wishes in a live allocate event (most wanted first)",
    description='The body is a JSON array of wish ids, or `{"wish_ids": [...]}`. At close '
    "the optimal assignment is computed from everyone's rankings. 409 `not_in_event` (with "
    "`wish_ids`), `already_claimed`, `own_wish`, `wrong_event_mode`, `invalid_state`; 422 "
    "`duplicate_preferences`, `too_many_preferences`.",
    dependencies=[CaughtUp],
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def set_preferences(
    event_id: EventId,
    body: PreferencesIn,
    session: DbSession,
    actor: CurrentActor,
) -> PreferencesRead:
    ranked = await service.set_preferences(
        session, actor, event_id=event_id, wish_ids=body.wish_ids
    )
    return PreferencesRead(event_id=event_id, wish_ids=ranked)


@router.get(
    "/{event_id}/preferences",
    summary="My ranking in an allocate event",
    dependencies=[CaughtUp],
    responses=problem_responses(401, 404, 422),
)
async def get_preferences(
    event_id: EventId, session: DbSession, actor: CurrentActor
) -> PreferencesRead:
    ranked = await service.get_preferences(session, actor, event_id=event_id)
    return PreferencesRead(event_id=event_id, wish_ids=ranked)


@router.get(
    "/{event_id}/allocation",
    summary="The allocation of a closed allocate event, with its inputs and a recomputation",
    description="`identical` is true when recomputing from the stored inputs and seed gives "
    "exactly the published pairs.",
    dependencies=[CaughtUp],
    responses=problem_responses(401, 404, 409, 422),
)
async def get_allocation(
    event_id: EventId, session: DbSession, actor: CurrentActor
) -> dict[str, Any]:
    return await service.allocation(session, actor, event_id=event_id)


def _community_report(data: dict[str, Any]) -> CommunityReport:
    return CommunityReport.model_validate(data)


# The CSV tables' columns: the JSON report's field names, so one reader serves both.
REPORT_COLUMNS = tuple(CommunityReport.model_fields)
UNCLAIMED_COLUMNS = tuple(UnclaimedWish.model_fields)


def _prefers_csv(accept: str | None) -> bool:
    """Whether the Accept header ranks text/csv above JSON (q-values honoured; JSON wins
    ties and is the default)."""
    weights: dict[str, float] = {}
    for item in (accept or "").split(","):
        media_type, *parameters = (part.strip() for part in item.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        weights[media_type.lower()] = max(weights.get(media_type.lower(), 0.0), quality)
    csv_weight = weights.get("text/csv", 0.0)
    json_weight = max(
        weights.get("application/json", 0.0),
        weights.get("application/*", 0.0),
        weights.get("*/*", 0.0) if "text/csv" not in weights else 0.0,
    )
    return csv_weight > 0 and csv_weight > json_weight


def _csv_table(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    """One table, a header row of field names: what any CSV reader takes as it is (no BOM,
    no second table below)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for data in rows:
        writer.writerow(["" if data[key] is None else data[key] for key in columns])
    return out.getvalue()


def _report_csv(report: EventReport, part: ReportPart) -> str:
    if part == ReportPart.unclaimed:
        return _csv_table(
            UNCLAIMED_COLUMNS, [wish.model_dump(mode="json") for wish in report.unclaimed]
        )
    return _csv_table(
        REPORT_COLUMNS,
        [row.model_dump(mode="json") for row in [*report.communities, report.totals]],
    )


@router.get(
    "/{event_id}/report",
    summary="Per-community report (JSON, or CSV with Accept: text/csv)",
    description="CSV is one table per request, headed by the JSON field names: the "
    "communities and the totals row (community_id empty), or with `?part=unclaimed` the "
    "unclaimed wishes. JSON always has both; `part` is ignored there.",
    dependencies=[CaughtUp],
    responses={
        **problem_responses(401, 404, 422),
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
    },
)
async def event_report(
    event_id: EventId,
    session: DbSession,
    actor: CurrentActor,
    accept: Annotated[str | None, Header()] = None,
    part: Annotated[
        ReportPart, Query(description="The CSV table: the communities, or the unclaimed wishes.")
    ] = ReportPart.communities,
) -> Any:
    summary = await service.report(session, actor, event_id=event_id)
    event = summary.event
    report = EventReport(
        event_id=event.id,
        title=event.title,
        status=EventStatus(event.status),
        mode=EventMode(event.mode),
        opened_at=event.opened_at,
        closed_at=event.closed_at,
        communities=[_community_report(t.as_dict()) for t in summary.tallies],
        totals=_community_report(summary.totals.as_dict() | {"community_id": None}),
        unclaimed=[
            UnclaimedWish(
                wish_id=wish.id,
                title=wish.title,
                community_id=wish.community_id,
                slots_free_at_open=free,
                slots_claimed=claimed,
            )
            for wish, free, claimed in summary.unclaimed
        ],
    )
    if _prefers_csv(accept):
        name = "report" if part == ReportPart.communities else "unclaimed"
        return Response(
            _report_csv(report, part),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="claim-event-{event.id}-{name}.csv"'
            },
        )
    return report


async def _stream_viewer(
    request: Request,
    event_id: EventId,
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    board_token: Annotated[str | None, Query(max_length=64)] = None,
) -> None:
    """A signed-in user who may see the event, or the board's token."""
    if board_token is not None:
        await service.require_board_token(session, event_id=event_id, token=board_token)
        return
    if credentials is None:
        raise Unauthorized()
    actor: Actor = await get_actor(request, credentials)
    await service.get_event(session, actor, event_id=event_id)


class EventStreamResponse(StreamingResponse):
    media_type = "text/event-stream"


@router.get(
    "/{event_id}/stream",
    response_class=EventStreamResponse,
    summary="Live feed of the event (server-sent events)",
    description="`text/event-stream` with named events: `snapshot` (full state, first), "
    "`claim`, `wish`, `tally`, `status`; `: ping` comments keep the connection open. "
    "Authenticate with a bearer token, or `?board_token=` from the event's `board_url`.",
    dependencies=[CaughtUp, Depends(_stream_viewer)],
    responses={
        **problem_responses(401, 404, 422),
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
    },
)
async def event_stream(event_id: EventId, request: Request) -> StreamingResponse:
    feeds: LiveFeeds = request.app.state.live_feeds
    return EventStreamResponse(
        feeds.stream(event_id),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


_BOARD_HTML: str | None = None


@board_router.get(
    "/board/events/{event_id}",
    summary="The live board page for the big screen (HTML; no external assets)",
    response_class=HTMLResponse,
    include_in_schema=True,
    responses=problem_responses(404, 422),
)
async def event_board(
    event_id: EventId,
    session: DbSession,
    token: Annotated[str | None, Query(max_length=64, description="The board token.")] = None,
) -> HTMLResponse:
    # An unknown event, or a board link with a wrong token, is a 404 rather than a page
    # that would only ever show an error.
    await service.require_board_token(session, event_id=event_id, token=token)
    global _BOARD_HTML
    if _BOARD_HTML is None:
        _BOARD_HTML = resources.files("app.events").joinpath("board.html").read_text("utf-8")
    return HTMLResponse(
        _BOARD_HTML,
        headers={
            "Cache-Control": "no-cache",
            # The page loads nothing from elsewhere; say so to the browser.
            "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
            "script-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
            "Referrer-Policy": "no-referrer",
        },
    )
