from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from starlette.requests import Request

from app.accounts import service
from app.accounts.schemas import (
    OtpRequest,
    OtpSentRead,
    OtpVerify,
    RefreshRequest,
    RegisterRequest,
    TokenPair,
    TokenRequest,
    UserRead,
)
from app.core.auth import CurrentActor
from app.core.conditional import tagged_read
from app.core.deps import AppSettings, DbSession
from app.core.errors import BadRequest, Conflict, Unauthorized
from app.core.nobody import Route
from app.core.problems import problem_responses
from app.core.ratelimit import RateLimits, client_ip
from app.core.sms import SmsOutbox

router = APIRouter(route_class=Route, tags=["accounts"])


async def _rate_limits(request: Request) -> RateLimits:
    limits: RateLimits = request.app.state.rate_limits
    return limits


async def _sms_outbox(request: Request) -> SmsOutbox:
    outbox: SmsOutbox = request.app.state.sms
    return outbox


Limits = Annotated[RateLimits, Depends(_rate_limits)]
Sms = Annotated[SmsOutbox, Depends(_sms_outbox)]


# Per-address limits run as route dependencies: before the request's transaction is opened,
# so a flood of refused requests never takes the database (or SQLite's write lock).
async def _limit_auth_failures_per_ip(request: Request, limits: Limits) -> AsyncIterator[None]:
    """Failed attempts per address: a wrong password, refresh token or code (guessing), or
    a phone already registered (finding out who has an account). Once they reach the limit,
    every auth request from the address is refused until the window moves. Successes are
    not counted: a service centre, a carrier's NAT or a test suite signs many people up and
    in from one address."""
    key = client_ip(request)
    await limits.check(limits.auth_ip, "auth_ip", key)
    try:
        yield
    except (BadRequest, Unauthorized, Conflict):
        await limits.count(limits.auth_ip, "auth_ip", key)
        raise


async def _limit_otp_per_ip(request: Request, limits: Limits) -> None:
    await limits.hit(limits.otp_ip, "otp_ip", client_ip(request))


AUTH_PER_IP = [Depends(_limit_auth_failures_per_ip)]
OTP_PER_IP = [Depends(_limit_otp_per_ip)]


@router.post(
    "/v1/auth/register",
    status_code=201,
    summary="Register with phone and password (as a resident)",
    description="409 `phone_taken`; 429 `rate_limited` (too many failed auth attempts from this "
    "address) with `Retry-After`.",
    dependencies=AUTH_PER_IP,
    responses=problem_responses(400, 409, 422, 429),
)
async def register(body: RegisterRequest, session: DbSession) -> UserRead:
    user = await service.register(
        session, phone=body.phone, password=body.password, display_name=body.display_name
    )
    return await service.describe_user(session, user)


@router.post(
    "/v1/auth/token",
    summary="Log in with phone and password",
    description="401 `invalid_credentials`; 429 `rate_limited` with `Retry-After`, per phone "
    "and per client address (failed attempts; password guessing is throttled).",
    dependencies=AUTH_PER_IP,
    responses=problem_responses(400, 401, 422, 429),
)
async def issue_token(
    body: TokenRequest, session: DbSession, settings: AppSettings, limits: Limits
) -> TokenPair:
    return await service.login(
        session, phone=body.phone, password=body.password, settings=settings, limits=limits
    )


@router.post(
    "/v1/auth/refresh",
    summary="Exchange a refresh token for a new pair (the old one is spent)",
    description="401 `invalid_refresh_token`; 429 `rate_limited` (too many failed attempts "
    "from this address).",
    dependencies=AUTH_PER_IP,
    responses=problem_responses(400, 401, 422, 429),
)
async def refresh_token(
    body: RefreshRequest, session: DbSession, settings: AppSettings
) -> TokenPair:
    return await service.refresh(session, refresh_token=body.refresh_token, settings=settings)


@router.post(
    "/v1/auth/otp/request",
    status_code=202,
    summary="Text a 6-digit login code to a phone",
    description="The same answer whether or not the phone has an account (the first login "
    "with a code registers it). The code is valid `expires_in` seconds, for one login and "
    "at most 5 tries; asking again replaces it. 429 with `Retry-After`: `otp_cooldown` "
    "(another code within `resend_after` seconds of the last), `rate_limited` (too many "
    "codes for this phone or from this address).",
    dependencies=OTP_PER_IP,
    responses=problem_responses(400, 422, 429),
)
async def request_otp(
    body: OtpRequest, session: DbSession, settings: AppSettings, limits: Limits, sms: Sms
) -> OtpSentRead:
    sent = await service.request_otp(
        session, phone=body.phone, settings=settings, limits=limits, sms=sms
    )
    return OtpSentRead(expires_in=sent.expires_in, resend_after=sent.resend_after)


@router.post(
    "/v1/auth/otp/verify",
    summary="Log in with a texted code (registers the phone on its first login)",
    description="The same token pair as `POST /v1/auth/token`. 400 `otp_invalid` (wrong "
    "code, with `attempts_remaining`), `otp_attempts_exceeded` (the code is dead after 5 "
    "wrong tries), `otp_expired` (expired, used, or never sent): ask for a new code. 429 "
    "`rate_limited` (too many failed attempts from this address) with `Retry-After`.",
    dependencies=AUTH_PER_IP,
    responses=problem_responses(400, 422, 429),
)
async def verify_otp(body: OtpVerify, session: DbSession, settings: AppSettings) -> TokenPair:
    return await service.verify_otp(session, phone=body.phone, code=body.code, settings=settings)


@router.get(
    "/v1/me",
    summary="The current user, roles and grants (with an ETag)",
    responses={**problem_responses(401), 304: {"description": "Not modified"}},
)
async def get_me(
    request: Request, response: Response, session: DbSession, actor: CurrentActor
) -> UserRead:
    me = await service.me(session, actor)
    unchanged = tagged_read(request, response, "me", actor.user_id, me)
    return me if unchanged is None else unchanged  # type: ignore[return-value]
