"""Loading what the engine needs, and storing runs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.categories.models import Category
from app.claims.models import Claim, ClaimSource, ClaimStatus
from app.matching.engine import MemberInput, Place, RosterEntry, WishInput
from app.matching.models import MatchingAssignment, MatchingRun
from app.members.models import Member, MemberArea, MemberResource, MemberResourceRegion
from app.regions.models import Region
from app.wishes.models import Wish, WishStatus

RECENT_MATCH_WINDOW = timedelta(days=30)


def place_of(row: Region | Wish) -> Place:
    return Place(row.district_id, row.street_id, row.community_id, row.grid_id)


def wish_input(wish: Wish) -> WishInput:
    return WishInput(
        id=wish.id,
        category=wish.category,
        text=f"{wish.title} {wish.description}",
        place=place_of(wish),
        slots_open=wish.slots_total - wish.slots_claimed,
        created_at=wish.created_at,
        deadline=wish.deadline,
    )


async def open_wishes(
    session: AsyncSession,
    *,
    now: datetime,
    region: Region | None = None,
    wish_ids: Sequence[int] | None = None,
    area_region_ids: Sequence[int] | None = None,
) -> list[Wish]:
    """Open wishes with free slots and time left, not pooled in a live event: in a region's
    subtree, among given ids, or reaching any of the given area regions."""
    query = select(Wish).where(
        Wish.status == WishStatus.open.value,
        Wish.slots_claimed < Wish.slots_total,
        (Wish.deadline.is_(None)) | (Wish.deadline > now),
        # Pooled in a live claim event: claimable only through it.
        Wish.event_id.is_(None),
    )
    if region is not None:
        query = query.where(getattr(Wish, f"{region.kind}_id") == region.id)
    if wish_ids is not None:
        query = query.where(Wish.id.in_(list(wish_ids)))
    if area_region_ids is not None:
        ids = list(area_region_ids)
        query = query.where(
            or_(
                Wish.district_id.in_(ids),
                Wish.street_id.in_(ids),
                Wish.community_id.in_(ids),
                Wish.grid_id.in_(ids),
            )
        )
    return list((await session.scalars(query.order_by(Wish.id))).all())


async def members_reaching(
    session: AsyncSession,
    *,
    region: Region,
    member_ids: Sequence[int] | None = None,
) -> list[Member]:
    """Active members with free capacity whose area reaches into the region: an area region
    inside its subtree, or one of its ancestors (a street-wide service covers its grids)."""
    area = select(MemberArea.member_id).join(Region, Region.id == MemberArea.region_id)
    area = area.where(
        or_(
            getattr(Region, f"{region.kind}_id") == region.id,
            Region.id.in_(region.ancestor_ids or [-1]),
        )
    )
    query = select(Member).where(
        Member.status == "active",
        Member.active_claims < Member.capacity,
        Member.user_id.in_(area),
    )
    if member_ids is not None:
        query = query.where(Member.user_id.in_(list(member_ids)))
    return list((await session.scalars(query.order_by(Member.user_id))).all())


async def member_inputs(
    session: AsyncSession, members: Sequence[Member], *, wish_ids: Sequence[int], now: datetime
) -> list[MemberInput]:
    """Rosters, service regions, live claims among ``wish_ids`` and recent matches."""
    ids = [m.user_id for m in members]
    if not ids:
        return []
    rosters: dict[int, list[RosterEntry]] = defaultdict(list)
    for resource in await session.scalars(
        select(MemberResource)
        .where(MemberResource.member_id.in_(ids))
        .order_by(MemberResource.member_id, MemberResource.position)
    ):
        rosters[resource.member_id].append(
            RosterEntry(resource.category, f"{resource.title} {resource.description}")
        )
    service: dict[int, set[int]] = defaultdict(set)
    rows = await session.execute(
        select(MemberResource.member_id, MemberResourceRegion.region_id)
        .join(MemberResourceRegion, MemberResourceRegion.resource_id == MemberResource.id)
        .where(MemberResource.member_id.in_(ids))
    )
    for member_id, region_id in rows:
        service[member_id].add(region_id)
    region_ids = {m.community_id for m in members} | {r for s in service.values() for r in s}
    places = {
        region.id: place_of(region)
        for region in await session.scalars(select(Region).where(Region.id.in_(region_ids)))
    }
    claimed: dict[int, set[int]] = defaultdict(set)
    if wish_ids:
        rows = await session.execute(
            select(Claim.member_id, Claim.wish_id).where(
                Claim.member_id.in_(ids),
                Claim.wish_id.in_(list(wish_ids)),
                Claim.status.in_([ClaimStatus.active.value, ClaimStatus.fulfilled.value]),
            )
        )
        for member_id, wish_id in rows:
            claimed[member_id].add(wish_id)
    own: dict[int, set[int]] = defaultdict(set)
    members_asked = set(ids)
    if wish_ids:
        own_rows = await session.execute(
            select(Wish.id, Wish.resident_id, Wish.creator_id).where(
                Wish.id.in_(list(wish_ids)),
                or_(Wish.resident_id.in_(ids), Wish.creator_id.in_(ids)),
            )
        )
        for wish_id, resident_id, creator_id in own_rows:
            for user_id in members_asked & {resident_id, creator_id}:
                own[user_id].add(wish_id)
    recent_rows = await session.execute(
        select(Claim.member_id, func.count())
        .where(
            Claim.member_id.in_(ids),
            Claim.source == ClaimSource.match.value,
            Claim.created_at >= now - RECENT_MATCH_WINDOW,
        )
        .group_by(Claim.member_id)
    )
    recent = {member_id: int(count) for member_id, count in recent_rows}
    return [
        MemberInput(
            id=m.user_id,
            home=places[m.community_id],
            capacity=m.capacity,
            active_claims=m.active_claims,
            roster=tuple(rosters[m.user_id]),
            service_places=tuple(places[r] for r in sorted(service[m.user_id]) if r in places),
            recent_matches=recent.get(m.user_id, 0),
            claimed_wish_ids=frozenset(claimed[m.user_id]),
            own_wish_ids=frozenset(own[m.user_id]),
        )
        for m in members
    ]


async def category_labels(session: AsyncSession) -> dict[str, tuple[str, str]]:
    rows = await session.execute(select(Category.slug, Category.label_zh, Category.label_en))
    return {slug: (zh, en) for slug, zh, en in rows}


async def display_names(session: AsyncSession, user_ids: Sequence[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    rows = await session.execute(
        select(User.id, User.display_name).where(User.id.in_(list(set(user_ids))))
    )
    return {row.id: row.display_name for row in rows}


async def get_run(session: AsyncSession, run_id: int) -> MatchingRun | None:
    return await session.get(MatchingRun, run_id, populate_existing=True)


async def assignments_of(session: AsyncSession, run_id: int) -> list[MatchingAssignment]:
    rows = await session.scalars(
        select(MatchingAssignment)
        .where(MatchingAssignment.run_id == run_id)
        .order_by(MatchingAssignment.wish_id, MatchingAssignment.member_id)
    )
    return list(rows.all())


async def mark_applied(session: AsyncSession, run_id: int, user_id: int, now: datetime) -> bool:
    """Computed → applied, once: two organizers pressing apply together apply it once."""
    changed = await session.scalar(
        update(MatchingRun)
        .where(MatchingRun.id == run_id, MatchingRun.status == "computed")
        .values(status="applied", applied_at=now, applied_by=user_id)
        .returning(MatchingRun.id)
        .execution_options(synchronize_session=False)
    )
    return changed is not None
