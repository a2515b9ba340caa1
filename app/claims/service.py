"""Claiming, withdrawing, fulfilling and revoking. The invariants are enforced by the
statements in ``repository``; this module orders them and explains refusals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.claims import repository
from app.claims.models import Claim, ClaimSource, ClaimStatus
from app.claims.repository import EventClaim
from app.core.actor import Actor
from app.core.db import utcnow
from app.core.errors import Conflict, Forbidden, InvalidState, NotFound
from app.events.models import ClaimEvent
from app.members import repository as members_repository
from app.members.models import MemberStatus
from app.regions.access import scope_of
from app.wishes import repository as wishes_repository
from app.wishes.models import LIVE_STATUSES, NEVER_PUBLISHED, Wish, WishStatus
from app.wishes.service import is_owner, may_see


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
) -> Claim:
    """The hot path: conditional statements that each take what they need or change
    nothing (one round trip on PostgreSQL); any refusal is explained and rolls the whole
    transaction back. Event claims (``kind`` rush or allocation) take the wish only if it is
    pooled in ``event_id`` and count against the member's quota there; ``explain_event``
    raises the event's own reason for a refusal (not live, wrong mode), if it has one."""
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
            kind=kind,
            event_id=event_id,
        )
    except IntegrityError as exc:  # the partial unique index on live (wish, member) claims
        raise Conflict("already_claimed") from exc
    if attempt.claim is not None:
        return attempt.claim
    if not attempt.wish_taken:
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
    never_published = wish is not None and wish.status in NEVER_PUBLISHED
    if wish is None or (never_published and not await may_see(session, actor, wish)):
        # A wish nobody was shown stays unknown; one that was public gets a real reason.
        raise NotFound(resource="wish")
    if wish.resident_id == actor.user_id:
        raise Conflict("own_wish")
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
        raise Conflict(
            "wish_full",
            extra={"slots_remaining": wish.slots_total - wish.slots_claimed},
            slots_remaining=wish.slots_total - wish.slots_claimed,
        )
    if wish.status == WishStatus.open.value and wish.deadline is not None and wish.deadline <= now:
        raise Conflict("not_claimable", extra={"current_state": "expired"}, current_state="expired")
    raise Conflict("not_claimable", extra={"current_state": wish.status}, current_state=wish.status)


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
    claim = await repository.get(session, claim_id)
    if claim is None or claim.member_id != actor.user_id:
        raise NotFound(resource="claim")
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
    return ended


async def withdraw(session: AsyncSession, actor: Actor, *, claim_id: int) -> Claim:
    claim = await _own_claim(session, actor, claim_id)
    return await _end_claim(
        session,
        claim,
        status=ClaimStatus.withdrawn,
        action="withdraw",
        ended_by=actor.user_id,
        reason=None,
    )


async def revoke(session: AsyncSession, actor: Actor, *, claim_id: int, reason: str) -> Claim:
    claim = await repository.get(session, claim_id)
    if claim is None:
        raise NotFound(resource="claim")
    wish = await wishes_repository.get(session, claim.wish_id)
    if wish is None or not (await scope_of(session, actor)).covers(wish):
        raise Forbidden("out_of_scope")
    return await _end_claim(
        session,
        claim,
        status=ClaimStatus.revoked,
        action="revoke",
        ended_by=actor.user_id,
        reason=reason,
    )


async def fulfil(session: AsyncSession, actor: Actor, *, claim_id: int, note: str) -> Claim:
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
    return done


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
