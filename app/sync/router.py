from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.requests import Request

from app.claims.router import claim_read
from app.core.auth import CurrentActor
from app.core.deps import AppSettings, AuditedReadSession
from app.core.i18n import negotiate_language
from app.core.nobody import Route
from app.core.pagination import MAX_LIMIT
from app.core.problems import problem_responses
from app.notifications.router import notification_read
from app.sync import service
from app.sync.schemas import SyncPage, Tombstone
from app.sync.tokens import MAX_TOKEN_LENGTH
from app.wishes.router import wish_read

router = APIRouter(route_class=Route, prefix="/v1/sync", tags=["sync"])


@router.get(
    "",
    summary="What changed for me since my last sync (delta sync)",
    description=(
        "Without `since`: a full snapshot (`reset: true`). With the `next_token` of the last "
        "answer: what changed since it was issued: wishes, claims and notifications to upsert "
        "by id, and `tombstones` to drop. Changes may repeat, never go missing, whatever order "
        "transactions commit in. Pages hold up to `limit` entries: while `has_more`, call again "
        "at once with `next_token`. 410 `sync_token_expired`: the token is older than "
        "`MICROWISH_SYNC_TOKEN_TTL_DAYS` (30) or from another database: drop everything and "
        "sync without `since`. 422 `invalid_sync_token`: not a token of yours."
    ),
    responses=problem_responses(401, 410, 422),
)
async def sync(
    request: Request,
    # A write transaction: unmasked reads are audited, as on GET /v1/wishes.
    session: AuditedReadSession,
    actor: CurrentActor,
    settings: AppSettings,
    since: Annotated[
        str | None,
        Query(
            # Length is checked with the token itself: whatever is not one of our tokens
            # is 422 invalid_sync_token, the code the app switches on to sync afresh.
            description="`next_token` of the previous answer; omit for a full snapshot. "
            f"At most {MAX_TOKEN_LENGTH} characters.",
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Entries per page, 1–{MAX_LIMIT}.")
    ] = MAX_LIMIT,
) -> SyncPage:
    batch = await service.sync(
        session,
        actor,
        since=since,
        limit=limit,
        token_ttl=timedelta(days=settings.sync_token_ttl_days),
    )
    lang = negotiate_language(request.headers.get("accept-language"))
    return SyncPage(
        reset=batch.reset,
        wishes=[wish_read(view) for view in batch.wishes],
        claims=[claim_read(claim, wish=wish) for claim, wish in batch.claims],
        notifications=[notification_read(note, lang) for note in batch.notifications],
        tombstones=[Tombstone(type=entry.type, id=entry.id) for entry in batch.tombstones],
        next_token=batch.next_token,
        has_more=batch.has_more,
    )
