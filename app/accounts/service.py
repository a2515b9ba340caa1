"""Registration, password and OTP login, refresh-token rotation, and the current user."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import otp, repository
from app.accounts.models import RefreshToken, User
from app.accounts.schemas import GrantSummary, MemberSummary, Role, TokenPair, UserRead
from app.core.actor import Actor
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import BadRequest, Conflict, TooManyRequests, Unauthorized
from app.core.ratelimit import RateLimits
from app.core.security import (
    hash_password,
    hash_refresh_token,
    issue_access_token,
    new_refresh_token,
    verify_password,
)
from app.core.sms import SmsOutbox
from app.members import repository as members_repository
from app.regions import repository as regions_repository


async def register(session: AsyncSession, *, phone: str, password: str, display_name: str) -> User:
    if await repository.phone_exists(session, phone):
        raise Conflict("phone_taken")
    user = User(phone=phone, display_name=display_name, password_hash=await hash_password(password))
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # registered concurrently
        raise Conflict("phone_taken") from exc
    return user


async def _issue_tokens(
    session: AsyncSession, *, user_id: int, family_id: str, settings: Settings
) -> TokenPair:
    refresh_token = new_refresh_token()
    session.add(
        RefreshToken(
            user_id=user_id,
            family_id=family_id,
            token_hash=hash_refresh_token(refresh_token),
            expires_at=utcnow() + timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    await session.flush()
    return TokenPair(
        access_token=issue_access_token(
            user_id=user_id,
            secret_key=settings.secret_key,
            ttl_seconds=settings.access_token_ttl_seconds,
        ),
        refresh_token=refresh_token,
        expires_in=settings.access_token_ttl_seconds,
        refresh_expires_in=settings.refresh_token_ttl_seconds,
    )


async def issue_tokens_for(session: AsyncSession, *, user_id: int, settings: Settings) -> TokenPair:
    """A new login: a fresh refresh-token family."""
    return await _issue_tokens(
        session, user_id=user_id, family_id=uuid.uuid4().hex, settings=settings
    )


async def login(
    session: AsyncSession, *, phone: str, password: str, settings: Settings, limits: RateLimits
) -> TokenPair:
    # Per phone, every try since the last good login: password guessing on one account is
    # throttled from any number of addresses (the router limits each address's failures
    # too). Counted before the password is checked, so a burst of guesses at once gets no
    # more tries than guesses one by one; a good login starts the count again, so someone
    # logging in often on several devices is never refused.
    user = await repository.get_by_phone(session, phone)
    # The count is kept per login (the family of the newest refresh token: a new one at
    # every login, the same when the app only refreshes), so it starts again after a good
    # login and not whenever the owner's app refreshes. Read for unknown phones too: the
    # same work either way.
    since_login = await repository.latest_login(session, user.id if user else 0)
    await limits.hit(
        limits.login_phone, "login_phone", otp.phone_key(phone, settings.secret_key), since_login
    )
    # verify_password hashes even for an unknown phone, so timing does not tell which it was.
    if not await verify_password(password, user.password_hash if user else None) or user is None:
        raise Unauthorized("invalid_credentials")
    return await issue_tokens_for(session, user_id=user.id, settings=settings)


@dataclass(frozen=True)
class OtpSent:
    expires_in: int
    resend_after: int


async def request_otp(
    session: AsyncSession,
    *,
    phone: str,
    settings: Settings,
    limits: RateLimits,
    sms: SmsOutbox,
) -> OtpSent:
    """Store a new login code for ``phone`` and text it once the transaction commits.

    The same for registered and unknown phones (the first login registers), so the answer
    tells nobody whether a number has an account."""
    now = utcnow()
    code = otp.new_code()
    stored = await repository.store_otp_code(
        session,
        phone=phone,
        code_hash=otp.code_hash(phone, code, settings.secret_key),
        now=now,
        expires_at=now + timedelta(seconds=settings.otp_ttl_seconds),
        last_sent_before=now - timedelta(seconds=settings.otp_resend_seconds),
    )
    if not stored:
        current = await repository.get_otp_code(session, phone)
        wait = 1.0
        if current is not None:
            resend_at = current.created_at + timedelta(seconds=settings.otp_resend_seconds)
            wait = (resend_at - now).total_seconds()
        retry_after = max(1, math.ceil(wait))
        raise TooManyRequests(
            "otp_cooldown",
            extra={"retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
            retry_after=retry_after,
        )
    # Counted only for codes really sent, not for taps during the cooldown; a refusal here
    # rolls the stored code back with the rest of the transaction.
    await limits.hit(limits.otp_phone, "otp_phone", otp.phone_key(phone, settings.secret_key))
    sms.send_after_commit(session, otp.login_sms(phone, code, settings.otp_ttl_seconds))
    return OtpSent(expires_in=settings.otp_ttl_seconds, resend_after=settings.otp_resend_seconds)


async def verify_otp(
    session: AsyncSession, *, phone: str, code: str, settings: Settings
) -> TokenPair:
    """Log in with the code texted to ``phone``, registering the user on their first login.

    Every attempt, right or wrong, is counted in the same statement that checks the code,
    so at most ``otp_max_attempts`` guesses are ever compared and the code logs in once."""
    now = utcnow()
    outcome = await repository.attempt_otp_code(
        session,
        phone=phone,
        code_hash=otp.code_hash(phone, code, settings.secret_key),
        now=now,
        max_attempts=settings.otp_max_attempts,
    )
    if outcome is None:
        current = await repository.get_otp_code(session, phone)
        if (
            current is not None
            and current.used_at is None
            and current.expires_at > now
            and current.attempts >= settings.otp_max_attempts
        ):
            raise BadRequest("otp_attempts_exceeded")
        raise BadRequest("otp_expired")
    matched, attempts = outcome
    if not matched:
        remaining = max(settings.otp_max_attempts - attempts, 0)
        # The failed attempt stays counted although the request fails.
        raise BadRequest(
            "otp_invalid",
            extra={"attempts_remaining": remaining},
            keep_changes=True,
            attempts_remaining=remaining,
        )
    user = await _user_for_otp_login(session, phone)
    return await issue_tokens_for(session, user_id=user.id, settings=settings)


async def _user_for_otp_login(session: AsyncSession, phone: str) -> User:
    user = await repository.get_by_phone(session, phone)
    if user is not None:
        return user
    user = User(phone=phone, display_name=otp.default_display_name(phone), password_hash=None)
    try:
        async with session.begin_nested():
            session.add(user)
            await session.flush()
    except IntegrityError:  # registered with a password at this very moment
        existing = await repository.get_by_phone(session, phone)
        if existing is None:
            raise
        return existing
    return user


async def purge_expired_otp_codes(session: AsyncSession) -> None:
    """Clock job: expired codes are useless, and their phones are personal data."""
    await repository.delete_expired_otp_codes(session, utcnow())


async def refresh(session: AsyncSession, *, refresh_token: str, settings: Settings) -> TokenPair:
    now = utcnow()
    stored = await repository.get_refresh_token(session, hash_refresh_token(refresh_token))
    if stored is None or stored.revoked_at is not None or stored.expires_at <= now:
        raise Unauthorized("invalid_refresh_token")
    if not await repository.spend_refresh_token(session, stored.id, now):
        # Spent already: someone replayed it. Log the whole family out, and keep that
        # revocation although the request fails.
        await repository.revoke_family(session, stored.family_id, now)
        raise Unauthorized("invalid_refresh_token", keep_changes=True)
    return await _issue_tokens(
        session, user_id=stored.user_id, family_id=stored.family_id, settings=settings
    )


async def describe_user(session: AsyncSession, user: User) -> UserRead:
    grants = await regions_repository.grants_with_regions(session, user.id)
    member = await members_repository.get(session, user.id)
    roles: list[Role] = ["resident"]
    if member is not None and member.status == "active":
        roles.append("member")
    if grants:
        roles.append("organizer")
    if user.is_admin:
        roles.append("admin")
    return UserRead(
        id=user.id,
        phone=user.phone,
        display_name=user.display_name,
        roles=roles,
        grants=[
            GrantSummary(region_id=region.id, region_kind=region.kind, region_name=region.name)
            for _grant, region in grants
        ],
        member=MemberSummary(
            community_id=member.community_id,
            status=member.status,
            capacity=member.capacity,
            active_claims=member.active_claims,
            capacity_remaining=max(member.capacity - member.active_claims, 0),
        )
        if member
        else None,
        created_at=user.created_at,
    )


async def me(session: AsyncSession, actor: Actor) -> UserRead:
    user = await session.get(User, actor.user_id)
    if user is None:
        raise Unauthorized()
    return await describe_user(session, user)
