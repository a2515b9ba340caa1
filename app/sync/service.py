"""Delta sync: what changed for a user since their last sync, with tombstones.

**Versions.** Database triggers stamp every written row of ``wishes``, ``claims`` and
``notifications`` with ``sync_version`` (migration 0010), whatever statement wrote it. On
PostgreSQL that is the writing transaction's id; on SQLite a counter bumped per row.

**Tokens.** A pass reads, first thing in its transaction, the *read point*: on PostgreSQL
its snapshot's xmin, on SQLite the counter plus one. Everything the pass cannot see is
stamped at or above it: on PostgreSQL because every transaction with an id below xmin had
ended before the snapshot, and one still running (or not yet started) has an id >= xmin,
whenever it commits: out-of-order commits are caught, which ``updated_at > since`` or a
sequence would miss; on SQLite because writers are serialized, so a writer the reader
cannot see counts on from the last committed counter. The next pass returns rows stamped
at or after the read point: it may repeat a change (the client upserts), never misses one.
The read point is the pass's first statement; in READ COMMITTED each later statement sees at
least what it saw, and what commits between two statements comes again next time, so a page
that mixes two moments is put right by the next sync. (REPEATABLE READ would give one
snapshot per page, but the foreign-key check of an audit row then fails with a
serialization error when its wish was locked FOR UPDATE and changed meanwhile, as a
withdrawal does.)

**What a user's sync holds.** Wishes: theirs (as resident or creator), those they hold a
live (active or fulfilled) claim on, and the open wishes of their communities (a member's
home community and the communities of the wishes for them), each exactly as
``GET /v1/wishes/{id}`` shows it to them (masking, audit). Their claims (with the wish
brief, as ``GET /v1/me/claims``). Their notifications. A changed wish the client may hold
but that left the set (e.g. claimed full by others, cancelled, expired, their claim ended) or
that they may no longer see is a **tombstone**. Claims and notifications are never deleted
and always visible to their owner, so they have none. What the set covers is summed up in a
fingerprint (user, admin flag, organizer grants, communities): when it changes, rows that did
not change may enter or leave the set, or show differently, so the answer is a full
snapshot (``reset``) instead of a delta.

**Pages.** Entries come in a fixed order (wishes, claims, notifications; each by id); a page
ends after ``limit`` entries with ``has_more`` and a token that resumes after the last one.
All pages of a pass use the base of the token that started it, and the pass ends with the
read point of its *first* page, so a change made while it was being paged comes again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.claims.models import Claim
from app.core.actor import Actor
from app.core.db import utcnow
from app.core.errors import Gone, ValidationFailed
from app.notifications.models import Notification
from app.regions.access import Scope, scope_of
from app.sync import repository, tokens
from app.sync.tokens import SECTIONS, Position, SyncToken
from app.wishes import service as wishes_service
from app.wishes.models import Wish, WishStatus
from app.wishes.service import Relation, WishView


@dataclass(frozen=True)
class Tombstone:
    type: Literal["wish", "claim", "notification"]
    id: int


@dataclass
class SyncBatch:
    """One page of a pass. ``reset``: the client drops what it holds before applying it."""

    reset: bool
    next_token: str = ""
    has_more: bool = False
    wishes: list[WishView] = field(default_factory=list)
    claims: list[tuple[Claim, Wish]] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    tombstones: list[Tombstone] = field(default_factory=list)


@dataclass(frozen=True)
class _Pass:
    base: int | None
    base_at: int | None
    floor: int
    floor_at: int
    position: Position | None


def fingerprint(scope: Scope, communities: Sequence[int]) -> str:
    """What the sync set and the masking depend on beyond the stamped rows themselves."""
    grants = sorted((grant.kind, grant.region_id) for grant in scope.grants)
    raw = json.dumps([scope.user_id, scope.is_admin, grants, list(communities)])
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _start(
    token: SyncToken | None, *, fingerprint: str, version: int, now: int
) -> tuple[_Pass, bool]:
    """The pass this request continues or begins, and whether it is a reset."""
    if token is None or token.fingerprint != fingerprint:
        return _Pass(None, None, version, now, None), True
    if token.position is None:
        return _Pass(token.base, token.base_at, version, now, None), False
    # Both set whenever a position is (tokens.decode checks).
    assert token.floor is not None
    assert token.floor_at is not None
    return _Pass(token.base, token.base_at, token.floor, token.floor_at, token.position), False


async def _wish_entries(
    session: AsyncSession,
    scope: Scope,
    communities: Sequence[int],
    rows: Sequence[Wish],
    batch: SyncBatch,
) -> None:
    user_id = scope.user_id
    live = await repository.live_claimed(session, user_id, (wish.id for wish in rows))

    def held(wish: Wish) -> bool:
        return (
            user_id in (wish.resident_id, wish.creator_id)
            or wish.id in live
            or (wish.community_id in communities and wish.status == WishStatus.open.value)
        )

    for view in await wishes_service.views_of(session, scope, [w for w in rows if held(w)]):
        if view.relation == Relation.none:
            batch.tombstones.append(Tombstone("wish", view.wish.id))
        else:
            batch.wishes.append(view)
    batch.tombstones.extend(Tombstone("wish", wish.id) for wish in rows if not held(wish))


async def sync(
    session: AsyncSession,
    actor: Actor,
    *,
    since: str | None,
    limit: int,
    token_ttl: timedelta,
) -> SyncBatch:
    # The read point first: in READ COMMITTED too, any later read would only see more.
    point = await repository.read_point(session)
    now = int(utcnow().timestamp())
    token = tokens.decode(since) if since is not None else None
    if token is not None:
        if token.user_id != actor.user_id:
            raise ValidationFailed("invalid_sync_token")
        oldest = token.oldest_at
        if token.epoch != point.epoch or (
            oldest is not None and now - oldest > token_ttl.total_seconds()
        ):
            raise Gone("sync_token_expired")
    scope = await scope_of(session, actor)
    communities = await repository.communities_of(session, actor.user_id)
    current = fingerprint(scope, communities)
    run, reset = _start(token, fingerprint=current, version=point.version, now=now)

    batch = SyncBatch(reset=reset)
    remaining = limit
    first = SECTIONS.index(run.position.section) if run.position else 0
    next_position: Position | None = None
    for index in range(first, len(SECTIONS)):
        section = SECTIONS[index]
        after_id = run.position.after_id if run.position and index == first else 0
        # One more than fits: whether the page is full. At 0 left this only peeks.
        fetch = remaining + 1
        ids: list[int]
        if section == "wishes":
            wishes = await repository.wishes(
                session,
                user_id=actor.user_id,
                communities=communities,
                since=run.base,
                after_id=after_id,
                limit=fetch,
            )
            taken_wishes = wishes[:remaining]
            await _wish_entries(session, scope, communities, taken_wishes, batch)
            ids, found = [wish.id for wish in taken_wishes], len(wishes)
        elif section == "claims":
            claims = await repository.claims(
                session, user_id=actor.user_id, since=run.base, after_id=after_id, limit=fetch
            )
            batch.claims.extend(claims[:remaining])
            ids, found = [claim.id for claim, _ in claims[:remaining]], len(claims)
        else:
            notes = await repository.notifications(
                session, user_id=actor.user_id, since=run.base, after_id=after_id, limit=fetch
            )
            batch.notifications.extend(notes[:remaining])
            ids, found = [note.id for note in notes[:remaining]], len(notes)
        if found > remaining:
            next_position = Position(section, ids[-1] if ids else after_id)
            break
        remaining -= found

    if next_position is not None:
        next_token = SyncToken(
            epoch=point.epoch,
            user_id=actor.user_id,
            fingerprint=current,
            base=run.base,
            base_at=run.base_at,
            position=next_position,
            floor=run.floor,
            floor_at=run.floor_at,
        )
    else:
        next_token = SyncToken(
            epoch=point.epoch,
            user_id=actor.user_id,
            fingerprint=current,
            base=run.floor,
            base_at=run.floor_at,
        )
    batch.next_token = tokens.encode(next_token)
    batch.has_more = next_position is not None
    return batch
