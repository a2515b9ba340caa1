"""Publishing, reviewing, reading, cancelling, confirming and expiring wishes."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.categories.service import require_known
from app.claims import repository as claims_repository
from app.claims.models import ClaimStatus
from app.core.actor import Actor
from app.core.conditional import PreconditionFailed, check_if_match, etag
from app.core.db import Database, utcnow
from app.core.errors import (
    Conflict,
    Forbidden,
    InvalidState,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from app.notifications import service as notifications
from app.notifications.models import NotificationKind
from app.regions import repository as regions_repository
from app.regions.access import Scope, scope_of
from app.regions.models import RegionKind
from app.wishes import repository
from app.wishes.models import LIVE_STATUSES, PUBLIC_STATUSES, Wish, WishStatus
from app.wishes.schemas import ContactIn, OnBehalfOf

MAX_DEADLINE_AHEAD = timedelta(days=366)


class Relation(enum.StrEnum):
    """Why a viewer may see a wish; the first three also see its contact unmasked."""

    owner = "owner"
    organizer = "organizer"
    claimer = "claimer"
    public = "public"
    none = "none"


@dataclass(frozen=True)
class WishView:
    wish: Wish  # or, in a listing, a row with a wish's columns as attributes
    relation: Relation
    community_name: str | None

    @property
    def contact_visible(self) -> bool:
        return self.relation in (Relation.owner, Relation.organizer, Relation.claimer)


def is_owner(actor_id: int, wish: Wish) -> bool:
    """The resident, or whoever published it (an organizer acting on their behalf)."""
    return actor_id in (wish.resident_id, wish.creator_id)


def _seeing_relation(scope: Scope, wish: Wish, *, active_claim: bool) -> Relation | None:
    """The relation as far as the wish and whether the user holds an active claim on it
    tell; None when it depends on their other claims."""
    if is_owner(scope.user_id, wish):
        return Relation.owner
    if scope.covers(wish):
        return Relation.organizer
    if active_claim:
        return Relation.claimer
    if wish.status in PUBLIC_STATUSES:
        return Relation.public
    return None


async def relation_to(
    session: AsyncSession, scope: Scope, wish: Wish, *, active_claim: bool | None = None
) -> Relation:
    if active_claim is None and not is_owner(scope.user_id, wish) and not scope.covers(wish):
        active_claim = bool(
            await repository.wishes_with_active_claim(session, scope.user_id, [wish.id])
        )
    relation = _seeing_relation(scope, wish, active_claim=bool(active_claim))
    if relation is not None:
        return relation
    if await claims_repository.live_claim_exists(session, wish_id=wish.id, member_id=scope.user_id):
        return Relation.public  # a past claimer still sees the wish, not the contact
    return Relation.none


async def may_see(session: AsyncSession, actor: Actor, wish: Wish) -> bool:
    return await relation_to(session, await scope_of(session, actor), wish) != Relation.none


async def _audit(session: AsyncSession, viewer_id: int, views: Sequence[WishView]) -> None:
    reads = [
        (view.wish.id, view.relation.value)
        for view in views
        if view.relation in (Relation.organizer, Relation.claimer)
    ]
    await repository.record_contact_access(session, viewer_id=viewer_id, reads=reads, now=utcnow())


async def _views(session: AsyncSession, scope: Scope, wishes: Sequence[Wish]) -> list[WishView]:
    active = await repository.wishes_with_active_claim(
        session, scope.user_id, [wish.id for wish in wishes]
    )
    names = await repository.region_names(
        session, [wish.community_id for wish in wishes if wish.community_id]
    )
    views = [
        WishView(
            wish=wish,
            relation=await relation_to(session, scope, wish, active_claim=wish.id in active),
            community_name=names.get(wish.community_id) if wish.community_id else None,
        )
        for wish in wishes
    ]
    await _audit(session, scope.user_id, views)
    return views


async def views_of(session: AsyncSession, scope: Scope, wishes: Sequence[Wish]) -> list[WishView]:
    """How the scope's user sees each wish, exactly as ``get_wish`` would (``Relation.none``:
    not at all); unmasked reads are audited."""
    return await _views(session, scope, wishes)


async def create_wish(
    session: AsyncSession,
    actor: Actor,
    *,
    title: str,
    description: str,
    category: str,
    region_id: int,
    slots_total: int,
    deadline: datetime | None,
    contact: ContactIn | None,
    on_behalf_of: OnBehalfOf | None,
) -> WishView:
    now = utcnow()
    creator = await session.get(User, actor.user_id)
    if creator is None:
        raise Unauthorized()
    region = await regions_repository.get(session, region_id)
    if region is None:
        raise NotFound(resource="region")
    if region.kind not in (RegionKind.community, RegionKind.grid):
        raise ValidationFailed("region_too_broad")
    await require_known(session, [category])
    if deadline is not None and not now < deadline <= now + MAX_DEADLINE_AHEAD:
        raise ValidationFailed("deadline_out_of_range")
    scope = await scope_of(session, actor)
    publishes_as_organizer = scope.covers(region)

    resident: User | None = creator
    beneficiary_name = creator.display_name
    if on_behalf_of is not None:
        if not publishes_as_organizer:
            raise Forbidden(reason="out_of_scope")
        if on_behalf_of.user_id is not None:
            resident = await session.get(User, on_behalf_of.user_id)
            if resident is None:
                raise NotFound(resource="user")
            beneficiary_name = resident.display_name
        else:
            resident = None
            beneficiary_name = on_behalf_of.name or ""

    contact = contact or ContactIn()
    wish = Wish(
        resident_id=resident.id if resident else None,
        creator_id=creator.id,
        beneficiary_name=beneficiary_name,
        region_id=region.id,
        district_id=region.district_id,
        street_id=region.street_id,
        community_id=region.community_id,
        grid_id=region.grid_id,
        category=category,
        title=title,
        description=description,
        slots_total=slots_total,
        slots_claimed=0,
        slots_fulfilled=0,
        # Organizers publish in their own regions without review; residents wait for one.
        status=WishStatus.open.value if publishes_as_organizer else WishStatus.pending_review.value,
        deadline=deadline,
        contact_name=contact.name or beneficiary_name,
        contact_phone=contact.phone or (resident.phone if resident else None),
        contact_address=contact.address,
        reviewed_by=actor.user_id if publishes_as_organizer else None,
        reviewed_at=now if publishes_as_organizer else None,
        created_at=now,
        updated_at=now,
        version=1,
    )
    session.add(wish)
    await session.flush()
    return (await _views(session, scope, [wish]))[0]


async def get_wish(session: AsyncSession, actor: Actor, *, wish_id: int) -> WishView:
    wish = await repository.get(session, wish_id)
    scope = await scope_of(session, actor)
    if wish is None:
        raise NotFound(resource="wish")
    view = (await _views(session, scope, [wish]))[0]
    if view.relation == Relation.none:
        raise NotFound(resource="wish")  # don't reveal that a private wish exists
    return view


def wish_etag(view: WishView) -> str:
    """Masked and unmasked readings of one version are different representations."""
    return etag("wish", view.wish.id, view.wish.version, "u" if view.contact_visible else "m")


async def update_wish(
    session: AsyncSession,
    actor: Actor,
    *,
    wish_id: int,
    if_match: list[str],
    changes: dict[str, Any],
) -> WishView:
    """The owner edits a pending or open wish. ``if_match`` must name the version read; the
    UPDATE is conditional on it, so of two concurrent edits from one version one gets 412."""
    view = await get_wish(session, actor, wish_id=wish_id)
    wish = view.wish
    if not is_owner(actor.user_id, wish):
        raise Forbidden()
    check_if_match(if_match, wish_etag(view))
    editable = (WishStatus.pending_review.value, WishStatus.open.value)
    if wish.status not in editable:
        raise InvalidState(resource="wish", current_state=wish.status, action="update")
    now = utcnow()
    values: dict[str, Any] = {}
    for name in ("title", "description", "category", "slots_total", "deadline"):
        if name in changes:
            values[name] = changes[name]
    if values.get("category") is not None:
        await require_known(session, [values["category"]])
    deadline = values.get("deadline")
    if deadline is not None and not now < deadline <= now + MAX_DEADLINE_AHEAD:
        raise ValidationFailed("deadline_out_of_range")
    nulls = [
        name
        for name in ("title", "description", "category", "slots_total")
        if name in values and values[name] is None
    ]
    if nulls:
        raise ValidationFailed("field_not_nullable", fields=", ".join(nulls))
    contact = changes.get("contact")
    if contact is not None:
        values.update(
            {
                f"contact_{name}": contact[name]
                for name in ("name", "phone", "address")
                if name in contact
            }
        )
    if not values:  # nothing to change: no new version (the app's sync sees nothing new)
        return view
    slots_total = values.get("slots_total")
    updated = await session.scalar(
        update(Wish)
        .where(
            Wish.id == wish.id,
            Wish.version == wish.version,
            Wish.status.in_(editable),
            # Never below what is claimed (the CHECK would refuse it too).
            *([Wish.slots_claimed <= slots_total] if slots_total is not None else []),
        )
        .values(
            **values,
            # A wish full after lowering its slots is fully claimed, or fulfilled when every
            # slot left is fulfilled already.
            **(
                {
                    "status": case(
                        (
                            (Wish.status == WishStatus.open.value)
                            & (Wish.slots_fulfilled == slots_total),
                            WishStatus.fulfilled.value,
                        ),
                        (
                            (Wish.status == WishStatus.open.value)
                            & (Wish.slots_claimed == slots_total),
                            WishStatus.claimed.value,
                        ),
                        else_=Wish.status,
                    ),
                    "fulfilled_at": case(
                        (
                            (Wish.status == WishStatus.open.value)
                            & (Wish.slots_fulfilled == slots_total),
                            now,
                        ),
                        else_=Wish.fulfilled_at,
                    ),
                }
                if slots_total is not None
                else {}
            ),
            version=Wish.version + 1,
            updated_at=now,
        )
        .returning(Wish)
        .execution_options(populate_existing=True)
    )
    if updated is None:
        current = await repository.get(session, wish.id)
        if current is not None and slots_total is not None and current.version == wish.version:
            raise Conflict(
                "slots_below_claimed",
                extra={"slots_claimed": current.slots_claimed},
                slots_claimed=current.slots_claimed,
            )
        raise PreconditionFailed()
    scope = await scope_of(session, actor)
    return (await _views(session, scope, [updated]))[0]


async def list_wishes(
    session: AsyncSession,
    actor: Actor,
    *,
    statuses: list[WishStatus] | None,
    category: str | None,
    region_id: int | None,
    mine: bool,
    after_id: int | None,
    limit: int,
) -> list[WishView]:
    """Up to ``limit`` wishes, and one more if another page follows (not shown, so neither
    masked nor audited: only what the reader is shown is recorded as read)."""
    scope = await scope_of(session, actor)
    if category is not None:
        await require_known(session, [category])  # 422 unknown_category, as when publishing
    region = None
    if region_id is not None:
        region = await regions_repository.get(session, region_id)
        if region is None:
            raise NotFound(resource="region")
    page = await repository.list_visible(
        session,
        scope=scope,
        statuses=[status.value for status in statuses] if statuses else None,
        category=category,
        region=region,
        mine=mine,
        after_id=after_id,
        limit=limit + 1,
    )
    # Listed means visible: a wish none of the first relations cover is listed for a live
    # (fulfilled) claim of the user's, which shows the wish but not the contact.
    views = [
        WishView(
            wish=row,
            relation=_seeing_relation(scope, row, active_claim=bool(row.active_claim))
            or Relation.public,
            community_name=row.community_name,
        )
        for row in page
    ]
    await _audit(session, scope.user_id, views[:limit])
    return views


async def _require_organizer_of(session: AsyncSession, actor: Actor, wish_id: int) -> Wish:
    wish = await repository.get(session, wish_id)
    if wish is None:
        raise NotFound(resource="wish")
    if not (await scope_of(session, actor)).covers(wish):
        raise Forbidden(reason="out_of_scope")
    return wish


async def _transition(
    session: AsyncSession,
    actor: Actor,
    wish: Wish,
    *,
    from_statuses: Sequence[str],
    values: dict[str, object],
    action: str,
    extra_conditions: Sequence[ColumnElement[bool]] = (),
) -> WishView:
    changed = await repository.transition(
        session,
        wish.id,
        from_statuses=from_statuses,
        values=values,
        extra_conditions=extra_conditions,
    )
    current = await repository.get(session, wish.id)
    assert current is not None
    if not changed:
        raise InvalidState(resource="wish", current_state=current.status, action=action)
    return (await _views(session, await scope_of(session, actor), [current]))[0]


async def approve(session: AsyncSession, actor: Actor, *, wish_id: int) -> WishView:
    wish = await _require_organizer_of(session, actor, wish_id)
    now = utcnow()
    view = await _transition(
        session,
        actor,
        wish,
        from_statuses=[WishStatus.pending_review.value],
        values={
            "status": WishStatus.open.value,
            "reviewed_by": actor.user_id,
            "reviewed_at": now,
            "updated_at": now,
        },
        action="approve",
    )
    await notifications.notify(
        session,
        user_ids=[view.wish.resident_id, view.wish.creator_id],
        kind=NotificationKind.wish_approved,
        data={"wish_id": str(view.wish.id), "wish_title": view.wish.title},
    )
    return view


async def reject(session: AsyncSession, actor: Actor, *, wish_id: int, reason: str) -> WishView:
    wish = await _require_organizer_of(session, actor, wish_id)
    now = utcnow()
    view = await _transition(
        session,
        actor,
        wish,
        from_statuses=[WishStatus.pending_review.value],
        values={
            "status": WishStatus.rejected.value,
            "review_note": reason,
            "reviewed_by": actor.user_id,
            "reviewed_at": now,
            "closed_at": now,
            "updated_at": now,
        },
        action="reject",
    )
    await notifications.notify(
        session,
        user_ids=[view.wish.resident_id, view.wish.creator_id],
        kind=NotificationKind.wish_rejected,
        data={"wish_id": str(view.wish.id), "wish_title": view.wish.title, "reason": reason},
    )
    return view


async def cancel(
    session: AsyncSession, actor: Actor, *, wish_id: int, reason: str | None
) -> WishView:
    """The owner (or an organizer in scope) may cancel while nothing is fulfilled; active
    claims end as ``revoked`` and their members' capacity frees up."""
    wish = await repository.get(session, wish_id)
    if wish is None:
        raise NotFound(resource="wish")
    if not is_owner(actor.user_id, wish):
        wish = await _require_organizer_of(session, actor, wish_id)
    now = utcnow()
    view = await _transition(
        session,
        actor,
        wish,
        from_statuses=[WishStatus.pending_review.value, *LIVE_STATUSES],
        values={
            "status": WishStatus.cancelled.value,
            "cancel_reason": reason,
            # Every live claim is active here (nothing fulfilled), and all of them end below.
            "slots_claimed": 0,
            "closed_at": now,
            "updated_at": now,
        },
        action="cancel",
        extra_conditions=[Wish.slots_fulfilled == 0],
    )
    ended = await claims_repository.end_all_active_claims_of_wish(
        session,
        wish_id=wish_id,
        values={
            "status": ClaimStatus.revoked.value,
            "ended_at": now,
            "ended_by": actor.user_id,
            "end_reason": "wish_cancelled",
            "updated_at": now,
        },
    )
    await notifications.notify_each(
        session,
        kind=NotificationKind.claim_revoked,
        rows=[
            (
                member_id,
                {
                    "claim_id": str(claim_id),
                    "wish_id": str(wish_id),
                    "wish_title": view.wish.title,
                    "cause": "wish_cancelled",
                    "reason": reason,
                },
            )
            for member_id, claim_id in ended
        ],
    )
    return view


async def confirm(
    session: AsyncSession, actor: Actor, *, wish_id: int, rating: int | None, thanks: str | None
) -> WishView:
    """The resident confirms fulfilment (or the organizer who published it for them)."""
    wish = await repository.get(session, wish_id)
    if wish is None:
        raise NotFound(resource="wish")
    if not is_owner(actor.user_id, wish):
        raise Forbidden()
    now = utcnow()
    view = await _transition(
        session,
        actor,
        wish,
        from_statuses=[WishStatus.fulfilled.value],
        values={
            "status": WishStatus.confirmed.value,
            "rating": rating,
            "thanks": thanks,
            "confirmed_at": now,
            "closed_at": now,
            "updated_at": now,
        },
        action="confirm",
    )
    # Every claim that helped (all fulfilled, or the wish would not have been).
    await notifications.notify(
        session,
        user_ids=await notifications.claimers_of(
            session, wish_id=wish_id, statuses=[ClaimStatus.fulfilled.value]
        ),
        kind=NotificationKind.wish_confirmed,
        data={
            "wish_id": str(wish_id),
            "wish_title": view.wish.title,
            "thanks": thanks,
            "rating": rating,
        },
    )
    return view


async def expire_overdue(
    session: AsyncSession, *, now: datetime | None = None, wish_ids: Sequence[int] | None = None
) -> int:
    """Settle the wishes past their deadline (all, or only these: a claim action settles its
    wish at once rather than leave it for the clock); the owner of one that ends fulfilled
    as far as it got is asked to confirm (it is their turn now)."""
    ended = await repository.expire_overdue(session, now or utcnow(), wish_ids=wish_ids)
    told = [
        (
            row.resident_id if row.resident_id is not None else row.creator_id,
            {
                "wish_id": str(row.id),
                "wish_title": row.title,
                "wish_status": row.status,
                "cause": "deadline",
                "slots_fulfilled": row.slots_fulfilled,
                "slots_total": row.slots_total,
            },
        )
        for row in ended
        if row.status == WishStatus.fulfilled.value
    ]
    if told:
        await notifications.notify_each(session, kind=NotificationKind.claim_fulfilled, rows=told)
    return len(ended)


async def expire_due(database: Database) -> int:
    """The deadline clock's tick: a cheap indexed read; a write transaction only when a
    wish is due (so a wish is expired within a second of its deadline, and SQLite's write
    lock is not taken every second for nothing)."""
    now = utcnow()
    async with database.transaction(write=False) as session:
        if not await repository.overdue_exists(session, now):
            return 0
    async with database.transaction(write=True) as session:
        return await expire_overdue(session, now=now)
