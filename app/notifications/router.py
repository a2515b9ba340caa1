from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from starlette.requests import Request

from app.core.auth import CurrentActor
from app.core.deps import DbSession
from app.core.i18n import Lang, negotiate_language
from app.core.nobody import Route
from app.core.pagination import PageParams, build_page, page_params
from app.core.problems import problem_responses
from app.core.types import MAX_ID, PathDigits
from app.notifications import service, texts
from app.notifications.models import Notification
from app.notifications.schemas import (
    NotificationPage,
    NotificationRead,
    ReadAllIn,
    ReadAllResult,
    UnreadCount,
)

router = APIRouter(route_class=Route, prefix="/v1/me/notifications", tags=["notifications"])

NotificationId = Annotated[int, Path(ge=1, le=MAX_ID, description="Notification id."), PathDigits]
Paging = Annotated[PageParams, Depends(page_params)]
LISTING = "notifications"


def _lang(request: Request) -> Lang:
    return negotiate_language(request.headers.get("accept-language"))


def notification_read(notification: Notification, lang: Lang) -> NotificationRead:
    return NotificationRead(
        id=notification.id,
        kind=notification.kind,
        title=texts.title(notification.kind, notification.data, lang),
        data=notification.data,
        created_at=notification.created_at,
        read_at=notification.read_at,
    )


@router.get(
    "",
    summary="My notifications, newest first",
    description="The in-app inbox. `?unread=true` lists only unread ones. Titles follow "
    "Accept-Language (zh-CN by default, en).",
    responses=problem_responses(401, 422),
)
async def list_my_notifications(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    paging: Paging,
    unread: Annotated[bool, Query(description="Only unread notifications.")] = False,
) -> NotificationPage:
    rows = await service.my_notifications(
        session,
        actor,
        unread=unread,
        after_id=paging.after_id(LISTING),
        limit=paging.fetch,
    )
    items, next_cursor = build_page(rows, paging.limit, LISTING, lambda n: [n.id])
    lang = _lang(request)
    return NotificationPage(
        items=[notification_read(n, lang) for n in items], next_cursor=next_cursor
    )


@router.get(
    "/unread-count",
    summary="How many of my notifications are unread (for the badge)",
    responses=problem_responses(401),
)
async def my_unread_count(session: DbSession, actor: CurrentActor) -> UnreadCount:
    return UnreadCount(unread=await service.unread_count(session, actor))


@router.post(
    "/read-all",
    summary="Mark my notifications read (all, or up to an id)",
    responses=problem_responses(400, 401, 422),
)
async def mark_all_notifications_read(
    session: DbSession, actor: CurrentActor, body: ReadAllIn | None = None
) -> ReadAllResult:
    marked = await service.mark_all_read(session, actor, up_to_id=body.up_to_id if body else None)
    return ReadAllResult(marked=marked, unread=await service.unread_count(session, actor))


@router.post(
    "/{notification_id}/read",
    summary="Mark one of my notifications read",
    description="Idempotent: a notification already read keeps the time it was first read.",
    responses=problem_responses(401, 404, 422),
)
async def mark_notification_read(
    notification_id: NotificationId, request: Request, session: DbSession, actor: CurrentActor
) -> NotificationRead:
    notification = await service.mark_read(session, actor, notification_id=notification_id)
    return notification_read(notification, _lang(request))
