"""Claim events: create, pool, open, claim (rush), rank (allocate), close, report.

Opening and closing are driven by the in-app clock (``advance_due``), by any access that
finds an event overdue (``catch_up``), or by an organizer. All three go through
``open_event``/``close_event``, which lock the event row and act only from the right
state, so running them twice, or in several server processes at once, is harmless.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from app.claims import service as claims_service
from app.claims.models import Claim, ClaimSource
from app.claims.repository import EventClaim
from app.core.actor import Actor
from app.core.conditional import check_if_match, content_etag
from app.core.db import Database, utcnow
from app.core.errors import Conflict, Forbidden, InvalidState, NotFound, ValidationFailed
from app.events import repository
from app.events.allocation import AllocationInputs, allocate, make_inputs
from app.events.models import (
    MAX_PREFERENCES,
    ClaimEvent,
    ClaimEventPreference,
    EventMode,
    EventStatus,
    PoolMode,
    PoolState,
)
from app.notifications import service as notifications
from app.notifications.models import NotificationKind
from app.regions.access import Scope, scope_of
from app.regions.models import Region, RegionKind
from app.wishes.models import Wish, WishStatus

logger = logging.getLogger("microwish.events")

# NOTIFY channel that wakes every server process's live feed of an event (PostgreSQL).
NOTIFY_CHANNEL = "microwish_events"
MAX_WINDOW = timedelta(days=366)
# How far in the past a starts_at sent may be: a phone's clock a little behind the server's
# (the event then opens at the clock's next tick); anything older is a mistake.
START_SKEW = timedelta(minutes=5)


@dataclass
class EventView:
    event: ClaimEvent
    communities: list[Region]
    wishes_pooled: int = 0
    slots_pooled: int = 0
    slots_claimed: int = 0
    members: int = 0
    may_manage: bool = False
    my_claims: int | None = None  # the actor's live claims in this event, if a participant
    my_preferences: list[int] = field(default_factory=list)


def _manages(scope: Scope, communities: Sequence[Region]) -> bool:
    return bool(communities) and all(scope.covers(c) for c in communities)


async def _require_communities(
    session: AsyncSession, scope: Scope, community_ids: Sequence[int]
) -> list[Region]:
    found = await repository.regions(session, community_ids)
    missing = sorted(set(community_ids) - {r.id for r in found})
    if missing:
        raise ValidationFailed(
            "unknown_region",
            extra={"region_ids": [str(m) for m in missing]},
            region_ids=", ".join(map(str, missing)),
        )
    if any(region.kind != RegionKind.community.value for region in found):
        raise ValidationFailed("not_a_community")
    if not _manages(scope, found):
        # A street or district organizer pools across the communities they cover.
        raise Forbidden(reason="out_of_scope")
    return sorted(found, key=lambda r: r.id)


def _check_window(
    starts_at: datetime | None,
    ends_at: datetime | None,
    now: datetime,
    *,
    new_start: bool = True,
) -> None:
    """``new_start``: ``starts_at`` is being set now (an edit leaving it as it was is not
    refused for it)."""
    if ends_at is not None and ends_at <= now:
        raise ValidationFailed("invalid_event_window")
    if new_start and starts_at is not None and starts_at < now - START_SKEW:
        raise ValidationFailed("invalid_event_window")
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise ValidationFailed("invalid_event_window")
    if (starts_at or now) > now + MAX_WINDOW or (
        ends_at is not None and ends_at > now + 2 * MAX_WINDOW
    ):
        raise ValidationFailed("invalid_event_window")


async def _views(
    session: AsyncSession, actor: Actor | None, events: Sequence[ClaimEvent]
) -> list[EventView]:
    ids = [e.id for e in events]
    communities = await repository.communities_of(session, ids)
    pooled = await repository.pool_counts(session, ids)
    claimed = await repository.claimed_slots(session, ids)
    scope = await scope_of(session, actor) if actor else None
    views = []
    for event in events:
        view = EventView(
            event=event,
            communities=communities.get(event.id, []),
            wishes_pooled=pooled.get(event.id, (0, 0))[0],
            slots_pooled=pooled.get(event.id, (0, 0))[1],
            slots_claimed=claimed.get(event.id, (0, 0))[0],
            members=claimed.get(event.id, (0, 0))[1],
        )
        view.may_manage = scope is not None and _manages(scope, view.communities)
        views.append(view)
    return views


async def _visible_event(
    session: AsyncSession, actor: Actor, event_id: int, *, lock: bool = False
) -> tuple[ClaimEvent, Scope, list[Region]]:
    """The event, if the actor may see it: drafts only to organizers covering one of its
    communities; scheduled, live and closed events to every signed-in user."""
    event = await repository.get(session, event_id, lock=lock)
    if event is None:
        raise NotFound(resource="claim_event")
    scope = await scope_of(session, actor)
    communities = (await repository.communities_of(session, [event.id]))[event.id]
    if event.status == EventStatus.draft.value and not any(scope.covers(c) for c in communities):
        raise NotFound(resource="claim_event")
    return event, scope, communities


async def _managed_event(
    session: AsyncSession, actor: Actor, event_id: int
) -> tuple[ClaimEvent, list[Region]]:
    event, scope, communities = await _visible_event(session, actor, event_id, lock=True)
    if not _manages(scope, communities):
        raise Forbidden(reason="out_of_scope")
    return event, communities


async def create_event(
    session: AsyncSession,
    actor: Actor,
    *,
    title: str,
    community_ids: Sequence[int],
    mode: EventMode,
    starts_at: datetime | None,
    ends_at: datetime | None,
    per_member_quota: int,
    wish_ids: Sequence[int] = (),
) -> EventView:
    now = utcnow()
    scope = await scope_of(session, actor)
    if not scope.is_organizer and not scope.is_admin:
        raise Forbidden(reason="organizer_required")
    communities = await _require_communities(session, scope, community_ids)
    _check_window(starts_at, ends_at, now)
    event = ClaimEvent(
        organizer_id=actor.user_id,
        title=title,
        mode=mode.value,
        # A time to open is what makes a draft a scheduled event.
        status=(EventStatus.scheduled if starts_at else EventStatus.draft).value,
        starts_at=starts_at,
        ends_at=ends_at,
        per_member_quota=per_member_quota,
        board_token=secrets.token_urlsafe(24),
        created_at=now,
        updated_at=now,
    )
    session.add(event)
    await session.flush()
    await repository.set_communities(session, event.id, [c.id for c in communities])
    if wish_ids:
        await _select(session, event, communities, wish_ids, now)
    return (await _views(session, actor, [event]))[0]


def event_etag(view: EventView) -> str:
    """The detail shows tallies that change without the event row changing: the tag digests
    them along with the row's version and what this viewer is shown."""
    return content_etag(
        "claim-event",
        view.event.id,
        view.event.version,
        view.wishes_pooled,
        view.slots_pooled,
        view.slots_claimed,
        view.members,
        view.my_claims,
        tuple(view.my_preferences),
        view.may_manage,
    )


async def update_event(
    session: AsyncSession,
    actor: Actor,
    *,
    event_id: int,
    changes: dict[str, object],
    if_match: list[str],
) -> EventView:
    """Change a draft or scheduled event; setting ``starts_at`` schedules a draft, clearing
    it makes a scheduled event a draft again. ``if_match``: the ETag read."""
    now = utcnow()
    # The row is locked before the tag is compared, so of two edits made from one version
    # the second waits, then finds the version moved on (412).
    event, communities = await _managed_event(session, actor, event_id)
    check_if_match(if_match, event_etag(await get_event(session, actor, event_id=event_id)))
    if event.status not in (EventStatus.draft.value, EventStatus.scheduled.value):
        raise InvalidState(resource="claim_event", current_state=event.status, action="update")
    nulls = [
        name
        for name in ("title", "community_ids", "per_member_quota")
        if name in changes and changes[name] is None
    ]
    if nulls:
        raise ValidationFailed("field_not_nullable", fields=", ".join(nulls))
    if "community_ids" in changes:
        scope = await scope_of(session, actor)
        ids = changes.pop("community_ids")
        assert isinstance(ids, list)
        communities = await _require_communities(session, scope, ids)
        await repository.set_communities(session, event.id, [c.id for c in communities])
    for name, value in changes.items():
        setattr(event, name, value)
    _check_window(event.starts_at, event.ends_at, now, new_start="starts_at" in changes)
    event.status = (EventStatus.scheduled if event.starts_at else EventStatus.draft).value
    event.updated_at = now
    event.version += 1
    await session.flush()
    return (await _views(session, actor, [event]))[0]


async def require_board_token(session: AsyncSession, *, event_id: int, token: str | None) -> None:
    """The live board's read-only access: the event's own token (compared in constant
    time); anything else is an unknown event. Without a token only the event's existence
    is checked (the board page then asks its viewer to sign in through the feed)."""
    event = await repository.get(session, event_id)
    if event is None or (
        token is not None and not hmac.compare_digest(event.board_token.encode(), token.encode())
    ):
        raise NotFound(resource="claim_event")


async def get_event(session: AsyncSession, actor: Actor, *, event_id: int) -> EventView:
    event, _, _ = await _visible_event(session, actor, event_id)
    view = (await _views(session, actor, [event]))[0]
    participant = await repository.participant(session, event.id, actor.user_id)
    view.my_claims = participant.claims if participant else None
    if event.mode == EventMode.allocate.value:
        view.my_preferences = [
            p.wish_id for p in await repository.preferences_of(session, event.id, actor.user_id)
        ]
    return view


async def list_events(
    session: AsyncSession,
    actor: Actor,
    *,
    statuses: list[str] | None,
    after_id: int | None,
    limit: int,
) -> list[EventView]:
    scope = await scope_of(session, actor)
    events = await repository.list_events(
        session,
        statuses=statuses,
        include_drafts_of=[(g.kind, g.region_id) for g in scope.grants],
        all_drafts=scope.is_admin,
        after_id=after_id,
        limit=limit,
    )
    return await _views(session, actor, events)


async def _select(
    session: AsyncSession,
    event: ClaimEvent,
    communities: Sequence[Region],
    wish_ids: Sequence[int],
    now: datetime,
) -> None:
    wishes = await _event_wishes(session, communities, wish_ids)
    await repository.select_wishes(session, event.id, wishes, now)


async def _event_wishes(
    session: AsyncSession, communities: Sequence[Region], wish_ids: Sequence[int]
) -> list[Wish]:
    wishes = await repository.wishes_by_id(session, wish_ids)
    community_ids = {c.id for c in communities}
    wrong = sorted(
        set(wish_ids) - {w.id for w in wishes.values() if w.community_id in community_ids}
    )
    if wrong:
        # Only wishes of the event's own communities: its report is per community.
        raise ValidationFailed(
            "wishes_not_in_event_communities",
            extra={"wish_ids": [str(w) for w in wrong]},
            wish_ids=", ".join(map(str, wrong)),
        )
    return list(wishes.values())


async def add_wishes(
    session: AsyncSession, actor: Actor, *, event_id: int, wish_ids: Sequence[int]
) -> EventView:
    event, communities = await _managed_event(session, actor, event_id)
    if event.status not in (EventStatus.draft.value, EventStatus.scheduled.value):
        raise InvalidState(resource="claim_event", current_state=event.status, action="add_wishes")
    wishes = await _event_wishes(session, communities, wish_ids)
    adding_back = await pool_mode(session, event) == PoolMode.communities and set(
        wish_ids
    ) == await repository.left_out_among(session, event.id, wish_ids)
    if adding_back:
        # Wishes left out of the communities' pool go back into it; choosing them instead
        # would shrink the pool to just these.
        await repository.let_back_in(session, event.id, wish_ids)
    else:
        await repository.select_wishes(session, event.id, wishes, utcnow())
    return (await _views(session, actor, [event]))[0]


async def pool_mode(session: AsyncSession, event: ClaimEvent) -> PoolMode | None:
    """What the event pools at opening (None once opened: its entries then say what it
    pooled)."""
    if event.status not in (EventStatus.draft.value, EventStatus.scheduled.value):
        return None
    chosen = await repository.has_chosen(session, event.id)
    return PoolMode.chosen if chosen else PoolMode.communities


async def remove_wish(
    session: AsyncSession, actor: Actor, *, event_id: int, wish_id: int
) -> EventView:
    event, communities = await _managed_event(session, actor, event_id)
    if event.status not in (EventStatus.draft.value, EventStatus.scheduled.value):
        raise InvalidState(
            resource="claim_event", current_state=event.status, action="remove_wishes"
        )
    if await repository.remove_wish(session, event.id, wish_id):
        return (await _views(session, actor, [event]))[0]
    # An event that chose no wishes pools every open wish of its communities: one of those
    # can be kept out too.
    wish = (await repository.wishes_by_id(session, [wish_id])).get(wish_id)
    if (
        wish is None
        or wish.community_id not in {c.id for c in communities}
        or await repository.has_chosen(session, event.id)
        or not await repository.leave_out(session, event.id, wish)
    ):
        raise NotFound(resource="wish")
    return (await _views(session, actor, [event]))[0]


async def pool_page(
    session: AsyncSession, actor: Actor, *, event_id: int, after_id: int | None, limit: int
) -> tuple[PoolMode | None, Sequence[tuple[object, Wish]]]:
    """The event's pool mode (``pool_mode``) and the wishes chosen, pooled or taken out;
    before opening, an event that pools its communities shows the wishes it would pool
    now."""
    event, scope, communities = await _visible_event(session, actor, event_id)
    # Organizers may choose or leave out a wish still under review; nobody else learns of it.
    published_only = not _manages(scope, communities)
    mode = await pool_mode(session, event)
    if mode == PoolMode.communities:
        return mode, await repository.default_pool_page(
            session,
            event.id,
            [c.id for c in communities],
            utcnow(),
            after_id=after_id,
            limit=limit,
            published_only=published_only,
        )
    return mode, await repository.pool_page(
        session, event_id, after_id=after_id, limit=limit, published_only=published_only
    )


# session.info key: events whose live feeds should wake once this transaction commits.
CHANGED_EVENTS = "microwish.changed_events"


async def notify(session: AsyncSession, event_id: int) -> None:
    """Wake the event's live feeds after this transaction commits (app.events.live sends
    one coalesced NOTIFY per event to every server process; a NOTIFY inside each claim's
    transaction would serialize the commits of a rush on PostgreSQL's notify queue lock)."""
    changed: set[int] = session.info.setdefault(CHANGED_EVENTS, set())
    changed.add(event_id)


async def _open(session: AsyncSession, event: ClaimEvent, now: datetime, by: int | None) -> None:
    communities = await repository.community_ids(session, event.id)
    event.status = EventStatus.live.value
    event.opened_at = now
    event.opened_by = by
    if event.starts_at is None or event.starts_at > now:
        event.starts_at = now
    event.updated_at = now
    event.version += 1
    await session.flush()
    pooled = await repository.pool(session, event.id, communities, now)
    logger.info("claim event %s opened with %s wishes pooled", event.id, pooled)
    await notify(session, event.id)


async def _close(
    session: AsyncSession, event: ClaimEvent, at: datetime | None, by: int | None
) -> None:
    """Close at ``at`` (the clock's close records ``ends_at``, however late it runs: no
    claim got in after it), or now: read once the pool is locked, after every claim the
    close waited for, so no event claim is dated after the close."""
    was_live = event.status == EventStatus.live.value
    # Every claim transaction locks wishes (in id order) before members: the pool first,
    # so the allocation's claims never hold a member while waiting for a wish.
    await repository.lock_pool(session, event.id)
    if was_live and event.mode == EventMode.allocate.value:
        await _run_allocation(session, event)
        at = None  # its claims are made now: the event closes with them
    now = at or utcnow()
    returned = await repository.return_home(session, event.id, now)
    event.status = EventStatus.closed.value
    event.closed_at = now
    event.closed_by = by
    event.updated_at = now
    event.version += 1
    await session.flush()
    logger.info("claim event %s closed; %s wishes returned home", event.id, returned)
    await notify(session, event.id)


async def open_event(session: AsyncSession, actor: Actor, *, event_id: int) -> EventView:
    """Open now, ahead of ``starts_at`` (from draft or scheduled)."""
    event, _ = await _managed_event(session, actor, event_id)
    if event.status not in (EventStatus.draft.value, EventStatus.scheduled.value):
        raise InvalidState(resource="claim_event", current_state=event.status, action="open_event")
    now = utcnow()
    if event.ends_at is not None and event.ends_at <= now:
        raise ValidationFailed("invalid_event_window")
    await _open(session, event, now, actor.user_id)
    return (await _views(session, actor, [event]))[0]


async def close_event(session: AsyncSession, actor: Actor, *, event_id: int) -> EventView:
    """Close now: a live event returns its wishes home (allocating first in allocate mode);
    a draft or scheduled one is called off."""
    event, _ = await _managed_event(session, actor, event_id)
    if event.status == EventStatus.closed.value:
        raise InvalidState(resource="claim_event", current_state=event.status, action="close")
    await _close(session, event, None, actor.user_id)
    return (await _views(session, actor, [event]))[0]


async def advance(session: AsyncSession, event_id: int, now: datetime) -> str | None:
    """Open or close one event if its time has come (idempotent); its status after (None:
    no such event)."""
    event = await repository.get(session, event_id, lock=True)
    if event is None:
        return None
    if (
        event.status == EventStatus.scheduled.value
        and event.starts_at is not None
        and event.starts_at <= now
    ):
        if event.ends_at is not None and event.ends_at <= now:
            # Caught up after a downtime longer than the whole window: open and close, so the
            # event still has its pool and report, and nothing stays pooled.
            await _open(session, event, event.starts_at, None)
        else:
            await _open(session, event, now, None)
    if (
        event.status == EventStatus.live.value
        and event.ends_at is not None
        and event.ends_at <= now
    ):
        # Closed at its end, however late the clock came (after a downtime, say): nothing
        # was claimed in it after ends_at (the claim statement checks it), so the record
        # and the report say when it really ended (an allocate event: when its allocation
        # is made, since its claims are made then).
        await _close(session, event, event.ends_at, None)
    return event.status


# Events this process failed to open or close: (failures so far, monotonic time of the
# next try). A failure is a bug, not load: the clock retries it with backoff instead of
# logging it (and taking SQLite's write lock for it) every second.
_failing: dict[int, tuple[int, float]] = {}
RETRY_MAX_SECONDS = 300.0


def _may_try(event_id: int) -> bool:
    failing = _failing.get(event_id)
    return failing is None or failing[1] <= time.monotonic()


async def advance_due(session: AsyncSession) -> int:
    """The clock's job: open and close every event whose time has come."""
    now = utcnow()
    due = [d for d in await repository.due_events(session, now) if _may_try(d[0])]
    for event_id, _ in due:
        # One event that cannot be advanced (a bug) must not stop the clock for the others.
        try:
            async with session.begin_nested():
                await advance(session, event_id, now)
        except Exception:
            _failed(event_id)
        else:
            _failing.pop(event_id, None)
    return len(due)


def _failed(event_id: int) -> None:
    """Log a failure to open or close an event, and put off the next try."""
    failures = _failing.get(event_id, (0, 0.0))[0] + 1
    wait = min(2.0**failures, RETRY_MAX_SECONDS)
    _failing[event_id] = (failures, time.monotonic() + wait)
    logger.exception(
        "claim event %s could not be opened or closed (failure %s; next try in %.0f s)",
        event_id,
        failures,
        wait,
    )


async def catch_up(database: Database, event_id: int) -> str | None:
    """Before serving an event: if the clock has not yet opened or closed it on time, do it
    now, in its own write transaction (a read-only check otherwise). Returns the event's
    status then (None: no such event)."""
    now = utcnow()
    async with database.transaction(write=False) as session:
        event = await session.get(ClaimEvent, event_id)
        if event is None:
            return None
        status = event.status
        due = (
            event.status == EventStatus.scheduled.value
            and event.starts_at is not None
            and event.starts_at <= now
        ) or (
            event.status == EventStatus.live.value
            and event.ends_at is not None
            and event.ends_at <= now
        )
    if due and _may_try(event_id):
        try:
            async with database.transaction(write=True) as session:
                status = await advance(session, event_id, now) or status
        except (OperationalError, InterfaceError):
            raise  # the database cannot serve: the request says so (503)
        except Exception:
            # A bug in opening or closing this event: the request is served with the event
            # as it stands (the clock retries with backoff), never failed for it.
            _failed(event_id)
        else:
            _failing.pop(event_id, None)
    return status


async def catch_up_all(database: Database) -> int:
    """The event clock's tick: a cheap read; a write transaction only when something is due."""
    now = utcnow()
    async with database.transaction(write=False) as session:
        due = [d for d in await repository.due_events(session, now) if _may_try(d[0])]
    if not due:
        return 0
    async with database.transaction(write=True) as session:
        return await advance_due(session)


async def rush_claim(
    session: AsyncSession, actor: Actor, *, event_id: int, wish_id: int, slots: int
) -> Claim:
    """First come, first served: the same race-free claim statement as a direct claim, on a
    wish pooled in this live rush event, from any community, within the member's quota."""

    async def explain_event() -> None:
        event = await repository.get(session, event_id)
        if event is None:
            raise NotFound(resource="claim_event")
        if event.status == EventStatus.draft.value:
            scope = await scope_of(session, actor)
            communities = (await repository.communities_of(session, [event.id]))[event.id]
            if not any(scope.covers(c) for c in communities):
                raise NotFound(resource="claim_event")
        now = utcnow()
        if (
            event.status == EventStatus.live.value
            and event.ends_at is not None
            and event.ends_at <= now
        ):
            raise InvalidState(resource="claim_event", current_state="closed", action="claim")
        if event.status != EventStatus.live.value:
            raise InvalidState(resource="claim_event", current_state=event.status, action="claim")
        if event.mode != EventMode.rush.value:
            raise Conflict("wrong_event_mode", extra={"mode": event.mode}, mode=event.mode)

    claim = await claims_service.claim_wish(
        session,
        actor,
        wish_id=wish_id,
        slots=slots,
        source=ClaimSource.event,
        kind=EventClaim.rush,
        event_id=event_id,
        explain_event=explain_event,
        alone=True,  # the request's one write (notify only marks the session)
    )
    await notify(session, event_id)
    return claim


async def set_preferences(
    session: AsyncSession, actor: Actor, *, event_id: int, wish_ids: Sequence[int]
) -> list[int]:
    if len(wish_ids) > MAX_PREFERENCES:
        raise ValidationFailed("too_many_preferences", limit=MAX_PREFERENCES)
    if len(set(wish_ids)) != len(wish_ids):
        raise ValidationFailed("duplicate_preferences")
    # Held against a close (which allocates from the preferences it reads); two rankings
    # sent at once by one member replace each other in turn.
    await repository.hold_open(session, event_id)
    await repository.hold_ranking(session, event_id, actor.user_id)
    event, _, _ = await _visible_event(session, actor, event_id)
    if event.mode != EventMode.allocate.value:
        raise Conflict("wrong_event_mode", extra={"mode": event.mode}, mode=event.mode)
    now = utcnow()
    if event.status != EventStatus.live.value or (
        event.ends_at is not None and event.ends_at <= now
    ):
        state = event.status if event.status != EventStatus.live.value else "closed"
        raise InvalidState(resource="claim_event", current_state=state, action="rank")
    await claims_service.require_active_member(session, actor)
    pooled = {
        e.wish_id
        for e in await repository.pool_entries(session, event.id, [PoolState.pooled.value])
    }
    wrong = [w for w in wish_ids if w not in pooled]
    if wrong:
        # A state conflict, as from the rush claim: well-formed ids not in this pool (now).
        raise Conflict(
            "not_in_event",
            extra={"wish_ids": [str(w) for w in wrong]},
        )
    wishes = await repository.wishes_by_id(session, wish_ids)
    if any(actor.user_id in (w.resident_id, w.creator_id) for w in wishes.values()):
        raise Conflict("own_wish")
    held = sorted(w for _, w in await repository.held_pairs(session, wish_ids, [actor.user_id]))
    if held:
        # Claimed before the event: the member has it already.
        raise Conflict("already_claimed", extra={"wish_ids": [str(w) for w in held]})
    await repository.replace_preferences(session, event.id, actor.user_id, wish_ids, now)
    return list(wish_ids)


async def get_preferences(session: AsyncSession, actor: Actor, *, event_id: int) -> list[int]:
    event, _, _ = await _visible_event(session, actor, event_id)
    rows: list[ClaimEventPreference] = await repository.preferences_of(
        session, event.id, actor.user_id
    )
    return [p.wish_id for p in rows]


async def _allocation_inputs(session: AsyncSession, event: ClaimEvent) -> AllocationInputs:
    """What the allocation may hand out: the pool's wishes still open with free slots (not
    one cancelled or expired meanwhile), and the rankings except for wishes a member already
    holds (a claim from before the event): such a pair could not become a claim, and
    assigning it would waste the slot and the member's turn."""
    pooled = await repository.pooled_wishes(session, event.id)
    wishes = [
        (wish.id, wish.slots_total - wish.slots_claimed)
        for _, wish in pooled
        if wish.event_id == event.id
        and wish.status == WishStatus.open.value
        and wish.slots_claimed < wish.slots_total
    ]
    ranked = await repository.all_preferences(session, event.id)
    held = await repository.held_pairs(session, [w for w, _ in wishes], [m for m, _, _ in ranked])
    preferences = [(m, w, rank) for m, w, rank in ranked if (m, w) not in held]
    members = await repository.member_limits(
        session, event.id, [m for m, _, _ in preferences], event.per_member_quota
    )
    return make_inputs(
        seed=secrets.token_hex(16), wishes=wishes, members=members, preferences=preferences
    )


async def _run_allocation(session: AsyncSession, event: ClaimEvent) -> None:
    """At close: the optimal assignment of the members' ranked wishes, each pair made a
    claim through the claim statement in its own savepoint (a pair whose wish or member
    changed meanwhile is skipped with its reason). Inputs, seed and result are stored."""
    inputs = await _allocation_inputs(session, event)
    result = allocate(inputs)
    outcomes: dict[int, dict[str, str | None]] = {}
    # Members are locked one by one in id order, as every claim transaction locks them.
    for index, pair in sorted(
        enumerate(result.pairs), key=lambda item: (item[1].member_id, item[1].wish_id)
    ):
        actor = Actor(user_id=pair.member_id)
        try:
            async with session.begin_nested():
                claim = await claims_service.claim_wish(
                    session,
                    actor,
                    wish_id=pair.wish_id,
                    slots=1,
                    source=ClaimSource.event,
                    kind=EventClaim.allocation,
                    event_id=event.id,
                )
            outcomes[index] = {"claim_id": str(claim.id), "skipped": None}
        except (Conflict, Forbidden, NotFound) as refusal:
            outcomes[index] = {"claim_id": None, "skipped": refusal.code}
        except IntegrityError:
            outcomes[index] = {"claim_id": None, "skipped": "already_claimed"}
    recorded = result.to_json()
    for index, pair in enumerate(recorded["pairs"]):
        pair.update(outcomes[index])
    event.allocation = {"inputs": inputs.to_json(), "result": recorded}
    await _tell_allocation(session, event, inputs, recorded["pairs"])


async def _tell_allocation(
    session: AsyncSession,
    event: ClaimEvent,
    inputs: AllocationInputs,
    pairs: Sequence[dict[str, Any]],
) -> None:
    """Every member who ranked wishes learns what they were given (claims made), or that
    they were given nothing."""
    given: dict[int, list[dict[str, Any]]] = {
        member_id: [] for member_id, _, _ in inputs.preferences
    }
    made = [p for p in pairs if p.get("claim_id")]
    titles = {
        wish.id: wish.title
        for wish in (
            await repository.wishes_by_id(session, sorted({int(p["wish_id"]) for p in made}))
        ).values()
    }
    for pair in made:
        given.setdefault(int(pair["member_id"]), []).append(
            {
                "wish_id": pair["wish_id"],
                "wish_title": titles.get(int(pair["wish_id"]), ""),
                "claim_id": pair["claim_id"],
            }
        )
    await notifications.notify_each(
        session,
        kind=NotificationKind.allocation_result,
        rows=[
            (
                member_id,
                {"event_id": str(event.id), "event_title": event.title, "wishes": wishes},
            )
            for member_id, wishes in sorted(given.items())
        ],
    )


async def allocation(session: AsyncSession, actor: Actor, *, event_id: int) -> dict[str, object]:
    """The stored allocation and a recomputation from its stored inputs: anyone may check
    that the published result is the optimum of those inputs."""
    event, _, _ = await _visible_event(session, actor, event_id)
    if event.mode != EventMode.allocate.value:
        raise Conflict("wrong_event_mode", extra={"mode": event.mode}, mode=event.mode)
    if event.allocation is None:
        raise InvalidState(resource="claim_event", current_state=event.status, action="allocate")
    stored = event.allocation
    recomputed = allocate(AllocationInputs.from_json(stored["inputs"])).to_json()
    stored_pairs = [
        {k: p[k] for k in ("wish_id", "member_id", "rank")} for p in stored["result"]["pairs"]
    ]
    return {
        "event_id": str(event.id),
        "inputs": stored["inputs"],
        "result": stored["result"],
        "recomputed": recomputed,
        "identical": recomputed["pairs"] == stored_pairs,
    }


@dataclass
class Tally:
    community_id: int
    name: str
    wishes_pooled: int = 0
    slots_pooled: int = 0
    slots_claimed: int = 0
    slots_fulfilled: int = 0
    wishes_filled: int = 0
    members: set[int] = field(default_factory=set)
    fill_seconds: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        filled_all = self.wishes_pooled > 0 and self.wishes_filled == self.wishes_pooled
        ordered = sorted(self.fill_seconds)
        median = None
        if ordered:
            middle = len(ordered) // 2
            median = (
                ordered[middle]
                if len(ordered) % 2
                else round((ordered[middle - 1] + ordered[middle]) / 2, 3)
            )
        return {
            "community_id": self.community_id,
            "name": self.name,
            "wishes_pooled": self.wishes_pooled,
            "slots_pooled": self.slots_pooled,
            "slots_claimed": self.slots_claimed,
            "slots_fulfilled": self.slots_fulfilled,
            "wishes_filled": self.wishes_filled,
            "members": len(self.members),
            "time_to_fill_seconds": max(ordered) if filled_all else None,
            "median_wish_fill_seconds": median,
        }


class PoolEntryFields(Protocol):
    """What a summary reads of a pool entry: a ``ClaimEventWish``, or the feed's row."""

    @property
    def community_id(self) -> int: ...
    @property
    def slots_free_at_open(self) -> int | None: ...


class PooledWishFields(Protocol):
    """What a summary, the report and the board read of a pooled wish."""

    @property
    def id(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def community_id(self) -> int | None: ...
    @property
    def slots_total(self) -> int: ...
    @property
    def slots_claimed(self) -> int: ...
    @property
    def status(self) -> str: ...


class EventClaimFields(Protocol):
    """What a summary and the board read of a claim."""

    @property
    def id(self) -> int: ...
    @property
    def wish_id(self) -> int: ...
    @property
    def member_id(self) -> int: ...
    @property
    def slots(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def ended_at(self) -> datetime | None: ...


def counts_in_event(claim: EventClaimFields, closed_at: datetime | None) -> bool:
    """Whether an event claim counts in the event's numbers: while it is open, if live now;
    once closed, if live at the close, so that the ceremony's numbers stay what they were
    (a claim withdrawn, released or revoked since still counts; one fulfilled since counts
    as fulfilled)."""
    if claim.status in repository.LIVE_CLAIM:
        return True
    return closed_at is not None and claim.ended_at is not None and claim.ended_at > closed_at


@dataclass
class EventSummary:
    """Per-community tallies of an event's pool, from its pooled wishes and its claims:
    what the report, the board and the live feed show."""

    event: ClaimEvent
    tallies: list[Tally]
    totals: Tally
    # (wish, slots claimed in event, free at open)
    wishes: list[tuple[PooledWishFields, int, int | None]]
    claims: Sequence[tuple[EventClaimFields, str]]
    # (wish, free at open, claimed in event)
    unclaimed: list[tuple[PooledWishFields, int, int]]


async def summarise(session: AsyncSession, event: ClaimEvent) -> EventSummary:
    communities = (await repository.communities_of(session, [event.id]))[event.id]
    pooled, claims = await repository.summary_rows(session, event.id)
    return summary_of(event, communities, pooled, claims)


def slots_offered(free_at_open: int | None, claimed_in_event: int) -> int:
    """The slots an event offered of a pooled wish: those free at opening, grown by any a
    claim from before the event gave back during it that were then claimed in it (so an
    event never shows more claimed than pooled)."""
    return max(free_at_open or 0, claimed_in_event)


def summary_of(
    event: ClaimEvent,
    communities: Sequence[Region],
    pooled: Sequence[tuple[PoolEntryFields, PooledWishFields]],
    claims: Sequence[tuple[EventClaimFields, str]],
) -> EventSummary:
    """The summary of the event from its communities, its pool entries with their wishes
    (in wish id order) and its claims with the claimers' names (in id order). Pure: the live
    feed keeps these rows up to date itself and summarises its copy."""
    tallies = {c.id: Tally(community_id=c.id, name=c.name) for c in communities}
    totals = Tally(community_id=0, name="合计")
    live_claims = [(c, n) for c, n in claims if counts_in_event(c, event.closed_at)]
    by_wish: dict[int, list[EventClaimFields]] = {}
    for claim, _ in live_claims:
        by_wish.setdefault(claim.wish_id, []).append(claim)
    wishes: list[tuple[PooledWishFields, int, int | None]] = []
    unclaimed: list[tuple[PooledWishFields, int, int]] = []
    for entry, wish in pooled:
        tally = tallies.get(entry.community_id)
        if tally is None:  # a community removed from the event after pooling: still counted
            tally = tallies[entry.community_id] = Tally(entry.community_id, str(entry.community_id))
        own = by_wish.get(wish.id, [])
        claimed = sum(c.slots for c in own)
        free = slots_offered(entry.slots_free_at_open, claimed)
        wishes.append((wish, claimed, entry.slots_free_at_open))
        for target in (tally, totals):
            target.wishes_pooled += 1
            target.slots_pooled += free
            target.slots_claimed += claimed
            target.slots_fulfilled += sum(c.slots for c in own if c.status == "fulfilled")
            target.members.update(c.member_id for c in own)
        if claimed >= free and own and event.opened_at is not None:
            seconds = max(
                0.0, round((max(c.created_at for c in own) - event.opened_at).total_seconds(), 3)
            )
            for target in (tally, totals):
                target.wishes_filled += 1
                target.fill_seconds.append(seconds)
        elif claimed < free:
            unclaimed.append((wish, free, claimed))
    return EventSummary(
        event=event,
        tallies=sorted(tallies.values(), key=lambda t: t.community_id),
        totals=totals,
        wishes=wishes,
        claims=claims,
        unclaimed=unclaimed,
    )


async def report(session: AsyncSession, actor: Actor, *, event_id: int) -> EventSummary:
    event, _, _ = await _visible_event(session, actor, event_id)
    return await summarise(session, event)
