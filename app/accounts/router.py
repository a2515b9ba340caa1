from __future__ import annotations

from fastapi import APIRouter

from app.accounts import service
from app.accounts.schemas import RefreshRequest, RegisterRequest, TokenPair, TokenRequest, UserRead
from app.core.auth import CurrentActor
from app.core.deps import AppSettings, DbSession
from app.core.problems import problem_responses

router = APIRouter(tags=["accounts"])


@router.post(
    "/v1/auth/register",
    status_code=201,
    summary="Register with phone and password (as a resident)",
    responses=problem_responses(400, 409, 422),
)
async def register(body: RegisterRequest, session: DbSession) -> UserRead:
    user = await service.register(
        session, phone=body.phone, password=body.password, display_name=body.display_name
    )
    return await service.describe_user(session, user)


@router.post(
    "/v1/auth/token",
    summary="Log in with phone and password",
    responses=problem_responses(400, 401, 422),
)
async def issue_token(body: TokenRequest, session: DbSession, settings: AppSettings) -> TokenPair:
    return await service.login(session, phone=body.phone, password=body.password, settings=settings)


@router.post(
    "/v1/auth/refresh",
    summary="Exchange a refresh token for a new pair (the old one is spent)",
    responses=problem_responses(400, 401, 422),
)
async def refresh_token(
    body: RefreshRequest, session: DbSession, settings: AppSettings
) -> TokenPair:
    return await service.refresh(session, refresh_token=body.refresh_token, settings=settings)


@router.get(
    "/v1/me", summary="The current user, roles and grants", responses=problem_responses(401)
)
async def get_me(session: DbSession, actor: CurrentActor) -> UserRead:
    return await service.me(session, actor)
