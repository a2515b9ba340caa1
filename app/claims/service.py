"""Claiming, withdrawing, fulfilling and revoking. The invariants are enforced by the
statements in ``repository``; this module orders them and explains refusals."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.claims import deadlines, repository
from app.claims.models import Claim, ClaimSource, ClaimStatus
from app.claims.repository import EventClaim
from app.core.actor import Actor
from app.core.db import Database, utcnow
from app.core.errors import Conflict, Forbidden, InvalidState, NotFound
from app.core.types import rfc3339
from app.events.models import ClaimEvent
from app.members import repository as members_repository
from app.members.models import MemberStatus
from app.notifications import service as notifications
from app.notifications.models import NotificationKind
from app.regions.access import scope_of
from app.wishes import repository as wishes_repository
from app.wishes import service as wishes_service
from app.wishes.models import LIVE_STATUSES, Wish, WishStatus
from app.wishes.service import is_owner, may_see

logger = logging.getLogger("microwish.claims")

# Claims released, and reminders sent, per clock tick (one transaction each): a backlog,
# e.g. after downtime, is worked off over a few ticks instead of in one long transaction.
RELEASE_BATCH = 100
REMINDER_BATCH = 200


async def claim_wish(
    session: AsyncSession,
    actor: Actor,
    *,
    wish_id: int,
    slots: int,
    district_wide: bool = False,
    source: ClaimSource = ClaimSource.direct,
    kind: EventClaim = EventClaim.direct,
    event_id: int | None = None,
    explain_event: Callable[[], Awaitable[None]] | None = None,
    alone: bool = False,
) -> Claim:
    """The hot path: conditional statements that each take what they need or change
    nothing (one round trip on PostgreSQL); any refusal is explained and rolls the whole
    transaction back. Event claims (``kind`` rush or allocation) take the wish only if it is
    pooled in ``event_id`` and count against the member's quota there; ``explain_event``
    raises the event's own reason for a refusal (not live, wrong mode), if it has one.
    ``alone``: the claim is everything the caller's transaction writes (a claim request),
    so on PostgreSQL it may be a transaction of its own (see ``repository.attempt_claim``)."""
    now = utcnow()
    try:
        attempt = await repository.attempt_claim(
            session,
            wish_id=wish_id,
            member_id=actor.user_id,
            slots=slots,
            source=source.value,
            now=now,
            anywhere=district_wide,
            periods=deadlines.policy_of(session.info).periods(now),
            kind=kind,
            event_id=event_id,
            alone=alone,
        )
    except IntegrityError as exc:  # the partial unique index on live (wish, member) claims
        raise Conflict("already_claimed") from exc
    if attempt.claim is not None:  # the wish's owner was told by the same statement(s)
        return attempt.claim
    seen = attempt.seen
    # Holding a live wish already is the answer whatever else stands in the way (it is
    # full, or the member is at capacity because of it); only an event that is not live
    # (or of the wrong mode) comes first, as it does on every other refusal.
    if seen is not None and seen.held and seen.status in LIVE_STATUSES:
        if explain_event is not None:
            await explain_event()
        raise Conflict("already_claimed")
    if (
        seen is None
        and attempt.wish_taken
        and await repository.live_claim_exists(session, wish_id=wish_id, member_id=actor.user_id)
    ):
        if explain_event is not None:
            await explain_event()
        raise Conflict("already_claimed")  # the wish took the slots: it is live
    if not attempt.wish_taken:
        if seen is not None and seen.full_for(actor.user_id, slots, event_id):
            # The statement saw it full: the usual loser of a rush, answered without reading.
            raise _wish_full(seen.slots_total - seen.slots_claimed)
        if explain_event is not None:
            await explain_event()
        await _explain_wish_refusal(
            session, actor, wish_id=wish_id, slots=slots, now=now, event_id=event_id
        )
    if not attempt.capacity_taken:
        wish = await wishes_repository.get(session, wish_id)
        assert wish is not None
        area_ids = (
            None
            if district_wide or kind is not EventClaim.direct
            else [
                level
                for level in (wish.district_id, wish.street_id, wish.community_id, wish.grid_id)
                if level is not None
            ]
        )
        await _explain_member_refusal(session, actor, area_ids=area_ids)
    assert event_id is not None, "only event claims have a quota"
    quota = await events_quota(session, event_id)
    raise Conflict("quota_reached", extra={"per_member_quota": quota}, quota=quota)


async def events_quota(session: AsyncSession, event_id: int) -> int:
    event = await session.get(ClaimEvent, event_id)
    return event.per_member_quota if event is not None else 0


async def _explain_wish_refusal(
    session: AsyncSession,
    actor: Actor,
    *,
    wish_id: int,
    slots: int,
    now: datetime,
    event_id: int | None,
) -> None:
    wish = await wishes_repository.get(session, wish_id)
    if wish is None:
        raise NotFound(resource="wish")
    if actor.user_id in (wish.resident_id, wish.creator_id):
        raise Conflict("own_wish")
    if wish.status in LIVE_STATUSES and await repository.live_claim_exists(
        session, wish_id=wish.id, member_id=actor.user_id
    ):
        raise Conflict("already_claimed")
    if wish.status in LIVE_STATUSES and wish.event_id != event_id:
        if event_id is None:
            # Pooled in a live claim event: claimable only through it.
            raise Conflict(
                "in_event", extra={"event_id": str(wish.event_id)}, event_id=wish.event_id
            )
        raise Conflict("not_in_event")
    if wish.status == WishStatus.claimed.value or (
        wish.status == WishStatus.open.value and wish.slots_claimed + slots > wish.slots_total
    ):
        raise _wish_full(wish.slots_total - wish.slots_claimed)
    if wish.status == WishStatus.open.value and wish.deadline is not None and wish.deadline <= now:
        # Past its deadline (the last moment to claim it); the clock settles it within a
        # second: expired if nothing was claimed.
        state = "expired" if wish.slots_claimed == 0 else wish.status
        raise Conflict("not_claimable", reason="deadline_passed", extra={"current_state": state})
    raise Conflict("not_claimable", extra={"current_state": wish.status}, current_state=wish.status)


def _wish_full(slots_remaining: int) -> Conflict:
    return Conflict(
        "wish_full", extra={"slots_remaining": slots_remaining}, slots_remaining=slots_remaining
    )


async def require_active_member(session: AsyncSession, actor: Actor) -> None:
    member = await members_repository.get(session, actor.user_id)
    if member is None:
        raise Forbidden("not_a_member")
    if member.status != MemberStatus.active.value:
        raise Forbidden("member_not_active", extra={"member_status": member.status})


async def _explain_member_refusal(
    session: AsyncSession, actor: Actor, *, area_ids: Sequence[int] | None
) -> None:
    member = await members_repository.get(session, actor.user_id)
    if member is None:
        raise Forbidden("not_a_member")
    if member.status != MemberStatus.active.value:
        raise Forbidden("member_not_active", extra={"member_status": member.status})
    if area_ids is not None and not await repository.member_has_area(
        session, member_id=actor.user_id, area_ids=area_ids
    ):
        raise Forbidden("out_of_area")
    raise Conflict(
        "capacity_reached",
        extra={"capacity": member.capacity, "active_claims": member.active_claims},
        capacity=member.capacity,
    )


async def _own_claim(session: AsyncSession, actor: Actor, claim_id: int) -> Claim:
    """The claimer's own claim; someone else's is 403 (an action on something that exists:
    reads of what one may not see are the 404s)."""
    claim = await repository.get(session, claim_id)
    if claim is None:
        raise NotFound(resource="claim")
    if claim.member_id != actor.user_id:
        raise Forbidden(reason="not_your_claim")
    return claim


async def _close_active_claim(
    session: AsyncSession, claim: Claim, *, action: str, values: dict[str, object]
) -> Claim:
    """Lock the wish, then move the claim out of ``active``; 409 if it already left."""
    await repository.lock_wish(session, claim.wish_id)
    closed = await repository.end_active_claim(session, claim_id=claim.id, values=values)
    if closed is None:
        current = await repository.get(session, claim.id)
        raise InvalidState(
            resource="claim", current_state=current.status if current else "gone", action=action
        )
    await repository.release_member_capacity(session, [closed.member_id])
    return closed


async def _end_claim(
    session: AsyncSession,
    claim: Claim,
    *,
    status: ClaimStatus,
    action: str,
    ended_by: int,
    reason: str | None,
) -> Claim:
    """Withdraw or revoke: the claim's slots return to the wish."""
    now = utcnow()
    ended = await _close_active_claim(
        session,
        claim,
        action=action,
        values={
            "status": status.value,
            "ended_at": now,
            "ended_by": ended_by,
            "end_reason": reason,
            "updated_at": now,
        },
    )
    if ended.event_id is not None:
        await repository.return_event_quota(
            session, event_id=ended.event_id, member_id=ended.member_id
        )
    await repository.give_back_slots(session, wish_id=ended.wish_id, slots=ended.slots, now=now)
    # Past the wish's deadline, what is left of it is settled now (expired when nothing is
    # claimed any more, fulfilled when the rest is), as the deadline clock would.
    await wishes_service.expire_overdue(session, now=now, wish_ids=[ended.wish_id])
    return ended


async def withdraw(session: AsyncSession, actor: Actor, *, claim_id: int) -> tuple[Claim, Wish]:
    claim = await _own_claim(session, actor, claim_id)
    ended = await _end_claim(
        session,
        claim,
        status=ClaimStatus.withdrawn,
        action="withdraw",
        ended_by=actor.user_id,
        reason=None,
    )
    return await _with_wish(session, ended)


async def revoke(
    session: AsyncSession, actor: Actor, *, claim_id: int, reason: str
) -> tuple[Claim, Wish]:
    claim = await repository.get(session, claim_id)
    if claim is None:
        raise NotFound(resource="claim")
    wish = await wishes_repository.get(session, claim.wish_id)
    if wish is None or not (await scope_of(session, actor)).covers(wish):
        raise Forbidden(reason="out_of_scope")
    revoked = await _end_claim(
        session,
        claim,
        status=ClaimStatus.revoked,
        action="revoke",
        ended_by=actor.user_id,
        reason=reason,
    )
    await notifications.notify(
        session,
        user_ids=[revoked.member_id],
        kind=NotificationKind.claim_revoked,
        data={
            "claim_id": str(revoked.id),
            "wish_id": str(wish.id),
            "wish_title": wish.title,
            "cause": "organizer",
            "reason": reason,
        },
    )
    return await _with_wish(session, revoked)


async def fulfil(
    session: AsyncSession, actor: Actor, *, claim_id: int, note: str
) -> tuple[Claim, Wish]:
    claim = await _own_claim(session, actor, claim_id)
    now = utcnow()
    done = await _close_active_claim(
        session,
        claim,
        action="fulfil",
        values={
            "status": ClaimStatus.fulfilled.value,
            "fulfilled_at": now,
            "fulfil_note": note,
            "updated_at": now,
        },
    )
    await repository.count_fulfilled_slots(session, wish_id=done.wish_id, slots=done.slots, now=now)
    # Past its deadline, a wish whose claims are all done now is fulfilled as far as it got,
    # and that notice (cause "deadline") is the one its owner gets; otherwise this one, with
    # wish_status "fulfilled" when this was the last slot: the resident may confirm now.
    if not await wishes_service.expire_overdue(session, now=now, wish_ids=[done.wish_id]):
        await notifications.notify_wish_owner(
            session,
            wish_id=done.wish_id,
            kind=NotificationKind.claim_fulfilled,
            data={"claim_id": str(done.id), "slots": done.slots},
        )
    return await _with_wish(session, done)


async def _with_wish(session: AsyncSession, claim: Claim) -> tuple[Claim, Wish]:
    """An action's claim with its wish as the action left it (the app shows both)."""
    wish = await wishes_repository.get(session, claim.wish_id)
    assert wish is not None, "a claim's wish is deleted with it"
    return claim, wish


async def get_claim(session: AsyncSession, actor: Actor, *, claim_id: int) -> tuple[Claim, Wish]:
    """The claimer, the wish's owner, and organizers in scope may read a claim."""
    claim = await repository.get(session, claim_id)
    wish = await wishes_repository.get(session, claim.wish_id) if claim else None
    if claim is None or wish is None:
        raise NotFound(resource="claim")
    is_party = claim.member_id == actor.user_id or is_owner(actor.user_id, wish)
    if not is_party and not (await scope_of(session, actor)).covers(wish):
        raise NotFound(resource="claim")
    return claim, wish


async def my_claims(
    session: AsyncSession,
    actor: Actor,
    *,
    statuses: list[str] | None,
    after_id: int | None,
    limit: int,
) -> Sequence[tuple[Claim, Wish]]:
    return await repository.list_for_member(
        session, member_id=actor.user_id, statuses=statuses, after_id=after_id, limit=limit
    )


async def claims_of_wish(
    session: AsyncSession, actor: Actor, *, wish_id: int, after_id: int | None, limit: int
) -> Sequence[tuple[Claim, str]]:
    """Who claimed a wish: for its owner, organizers in scope and its claimers."""
    wish = await wishes_repository.get(session, wish_id)
    if wish is None or not await may_see(session, actor, wish):
        raise NotFound(resource="wish")
    scope = await scope_of(session, actor)
    if not (
        is_owner(actor.user_id, wish)
        or scope.covers(wish)
        or await repository.live_claim_exists(session, wish_id=wish_id, member_id=actor.user_id)
    ):
        raise Forbidden()
    return await repository.list_for_wish(session, wish_id=wish_id, after_id=after_id, limit=limit)


# --- claim deadlines -----------------------------------------------------------------------


async def extend(session: AsyncSession, actor: Actor, *, claim_id: int) -> tuple[Claim, Wish]:
    """The claimer's one extension of an active claim's deadline: the category's period
    again."""
    claim = await _own_claim(session, actor, claim_id)
    # Lock order wish → claim; the claim is read again under the wish's lock.
    wish = await repository.lock_wish(session, claim.wish_id)
    current = await repository.get(session, claim_id)
    assert wish is not None, "a claim's wish is deleted with it"
    assert current is not None, "claims are never deleted on their own"
    now = utcnow()
    if current.status != ClaimStatus.active.value:
        raise InvalidState(resource="claim", current_state=current.status, action="extend")
    if current.extended_at is not None:
        raise Conflict("already_extended", extra={"deadline": _rfc3339(current.deadline)})
    if current.deadline is None:
        raise Conflict("no_deadline")
    if current.deadline <= now:
        # Past it, the release job is about to end it; too late to extend.
        raise InvalidState(resource="claim", current_state="overdue", action="extend")
    new_deadline = deadlines.policy_of(session.info).extended(
        current.deadline, category=wish.category
    )
    extended = await repository.extend_claim(
        session,
        claim_id=claim_id,
        member_id=actor.user_id,
        current_deadline=current.deadline,
        new_deadline=new_deadline,
        now=now,
    )
    if extended is None:  # only if something above changed meanwhile: the statement decides
        raise Conflict("already_extended")
    return await _with_wish(session, extended)


def _rfc3339(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment is not None else None


async def release_due(database: Database) -> int:
    """The deadline clock's tick: a cheap indexed read; a write transaction only when a
    claim is due."""
    now = utcnow()
    async with database.transaction(write=False) as session:
        if not await repository.overdue_claims(session, now=now, limit=1):
            return 0
    async with database.transaction(write=True) as session:
        return await release_overdue(session, now=now)


async def release_overdue(
    session: AsyncSession, *, now: datetime | None = None, batch: int = RELEASE_BATCH
) -> int:
    """Clock job: active claims past their deadline become ``released``, as a withdrawal
    would end them (slots back to the wish, a full wish reopens, the member's capacity and
    an event claim's quota return), up to ``batch`` per run; the claimer and the wish's
    resident are told. Locks are taken as every claim transaction takes them, wishes (in id
    order) → claims → members (in id order) → quotas; each claim is released only if it is
    still active and overdue, so servers running this at once never release one twice."""
    now = now or utcnow()
    due = await repository.overdue_claims(session, now=now, limit=batch)
    if not due:
        return 0
    wishes = await repository.lock_wishes(session, (wish_id for _, wish_id in due))
    released = await repository.release_overdue_claims(
        session, claim_ids=[claim_id for claim_id, _ in due], now=now
    )
    if not released:
        return 0
    await repository.release_member_capacity(session, [claim.member_id for claim in released])
    for member_id, event_id in sorted(
        (claim.member_id, claim.event_id) for claim in released if claim.event_id is not None
    ):
        await repository.return_event_quota(session, event_id=event_id, member_id=member_id)
    slots_back: dict[int, int] = {}
    for claim in released:
        slots_back[claim.wish_id] = slots_back.get(claim.wish_id, 0) + claim.slots
    for wish_id, slots in sorted(slots_back.items()):
        await repository.give_back_slots(session, wish_id=wish_id, slots=slots, now=now)

    told: list[tuple[int, dict[str, Any]]] = []
    for claim in released:
        wish = wishes[claim.wish_id]
        data = {
            "claim_id": str(claim.id),
            "wish_id": str(wish.id),
            "wish_title": wish.title,
            "slots": claim.slots,
            "deadline": _rfc3339(claim.deadline),
        }
        told.append((claim.member_id, data))
        # The resident; for a wish published for someone without the app, its publisher.
        owner = wish.resident_id if wish.resident_id is not None else wish.creator_id
        told.append((owner, {**data, "to": "owner"}))
    await notifications.notify_each(session, kind=NotificationKind.claim_released, rows=told)
    logger.info("released %d claims past their deadline", len(released))
    return len(released)


async def remind_before_deadlines(
    session: AsyncSession, *, now: datetime | None = None, batch: int = REMINDER_BATCH
) -> int:
    """Clock job: each active claim whose deadline is less than the reminder lead away
    (``MICROWISH_CLAIM_REMINDER_HOURS``) gets one reminder to its claimer, once per deadline
    (an extension earns another before the new one). Marked by a conditional UPDATE, so
    servers running this at once never send one twice."""
    now = now or utcnow()
    lead = deadlines.policy_of(session.info).reminder_lead
    reminded = await repository.mark_reminders_due(session, now=now, until=now + lead, limit=batch)
    if not reminded:
        return 0
    await notifications.notify_about_wishes(
        session,
        kind=NotificationKind.claim_deadline_soon,
        rows=[
            (
                claim.member_id,
                claim.wish_id,
                {"claim_id": str(claim.id), "deadline": _rfc3339(claim.deadline)},
            )
            for claim in reminded
        ],
    )
    return len(reminded)
