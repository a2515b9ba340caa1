from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.requests import Request

from app.core.auth import CurrentActor
from app.core.deps import AppSettings, DbSession
from app.core.i18n import Lang, negotiate_language
from app.core.nobody import Route
from app.core.problems import problem_responses
from app.core.types import MAX_ID, PathDigits
from app.matching import service
from app.matching.explain import breakdown
from app.matching.models import MatchingAssignment, MatchingRun
from app.matching.schemas import (
    AssignmentRead,
    CandidateList,
    CandidateRead,
    LoadRead,
    MatchingRunCreate,
    MatchingRunRead,
    Objective,
    RecommendationList,
    RecommendationRead,
    RecommendedWish,
    ScoreBreakdown,
    ScoreComponent,
    UnfilledWish,
)

router = APIRouter(route_class=Route, tags=["matching"])

RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="Matching run id."), PathDigits]
WishId = Annotated[int, Path(ge=1, le=MAX_ID, description="Wish id."), PathDigits]
Limit = Annotated[int, Query(ge=1, le=100, description="How many, best first (1–100).")]


def _lang(request: Request) -> Lang:
    return negotiate_language(request.headers.get("accept-language"))


def _breakdown(ranked: service.Ranked, settings: AppSettings, lang: Lang) -> ScoreBreakdown:
    weights = service.weights_from(settings)
    return ScoreBreakdown(
        score=ranked.candidate.score,
        locality_level=ranked.candidate.locality_level,
        components=[
            ScoreComponent.model_validate(part)
            for part in breakdown(ranked.candidate, weights, lang, ranked.category_label)
        ],
    )


@router.get(
    "/v1/wishes/{wish_id}/candidates",
    summary="Members ranked for a wish, with the score explained (organizer in scope)",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_wish_candidates(
    wish_id: WishId,
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    settings: AppSettings,
    limit: Limit = 20,
) -> CandidateList:
    ranked = await service.wish_candidates(
        session, actor, wish_id=wish_id, limit=limit, settings=settings
    )
    lang = _lang(request)
    return CandidateList(
        items=[
            CandidateRead(
                member_id=r.candidate.member_id,
                display_name=r.display_name,
                capacity_remaining=r.capacity_remaining,
                breakdown=_breakdown(r, settings, lang),
            )
            for r in ranked
        ]
    )


@router.get(
    "/v1/me/recommendations",
    summary="Open wishes in my area ranked for me, with the score explained (member)",
    responses=problem_responses(401, 403, 404, 422),
)
async def list_my_recommendations(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    settings: AppSettings,
    limit: Limit = 20,
) -> RecommendationList:
    ranked = await service.recommendations(session, actor, limit=limit, settings=settings)
    lang = _lang(request)
    items = []
    for r in ranked:
        assert r.wish is not None
        items.append(
            RecommendationRead(
                wish=RecommendedWish(
                    id=r.wish.id,
                    title=r.wish.title,
                    category=r.wish.category,
                    region_id=r.wish.region_id,
                    slots_remaining=r.wish.slots_total - r.wish.slots_claimed,
                    deadline=r.wish.deadline,
                ),
                breakdown=_breakdown(r, settings, lang),
            )
        )
    return RecommendationList(items=items)


def run_read(run: MatchingRun, assignments: list[MatchingAssignment]) -> MatchingRunRead:
    return MatchingRunRead(
        id=run.id,
        region_id=run.region_id,
        status=run.status,
        wish_count=run.wish_count,
        member_count=run.member_count,
        candidate_count=run.candidate_count,
        optimal=Objective(
            slots_open=run.slots_open, slots_filled=run.slots_filled, total_score=run.total_score
        ),
        greedy=Objective(
            slots_open=run.slots_open,
            slots_filled=run.greedy_slots_filled,
            total_score=run.greedy_total_score,
        ),
        load=LoadRead.model_validate(run.load),
        candidates_ms=run.candidates_ms,
        solve_ms=run.solve_ms,
        inputs=run.inputs,
        assignments=[
            AssignmentRead(
                wish_id=a.wish_id,
                member_id=a.member_id,
                score=a.score,
                components=a.components,
                locality_level=a.locality_level,
                status=a.status,
                skip_reason=a.skip_reason,
                claim_id=a.claim_id,
            )
            for a in assignments
        ],
        unfilled=[UnfilledWish.model_validate(u) for u in run.unfilled],
        applied=sum(a.status == "applied" for a in assignments),
        skipped=sum(a.status == "skipped" for a in assignments),
        created_at=run.created_at,
        applied_at=run.applied_at,
    )


@router.post(
    "/v1/matching/runs",
    status_code=201,
    summary="Compute an optimal assignment of open wishes to members in a region",
    description=(
        "Maximises the slots filled, then the total score, within slots, free capacities and "
        "one claim per (wish, member). Stored with its inputs, objective, load spread and "
        "timings; nothing is claimed until `apply`."
    ),
    responses=problem_responses(400, 401, 403, 404, 422),
)
async def create_matching_run(
    body: MatchingRunCreate, session: DbSession, actor: CurrentActor, settings: AppSettings
) -> MatchingRunRead:
    run = await service.create_run(
        session,
        actor,
        region_id=body.region_id,
        wish_ids=body.wish_ids,
        member_ids=body.member_ids,
        settings=settings,
    )
    _, assignments = await service.get_run(session, actor, run_id=run.id)
    return run_read(run, assignments)


@router.get(
    "/v1/matching/runs/{run_id}",
    summary="A matching run (organizer in scope)",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_matching_run(
    run_id: RunId, session: DbSession, actor: CurrentActor
) -> MatchingRunRead:
    return run_read(*await service.get_run(session, actor, run_id=run_id))


@router.post(
    "/v1/matching/runs/{run_id}/apply",
    summary="Turn a run's assignments into claims (source match); stale ones are skipped",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def apply_matching_run(
    run_id: RunId, session: DbSession, actor: CurrentActor
) -> MatchingRunRead:
    return run_read(*await service.apply_run(session, actor, run_id=run_id))
