"""Recommendations and batch matching runs: load from the database, call the pure engine,
store and apply the result."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.claims import repository as claims_repository
from app.claims import service as claims_service
from app.claims.models import ClaimSource
from app.core.actor import Actor
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import DomainError, Forbidden, InvalidState, NotFound, ValidationFailed
from app.core.types import rfc3339
from app.matching import engine, repository
from app.matching.models import MatchingAssignment, MatchingRun
from app.members import repository as members_repository
from app.members.models import MemberStatus
from app.notifications import service as notifications
from app.notifications.models import NotificationKind
from app.regions import repository as regions_repository
from app.regions.access import require_region_scope, scope_of
from app.wishes import repository as wishes_repository
from app.wishes.models import Wish


def weights_from(settings: Settings) -> engine.Weights:
    return engine.Weights(
        category=settings.match_weight_category,
        text=settings.match_weight_text,
        locality=settings.match_weight_locality,
        capacity=settings.match_weight_capacity,
        urgency=settings.match_weight_urgency,
        fairness=settings.match_weight_fairness,
    )


@dataclass(frozen=True)
class Ranked:
    candidate: engine.Candidate
    category_label: tuple[str, str]
    display_name: str = ""
    capacity_remaining: int = 0
    wish: Wish | None = None


async def wish_candidates(
    session: AsyncSession, actor: Actor, *, wish_id: int, limit: int, settings: Settings
) -> list[Ranked]:
    """Members ranked for one wish (organizer in scope)."""
    wish = await wishes_repository.get(session, wish_id)
    if wish is None:
        raise NotFound(resource="wish")
    if not (await scope_of(session, actor)).covers(wish):
        raise Forbidden(reason="out_of_scope")
    region = await regions_repository.get(session, wish.region_id)
    assert region is not None
    now = utcnow()
    open_ = await repository.open_wishes(session, now=now, wish_ids=[wish_id])
    if not open_:
        return []
    members = await repository.members_reaching(session, region=region)
    inputs = await repository.member_inputs(session, members, wish_ids=[wish_id], now=now)
    table = engine.rank(
        [repository.wish_input(open_[0])],
        inputs,
        now=now,
        weights=weights_from(settings),
        per_wish=limit,
    )
    candidates = table.rows()
    names = await repository.display_names(session, [c.member_id for c in candidates])
    labels = await repository.category_labels(session)
    free = {m.id: m.free_capacity for m in inputs}
    return [
        Ranked(
            candidate=c,
            category_label=labels.get(wish.category, (wish.category, wish.category)),
            display_name=names.get(c.member_id, ""),
            capacity_remaining=free[c.member_id],
        )
        for c in candidates
    ]


async def recommendations(
    session: AsyncSession, actor: Actor, *, limit: int, settings: Settings
) -> list[Ranked]:
    """Open wishes in the member's area, best first."""
    member = await members_repository.get(session, actor.user_id)
    if member is None:
        raise Forbidden("not_a_member")  # as a claim would answer
    if member.status != MemberStatus.active.value:
        raise Forbidden("member_not_active", extra={"member_status": member.status})
    now = utcnow()
    areas = await members_repository.area_region_ids(session, actor.user_id)
    wishes = await repository.open_wishes(session, now=now, area_region_ids=sorted(areas))
    wishes = [w for w in wishes if actor.user_id not in (w.resident_id, w.creator_id)]
    inputs = await repository.member_inputs(
        session, [member], wish_ids=[w.id for w in wishes], now=now
    )
    table = engine.rank(
        [repository.wish_input(w) for w in wishes],
        inputs,
        now=now,
        weights=weights_from(settings),
        per_wish=1,
    )
    best = sorted(table.rows(), key=lambda c: (-c.score, c.wish_id))[:limit]
    labels = await repository.category_labels(session)
    by_id = {w.id: w for w in wishes}
    return [
        Ranked(
            candidate=c,
            category_label=labels.get(by_id[c.wish_id].category, ("", "")),
            wish=by_id[c.wish_id],
        )
        for c in best
    ]


async def create_run(
    session: AsyncSession,
    actor: Actor,
    *,
    region_id: int,
    wish_ids: list[int] | None,
    member_ids: list[int] | None,
    settings: Settings,
) -> MatchingRun:
    region = await require_region_scope(session, actor, region_id)
    now = utcnow()
    weights = weights_from(settings)
    wishes = await repository.open_wishes(session, now=now, region=region, wish_ids=wish_ids)
    if wish_ids is not None and len(wishes) != len(set(wish_ids)):
        missing = sorted(set(wish_ids) - {w.id for w in wishes})
        raise ValidationFailed("wishes_not_matchable", wish_ids=", ".join(map(str, missing[:20])))
    members = await repository.members_reaching(session, region=region, member_ids=member_ids)
    wish_inputs = [repository.wish_input(w) for w in wishes]
    member_inputs = await repository.member_inputs(
        session, members, wish_ids=[w.id for w in wishes], now=now
    )
    started = time.perf_counter()
    table = engine.rank(
        wish_inputs,
        member_inputs,
        now=now,
        weights=weights,
        per_wish=settings.match_candidates_per_wish,
    )
    ranked = time.perf_counter()
    optimal = engine.assign(wish_inputs, member_inputs, table)
    solved = time.perf_counter()
    baseline = engine.greedy(wish_inputs, member_inputs, table)
    spread = engine.load_spread(optimal, member_inputs)
    run = MatchingRun(
        organizer_id=actor.user_id,
        region_id=region.id,
        status="computed",
        inputs=_inputs_record(now, weights, settings, wish_ids, member_ids, wishes, members),
        wish_count=len(wish_inputs),
        member_count=len(member_inputs),
        candidate_count=len(table),
        slots_open=optimal.slots_open,
        slots_filled=optimal.slots_filled,
        total_score=optimal.total_score,
        greedy_slots_filled=baseline.slots_filled,
        greedy_total_score=baseline.total_score,
        load={
            "members": spread.members,
            "max": spread.max_load,
            "mean": spread.mean_load,
            "gini": spread.gini,
        },
        unfilled=[
            {
                "wish_id": w.id,
                "slots_open": w.slots_open,
                "slots_assigned": optimal.filled_by_wish.get(w.id, 0),
            }
            for w in wish_inputs
            if optimal.filled_by_wish.get(w.id, 0) < w.slots_open
        ],
        candidates_ms=round((ranked - started) * 1000),
        solve_ms=round((solved - ranked) * 1000),
        created_at=now,
    )
    session.add(run)
    await session.flush()
    session.add_all(
        MatchingAssignment(
            run_id=run.id,
            wish_id=pair.wish_id,
            member_id=pair.member_id,
            score=pair.score,
            components=pair.components,
            locality_level=pair.locality_level,
            general_help=pair.general_help,
            status="proposed",
        )
        for pair in optimal.pairs
    )
    await session.flush()
    return run


def _inputs_record(
    now: datetime,
    weights: engine.Weights,
    settings: Settings,
    wish_ids: list[int] | None,
    member_ids: list[int] | None,
    wishes: list[Wish],
    members: list[Any],
) -> dict[str, Any]:
    # Enough to recompute the run: the engine is deterministic given these and the rows.
    # Ids as strings and the time in RFC 3339 UTC, as everywhere in the API.
    return {
        "computed_at": rfc3339(now),
        "weights": weights.as_dict(),
        "candidates_per_wish": settings.match_candidates_per_wish,
        "requested_wish_ids": None if wish_ids is None else [str(w) for w in wish_ids],
        "requested_member_ids": None if member_ids is None else [str(m) for m in member_ids],
        "wish_ids": [str(w.id) for w in wishes],
        "member_ids": [str(m.user_id) for m in members],
    }


async def get_run(
    session: AsyncSession, actor: Actor, *, run_id: int
) -> tuple[MatchingRun, list[MatchingAssignment]]:
    run = await repository.get_run(session, run_id)
    if run is None:
        raise NotFound(resource="matching_run")
    await require_region_scope(session, actor, run.region_id)
    return run, await repository.assignments_of(session, run.id)


async def apply_run(
    session: AsyncSession, actor: Actor, *, run_id: int
) -> tuple[MatchingRun, list[MatchingAssignment]]:
    """Turn proposals into claims (source ``match``) through the race-free claim path. Each
    assignment is all or nothing in its own savepoint: one whose wish or member changed since
    the run is skipped with the claim's refusal code; the others still apply."""
    run, assignments = await get_run(session, actor, run_id=run_id)
    if run.status != "computed":
        raise InvalidState(resource="matching_run", current_state=run.status, action="apply")
    now = utcnow()
    if not await repository.mark_applied(session, run.id, actor.user_id, now):
        raise InvalidState(resource="matching_run", current_state="applied", action="apply")
    # The lock order of every claim transaction: the wishes first (in id order), then the
    # members one by one in id order. Claiming pair by pair in the run's order would hold
    # one member while waiting for the next wish, and deadlock with a direct claim holding
    # that wish and waiting for the member.
    await claims_repository.lock_wishes(session, (a.wish_id for a in assignments))
    matched: list[tuple[int, int, dict[str, Any]]] = []
    for assignment in sorted(assignments, key=lambda a: (a.member_id, a.wish_id)):
        try:
            async with session.begin_nested():
                claim = await claims_service.claim_wish(
                    session,
                    Actor(user_id=assignment.member_id),
                    wish_id=assignment.wish_id,
                    slots=1,
                    source=ClaimSource.match,
                )
        except DomainError as refusal:
            assignment.status = "skipped"
            assignment.skip_reason = refusal.code
        else:
            assignment.status = "applied"
            assignment.claim_id = claim.id
            matched.append(
                (
                    assignment.member_id,
                    assignment.wish_id,
                    {"run_id": str(run.id), "claim_id": str(claim.id)},
                )
            )
    await session.flush()
    # Each member given a wish hears of it (its resident heard of the claim already).
    await notifications.notify_about_wishes(
        session, kind=NotificationKind.match_proposed, rows=matched
    )
    return await get_run(session, actor, run_id=run_id)
