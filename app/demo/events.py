"""Demo claim events: a ceremony already held (with its claims and report) and one
scheduled for tomorrow morning, both by the street organizer of 七里站街道."""

from __future__ import annotations

import random
from datetime import UTC, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.core.actor import Actor
from app.core.db import utcnow
from app.core.errors import DomainError
from app.events import service
from app.events.models import ClaimEvent, EventMode
from app.members.models import Member, MemberStatus
from app.regions.models import Region, RegionKind

STREET_ORGANIZER_PHONE = "+8613800000002"
BEIJING = timezone(timedelta(hours=8))


async def seed_events(session: AsyncSession, *, street_id: int) -> int:
    """Idempotent: does nothing when events exist. Returns how many it created."""
    if await session.scalar(select(func.count()).select_from(ClaimEvent)):
        return 0
    organizer_id = await session.scalar(select(User.id).where(User.phone == STREET_ORGANIZER_PHONE))
    if organizer_id is None:
        return 0
    organizer = Actor(user_id=organizer_id)
    communities = list(
        await session.scalars(
            select(Region.id)
            .where(Region.street_id == street_id, Region.kind == RegionKind.community.value)
            .order_by(Region.id)
        )
    )
    held = await service.create_event(
        session,
        organizer,
        title="七里站街道第18场微心愿集中认领",
        community_ids=communities[:2],
        mode=EventMode.rush,
        starts_at=None,
        ends_at=None,
        per_member_quota=2,
    )
    await service.open_event(session, organizer, event_id=held.event.id)
    summary = await service.summarise(session, held.event)
    pooled = [wish.id for wish, _, _ in summary.wishes]
    rng = random.Random(18)  # noqa: S311 - demo data, reproducible on purpose
    members = list(
        await session.scalars(
            select(Member.user_id)
            .where(Member.status == MemberStatus.active.value, Member.active_claims == 0)
            .order_by(Member.user_id)
            .limit(400)
        )
    )
    for member_id in rng.sample(members, min(len(members), 60)):
        for wish_id in rng.sample(pooled, min(len(pooled), 2)):
            try:
                async with session.begin_nested():
                    await service.rush_claim(
                        session,
                        Actor(user_id=member_id),
                        event_id=held.event.id,
                        wish_id=wish_id,
                        slots=1,
                    )
            except DomainError:
                pass  # full, or already claimed: as in a real rush
    await service.close_event(session, organizer, event_id=held.event.id)

    tomorrow = (utcnow().astimezone(BEIJING) + timedelta(days=1)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    await service.create_event(
        session,
        organizer,
        title="七里站街道周末集中认领",
        community_ids=communities[2:4] or communities[:2],
        mode=EventMode.rush,
        starts_at=tomorrow.astimezone(UTC),
        ends_at=(tomorrow + timedelta(hours=2)).astimezone(UTC),
        per_member_quota=2,
    )
    return 2
