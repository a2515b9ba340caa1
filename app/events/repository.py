"""Queries of claim events. Pooling and returning move many wishes at once; on PostgreSQL
their rows are locked in id order first, so two events opening over the same communities,
or an opening racing claims, queue instead of deadlocking."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.util.typing import TupleAny

from app.accounts.models import User
from app.claims.models import Claim, ClaimStatus
from app.core.db import fetch_all_in_request
from app.core.pagination import after
from app.events.models import (
    ClaimEvent,
    ClaimEventCommunity,
    ClaimEventParticipant,
    ClaimEventPreference,
    ClaimEventWish,
    EventStatus,
    PoolState,
)
from app.members.models import Member, MemberStatus
from app.regions.models import Region
from app.wishes.models import NEVER_PUBLISHED, Wish, WishStatus

LIVE_CLAIM = (ClaimStatus.active.value, ClaimStatus.fulfilled.value)


def _counted_in_event() -> Any:
    """An event claim counts in its event's numbers (``service.counts_in_event``, in SQL;
    with ``claim_events`` joined): live now, or, once the event has closed, ended after
    the close."""
    return or_(
        Claim.status.in_(LIVE_CLAIM),
        and_(ClaimEvent.closed_at.is_not(None), Claim.ended_at > ClaimEvent.closed_at),
    )


async def get(session: AsyncSession, event_id: int, *, lock: bool = False) -> ClaimEvent | None:
    """With ``lock``: FOR NO KEY UPDATE (what an UPDATE of the event takes), which serializes
    opening, closing and editing but, unlike FOR UPDATE, not the foreign-key checks (KEY SHARE)
    of claims being inserted in the event: a rush claim holds its wish when it checks that
    key, and closing locks the event before the pooled wishes, so FOR UPDATE here could
    deadlock a close with the rush's last claims."""
    query = select(ClaimEvent).where(ClaimEvent.id == event_id)
    if lock:
        query = query.with_for_update(key_share=True)
    return await session.scalar(query.execution_options(populate_existing=True))


async def hold_open(session: AsyncSession, event_id: int) -> None:
    """FOR SHARE on the event: a closing transaction (FOR NO KEY UPDATE) waits for this one
    and this one for it, so what is written here while the event is live is either seen by
    the close or refused after it. Many holders at once do not wait for each other."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            select(ClaimEvent.id).where(ClaimEvent.id == event_id).with_for_update(read=True)
        )


async def hold_ranking(session: AsyncSession, event_id: int, member_id: int) -> None:
    """Serialize one member's rankings of one event (a transaction-scoped advisory lock on
    PostgreSQL; SQLite's writers are serialized anyway). Not the member's row: the ranking
    then inserts rows whose foreign keys take KEY SHARE on wishes, and a withdrawal holds its
    wish before its member, so holding the member first could deadlock with it."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            select(
                func.pg_advisory_xact_lock(
                    literal(event_id % 2**31, Integer), literal(member_id % 2**31, Integer)
                )
            )
        )


async def community_ids(session: AsyncSession, event_id: int) -> list[int]:
    rows = await session.scalars(
        select(ClaimEventCommunity.community_id)
        .where(ClaimEventCommunity.event_id == event_id)
        .order_by(ClaimEventCommunity.community_id)
    )
    return list(rows)


async def communities_of(
    session: AsyncSession, event_ids: Sequence[int]
) -> dict[int, list[Region]]:
    rows = await session.execute(
        select(ClaimEventCommunity.event_id, Region)
        .join(Region, Region.id == ClaimEventCommunity.community_id)
        .where(ClaimEventCommunity.event_id.in_(list(event_ids)))
        .order_by(ClaimEventCommunity.event_id, Region.id)
    )
    found: dict[int, list[Region]] = {event_id: [] for event_id in event_ids}
    for event_id, region in rows.all():
        found[event_id].append(region)
    return found


async def regions(session: AsyncSession, region_ids: Iterable[int]) -> list[Region]:
    ids = sorted(set(region_ids))
    if not ids:
        return []
    return list((await session.scalars(select(Region).where(Region.id.in_(ids)))).all())


async def set_communities(
    session: AsyncSession, event_id: int, community_ids: Sequence[int]
) -> None:
    await session.execute(
        delete(ClaimEventCommunity).where(ClaimEventCommunity.event_id == event_id)
    )
    await session.execute(
        insert(ClaimEventCommunity),
        [{"event_id": event_id, "community_id": c} for c in sorted(set(community_ids))],
    )


async def list_events(
    session: AsyncSession,
    *,
    statuses: list[str] | None,
    include_drafts_of: list[tuple[str, int]] | None,
    all_drafts: bool,
    after_id: int | None,
    limit: int,
) -> Sequence[ClaimEvent]:
    """Events newest first. Drafts only for admins (``all_drafts``) and organizers covering
    one of the event's communities (``include_drafts_of``: their grants' (kind, region id))."""
    query = select(ClaimEvent)
    if not all_drafts:
        draft_visible: list[Any] = []
        for kind, region_id in include_drafts_of or []:
            draft_visible.append(
                ClaimEvent.id.in_(
                    select(ClaimEventCommunity.event_id)
                    .join(Region, Region.id == ClaimEventCommunity.community_id)
                    .where(getattr(Region, f"{kind}_id") == region_id)
                )
            )
        query = query.where(or_(ClaimEvent.status != EventStatus.draft.value, *draft_visible))
    if statuses:
        query = query.where(ClaimEvent.status.in_(statuses))
    if after_id is not None:
        query = query.where(after([ClaimEvent.id], [after_id], descending=True))
    return (await session.scalars(query.order_by(ClaimEvent.id.desc()).limit(limit))).all()


async def pool_entries(
    session: AsyncSession, event_id: int, states: Sequence[str] | None = None
) -> list[ClaimEventWish]:
    query = select(ClaimEventWish).where(ClaimEventWish.event_id == event_id)
    if states:
        query = query.where(ClaimEventWish.state.in_(list(states)))
    return list((await session.scalars(query.order_by(ClaimEventWish.wish_id))).all())


async def pool_page(
    session: AsyncSession,
    event_id: int,
    *,
    after_id: int | None,
    limit: int,
    published_only: bool = False,
) -> Sequence[tuple[ClaimEventWish, Wish]]:
    """The event's pool entries with their wishes; ``published_only`` leaves out wishes
    never published (pending review or rejected), which only organizers may see."""
    query = (
        select(ClaimEventWish, Wish)
        .join(Wish, Wish.id == ClaimEventWish.wish_id)
        .where(ClaimEventWish.event_id == event_id)
    )
    if published_only:
        query = query.where(Wish.status.not_in(NEVER_PUBLISHED))
    if after_id is not None:
        query = query.where(after([ClaimEventWish.wish_id], [after_id]))
    rows = await session.execute(query.order_by(ClaimEventWish.wish_id).limit(limit))
    return [(entry, wish) for entry, wish in rows.all()]


async def wishes_by_id(session: AsyncSession, wish_ids: Iterable[int]) -> dict[int, Wish]:
    ids = sorted(set(wish_ids))
    if not ids:
        return {}
    rows = await session.scalars(
        select(Wish).where(Wish.id.in_(ids)).execution_options(populate_existing=True)
    )
    return {wish.id: wish for wish in rows}


async def select_wishes(
    session: AsyncSession, event_id: int, wishes: Sequence[Wish], now: datetime
) -> None:
    """Choose wishes for the pool (again, if they had been removed)."""
    existing = {
        entry.wish_id: entry
        for entry in await pool_entries(session, event_id)
        if entry.wish_id in {w.id for w in wishes}
    }
    for wish in wishes:
        _mark(session, event_id, wish, existing.get(wish.id), PoolState.selected)
    await session.flush()


def _mark(
    session: AsyncSession,
    event_id: int,
    wish: Wish,
    entry: ClaimEventWish | None,
    state: PoolState,
) -> None:
    """Give the wish's pool entry this state, making the entry if it has none."""
    if entry is not None:
        entry.state = state.value
        return
    session.add(
        ClaimEventWish(
            event_id=event_id, wish_id=wish.id, community_id=wish.community_id, state=state.value
        )
    )


async def has_chosen(session: AsyncSession, event_id: int) -> bool:
    """Whether the organizers chose wishes (some are ``selected``): then only those are
    pooled; otherwise the event pools its communities' wishes (``pool``)."""
    found = await session.scalar(
        select(ClaimEventWish.wish_id)
        .where(
            ClaimEventWish.event_id == event_id,
            ClaimEventWish.state == PoolState.selected.value,
        )
        .limit(1)
    )
    return found is not None


async def leave_out(session: AsyncSession, event_id: int, wish: Wish) -> bool:
    """Keep a wish out of an event that pools its communities' wishes (a ``removed`` entry,
    which ``pool`` skips); False if it was left out already."""
    existing = await session.get(ClaimEventWish, (event_id, wish.id))
    if existing is not None and existing.state == PoolState.removed.value:
        return False
    _mark(session, event_id, wish, existing, PoolState.removed)
    await session.flush()
    return True


async def left_out_among(session: AsyncSession, event_id: int, wish_ids: Iterable[int]) -> set[int]:
    """Those of these wishes the event keeps out (``removed`` entries)."""
    rows = await session.scalars(
        select(ClaimEventWish.wish_id).where(
            ClaimEventWish.event_id == event_id,
            ClaimEventWish.wish_id.in_(sorted(set(wish_ids))),
            ClaimEventWish.state == PoolState.removed.value,
        )
    )
    return set(rows)


async def let_back_in(session: AsyncSession, event_id: int, wish_ids: Iterable[int]) -> None:
    """Undo leaving these wishes out of an event that pools its communities' wishes: with
    no entry, ``pool`` takes them like every other."""
    await session.execute(
        delete(ClaimEventWish).where(
            ClaimEventWish.event_id == event_id,
            ClaimEventWish.wish_id.in_(sorted(set(wish_ids))),
            ClaimEventWish.state == PoolState.removed.value,
        )
    )


class PreviewEntry(NamedTuple):
    """A wish an event would pool if it opened now, shown like a chosen one."""

    community_id: int
    state: str = PoolState.selected.value
    slots_free_at_open: int | None = None


async def default_pool_page(
    session: AsyncSession,
    event_id: int,
    community_ids: Sequence[int],
    now: datetime,
    *,
    after_id: int | None,
    limit: int,
    published_only: bool = False,
) -> list[tuple[Any, Wish]]:
    """Before opening, for an event that chose no wishes: what it would pool now (every
    open wish of its communities with free slots, as ``selected``) and the wishes taken out
    (``removed``), in wish id order."""
    candidates = select(Wish).where(
        *_poolable(now),
        Wish.community_id.in_(list(community_ids)),
        Wish.id.not_in(select(ClaimEventWish.wish_id).where(ClaimEventWish.event_id == event_id)),
    )
    if after_id is not None:
        candidates = candidates.where(Wish.id > after_id)
    wishes = (await session.scalars(candidates.order_by(Wish.id).limit(limit))).all()
    rows: list[tuple[Any, Wish]] = [
        (PreviewEntry(community_id=wish.community_id or 0), wish) for wish in wishes
    ]
    rows += await pool_page(
        session, event_id, after_id=after_id, limit=limit, published_only=published_only
    )
    rows.sort(key=lambda row: row[1].id)
    return rows[:limit]


async def remove_wish(session: AsyncSession, event_id: int, wish_id: int) -> bool:
    result = await session.execute(
        update(ClaimEventWish)
        .where(
            ClaimEventWish.event_id == event_id,
            ClaimEventWish.wish_id == wish_id,
            ClaimEventWish.state == PoolState.selected.value,
        )
        .values(state=PoolState.removed.value)
        .returning(ClaimEventWish.wish_id)
    )
    return result.first() is not None


def _poolable(now: datetime) -> list[Any]:
    return [
        Wish.status == WishStatus.open.value,
        Wish.slots_claimed < Wish.slots_total,
        Wish.event_id.is_(None),
        or_(Wish.deadline.is_(None), Wish.deadline > now),
    ]


async def _lock_in_id_order(session: AsyncSession, query: Any) -> list[Any]:
    """The rows' (id, community, free slots), locked in id order on PostgreSQL (SQLite's
    write transactions are serialized anyway)."""
    query = query.order_by(Wish.id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=Wish)
    return list((await session.execute(query)).all())


async def pool(
    session: AsyncSession, event_id: int, community_ids: Sequence[int], now: datetime
) -> int:
    """Pool the event's wishes: the chosen ones still open with free slots, or, when none
    are chosen (or every chosen one was taken out again), every such wish of its
    communities except those taken out. Returns how many were pooled."""
    chosen = {e.wish_id for e in await pool_entries(session, event_id, [PoolState.selected.value])}
    query = select(Wish.id, Wish.community_id, Wish.slots_total - Wish.slots_claimed).where(
        *_poolable(now), Wish.community_id.in_(list(community_ids))
    )
    if chosen:
        query = query.where(Wish.id.in_(sorted(chosen)))
    else:
        removed = select(ClaimEventWish.wish_id).where(ClaimEventWish.event_id == event_id)
        query = query.where(Wish.id.not_in(removed))
    rows = await _lock_in_id_order(session, query)
    ids = [row[0] for row in rows]
    if ids:
        await session.execute(
            update(Wish)
            .where(Wish.id.in_(ids))
            .values(event_id=event_id, version=Wish.version + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    if chosen:
        pooled = {row[0]: row for row in rows}
        for entry in await pool_entries(session, event_id, [PoolState.selected.value]):
            row = pooled.get(entry.wish_id)
            if row is None:
                entry.state = PoolState.skipped.value
            else:
                entry.state = PoolState.pooled.value
                entry.slots_free_at_open = row[2]
                entry.pooled_at = now
    elif rows:
        await session.execute(
            insert(ClaimEventWish),
            [
                {
                    "event_id": event_id,
                    "wish_id": wish_id,
                    "community_id": community_id,
                    "state": PoolState.pooled.value,
                    "slots_free_at_open": free,
                    "pooled_at": now,
                }
                for wish_id, community_id, free in rows
            ],
        )
    await session.flush()
    return len(ids)


async def lock_pool(session: AsyncSession, event_id: int) -> list[int]:
    """Lock the wishes pooled in the event, in id order; returns their ids."""
    rows = await _lock_in_id_order(session, select(Wish.id).where(Wish.event_id == event_id))
    return [row[0] for row in rows]


async def return_home(session: AsyncSession, event_id: int, now: datetime) -> int:
    """At close every pooled wish goes back to its community: claimable directly again."""
    ids = await lock_pool(session, event_id)
    if ids:
        await session.execute(
            update(Wish)
            .where(Wish.id.in_(ids))
            .values(event_id=None, version=Wish.version + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    await session.execute(
        update(ClaimEventWish)
        .where(
            ClaimEventWish.event_id == event_id,
            ClaimEventWish.state == PoolState.pooled.value,
        )
        .values(state=PoolState.returned.value, returned_at=now)
    )
    return len(ids)


async def due_events(session: AsyncSession, now: datetime) -> list[tuple[int, str]]:
    """(id, status) of events whose opening or closing time has come."""
    rows = await session.execute(
        select(ClaimEvent.id, ClaimEvent.status)
        .where(
            or_(
                and_(
                    ClaimEvent.status == EventStatus.scheduled.value,
                    ClaimEvent.starts_at <= now,
                ),
                and_(ClaimEvent.status == EventStatus.live.value, ClaimEvent.ends_at <= now),
            )
        )
        .order_by(ClaimEvent.id)
    )
    return [(row[0], row[1]) for row in rows.all()]


async def participant(
    session: AsyncSession, event_id: int, member_id: int
) -> ClaimEventParticipant | None:
    return await session.get(ClaimEventParticipant, (event_id, member_id), populate_existing=True)


async def preferences_of(
    session: AsyncSession, event_id: int, member_id: int
) -> list[ClaimEventPreference]:
    rows = await session.scalars(
        select(ClaimEventPreference)
        .where(
            ClaimEventPreference.event_id == event_id,
            ClaimEventPreference.member_id == member_id,
        )
        .order_by(ClaimEventPreference.rank)
    )
    return list(rows)


async def replace_preferences(
    session: AsyncSession, event_id: int, member_id: int, wish_ids: Sequence[int], now: datetime
) -> None:
    await session.execute(
        delete(ClaimEventPreference).where(
            ClaimEventPreference.event_id == event_id,
            ClaimEventPreference.member_id == member_id,
        )
    )
    if wish_ids:
        await session.execute(
            insert(ClaimEventPreference),
            [
                {
                    "event_id": event_id,
                    "member_id": member_id,
                    "wish_id": wish_id,
                    "rank": rank,
                    "updated_at": now,
                }
                for rank, wish_id in enumerate(wish_ids, start=1)
            ],
        )


async def all_preferences(session: AsyncSession, event_id: int) -> list[tuple[int, int, int]]:
    rows = await session.execute(
        select(
            ClaimEventPreference.member_id,
            ClaimEventPreference.wish_id,
            ClaimEventPreference.rank,
        ).where(ClaimEventPreference.event_id == event_id)
    )
    return [(row[0], row[1], row[2]) for row in rows.all()]


async def held_pairs(
    session: AsyncSession, wish_ids: Sequence[int], member_ids: Sequence[int]
) -> set[tuple[int, int]]:
    """(member, wish) pairs among these that a live claim already joins."""
    if not wish_ids or not member_ids:
        return set()
    rows = await session.execute(
        select(Claim.member_id, Claim.wish_id).where(
            Claim.wish_id.in_(sorted(set(wish_ids))),
            Claim.member_id.in_(sorted(set(member_ids))),
            Claim.status.in_(LIVE_CLAIM),
        )
    )
    return {(row[0], row[1]) for row in rows.all()}


async def member_limits(
    session: AsyncSession, event_id: int, member_ids: Sequence[int], quota: int
) -> list[tuple[int, int]]:
    """How many more claims each member may get at allocation: the lesser of their free
    capacity and what is left of their quota; active members only."""
    if not member_ids:
        return []
    used = dict(
        (
            await session.execute(
                select(ClaimEventParticipant.member_id, ClaimEventParticipant.claims).where(
                    ClaimEventParticipant.event_id == event_id
                )
            )
        ).all()
    )
    rows = await session.execute(
        select(Member.user_id, Member.capacity - Member.active_claims).where(
            Member.user_id.in_(sorted(set(member_ids))),
            Member.status == MemberStatus.active.value,
        )
    )
    limits = []
    for member_id, free in rows.all():
        limit = min(int(free), quota - int(used.get(member_id, 0)))
        if limit > 0:
            limits.append((int(member_id), limit))
    return limits


async def pooled_wishes(session: AsyncSession, event_id: int) -> list[tuple[ClaimEventWish, Wish]]:
    """The event's pool entries (pooled or returned) with their wishes, in wish id order."""
    statement = (
        select(ClaimEventWish, Wish)
        .join(Wish, Wish.id == ClaimEventWish.wish_id)
        .where(
            ClaimEventWish.event_id == event_id,
            ClaimEventWish.state.in_([PoolState.pooled.value, PoolState.returned.value]),
        )
        .order_by(ClaimEventWish.wish_id)
        .execution_options(populate_existing=True)
    )
    rows = await session.execute(statement)
    return [(entry, wish) for entry, wish in rows.all()]


class PoolEntryRow(NamedTuple):
    """A pool entry as a summary reads it (like a ``ClaimEventWish``)."""

    community_id: int
    slots_free_at_open: int | None


class PooledWishRow(NamedTuple):
    """A pooled wish as a summary reads it (like a ``Wish``)."""

    id: int
    title: str
    category: str
    community_id: int | None
    slots_total: int
    slots_claimed: int
    status: str


class EventClaimRow(NamedTuple):
    """An event claim as a summary reads it (like a ``Claim``)."""

    id: int
    wish_id: int
    member_id: int
    slots: int
    status: str
    created_at: datetime
    ended_at: datetime | None = None


def _summary_statements(
    since: bool,
) -> tuple[Select[*TupleAny], Select[*TupleAny]]:
    """The reads of an event's pool and claims for its summary (all, or only rows written
    since a sync read point): just the columns it shows, as plain rows."""
    event = bindparam("event_id", type_=BigInteger)
    pool = (
        select(
            ClaimEventWish.community_id.label("entry_community_id"),
            ClaimEventWish.slots_free_at_open,
            *[getattr(Wish, name) for name in PooledWishRow._fields],
        )
        .join(Wish, Wish.id == ClaimEventWish.wish_id)
        .where(
            ClaimEventWish.event_id == event,
            or_(
                ClaimEventWish.state == PoolState.pooled.value,
                ClaimEventWish.state == PoolState.returned.value,
            ),
        )
        .order_by(ClaimEventWish.wish_id)
    )
    claims = (
        select(*[getattr(Claim, name) for name in EventClaimRow._fields], User.display_name)
        .join(User, User.id == Claim.member_id)
        .where(Claim.event_id == event)
        .order_by(Claim.id)
    )
    if since:
        version = bindparam("since", type_=BigInteger)
        pool = pool.where(Wish.sync_version >= version)
        claims = claims.where(Claim.sync_version >= version)
    return pool, claims


_SUMMARY_READS = {since: _summary_statements(since) for since in (False, True)}


async def summary_rows(
    session: AsyncSession, event_id: int, *, changed_since: int | None = None
) -> tuple[list[tuple[PoolEntryRow, PooledWishRow]], list[tuple[EventClaimRow, str]]]:
    """What an event's summary is made of (``service.summary_of``): its pool entries with
    their wishes, in wish id order, and its claims with the claimers' names, in id order;
    with ``changed_since`` (a sync read point, see ``app.sync``), only rows written since.
    Plain rows of the columns shown: the live feed reads them several times a second in a
    rush, and loading ORM objects was most of what a feed cost the server."""
    pool, claims = _SUMMARY_READS[changed_since is not None]
    params = {"event_id": event_id, "since": changed_since}
    entries = [
        (
            PoolEntryRow(row.entry_community_id, row.slots_free_at_open),
            PooledWishRow(*(getattr(row, name) for name in PooledWishRow._fields)),
        )
        for row in await fetch_all_in_request(session, pool, params)
    ]
    made = [
        (EventClaimRow(*(getattr(row, name) for name in EventClaimRow._fields)), row.display_name)
        for row in await fetch_all_in_request(session, claims, params)
    ]
    return entries, made


async def pool_counts(
    session: AsyncSession, event_ids: Sequence[int]
) -> dict[int, tuple[int, int]]:
    """(wishes pooled, slots offered) per event: each wish's slots free at opening, or its
    live event claims' slots where more (``service.slots_offered``)."""
    if not event_ids:
        return {}
    per_wish = (
        select(Claim.event_id, Claim.wish_id, func.sum(Claim.slots).label("slots"))
        .join(ClaimEvent, ClaimEvent.id == Claim.event_id)
        .where(Claim.event_id.in_(list(event_ids)), _counted_in_event())
        .group_by(Claim.event_id, Claim.wish_id)
        .subquery()
    )
    free = func.coalesce(ClaimEventWish.slots_free_at_open, 0)
    claimed = func.coalesce(per_wish.c.slots, 0)
    rows = await session.execute(
        select(
            ClaimEventWish.event_id,
            func.count(),
            func.coalesce(func.sum(case((claimed > free, claimed), else_=free)), 0),
        )
        .select_from(ClaimEventWish)
        .outerjoin(
            per_wish,
            and_(
                per_wish.c.event_id == ClaimEventWish.event_id,
                per_wish.c.wish_id == ClaimEventWish.wish_id,
            ),
        )
        .where(
            ClaimEventWish.event_id.in_(list(event_ids)),
            ClaimEventWish.state.in_([PoolState.pooled.value, PoolState.returned.value]),
        )
        .group_by(ClaimEventWish.event_id)
    )
    return _pairs_by_event(rows.all())


async def claimed_slots(
    session: AsyncSession, event_ids: Sequence[int]
) -> dict[int, tuple[int, int]]:
    """(slots held by live event claims, distinct claimers) per event; of a closed event,
    by those live at its close."""
    if not event_ids:
        return {}
    rows = await session.execute(
        select(
            Claim.event_id,
            func.coalesce(func.sum(Claim.slots), 0),
            func.count(Claim.member_id.distinct()),
        )
        .join(ClaimEvent, ClaimEvent.id == Claim.event_id)
        .where(Claim.event_id.in_(list(event_ids)), _counted_in_event())
        .group_by(Claim.event_id)
    )
    return _pairs_by_event(rows.all())


def _pairs_by_event(rows: Sequence[Any]) -> dict[int, tuple[int, int]]:
    """(event id, a, b) aggregate rows as {event id: (a, b)}; NULL sums count as 0."""
    return {int(row[0]): (int(row[1] or 0), int(row[2] or 0)) for row in rows if row[0] is not None}
