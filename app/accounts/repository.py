from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import OtpCode, RefreshToken, User
from app.core.db import UTCDateTime


async def get_by_phone(session: AsyncSession, phone: str) -> User | None:
    return await session.scalar(select(User).where(User.phone == phone))


async def latest_login(session: AsyncSession, user_id: int) -> str:
    """The family of the user's newest refresh token ("" if none): it changes at every login
    (password or code) and stays the same when the app refreshes its tokens."""
    family = await session.scalar(
        select(RefreshToken.family_id)
        .where(RefreshToken.user_id == user_id)
        .order_by(RefreshToken.id.desc())
        .limit(1)
    )
    return family or ""


async def phone_exists(session: AsyncSession, phone: str) -> bool:
    return (await session.scalar(select(User.id).where(User.phone == phone))) is not None


async def get_refresh_token(session: AsyncSession, token_hash: str) -> RefreshToken | None:
    return await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))


async def spend_refresh_token(session: AsyncSession, token_id: int, now: datetime) -> bool:
    """Mark the token spent if nobody has; True only for the one caller that did."""
    spent = await session.scalar(
        update(RefreshToken)
        .where(
            RefreshToken.id == token_id,
            RefreshToken.spent_at.is_(None),
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > now,
        )
        .values(spent_at=now)
        .returning(RefreshToken.id)
    )
    return spent is not None


async def revoke_family(session: AsyncSession, family_id: str, now: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def _insert_otp(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(OtpCode)


async def store_otp_code(
    session: AsyncSession,
    *,
    phone: str,
    code_hash: str,
    now: datetime,
    expires_at: datetime,
    last_sent_before: datetime,
) -> bool:
    """Store a new code for the phone, replacing its previous one only if that was sent
    before ``last_sent_before`` (the resend cooldown). One upsert whose ``DO UPDATE`` has the
    cooldown as its ``WHERE``: of two requests at once, one stores and the other gets no
    row, on either database. True when stored."""
    statement = _insert_otp(session).values(
        phone=phone, code_hash=code_hash, created_at=now, expires_at=expires_at, attempts=0
    )
    statement = statement.on_conflict_do_update(
        index_elements=[OtpCode.phone],
        set_={
            "code_hash": statement.excluded.code_hash,
            "created_at": statement.excluded.created_at,
            "expires_at": statement.excluded.expires_at,
            "attempts": 0,
            "used_at": None,
        },
        where=OtpCode.created_at <= last_sent_before,
    ).returning(OtpCode.phone)
    return (await session.scalar(statement)) is not None


async def attempt_otp_code(
    session: AsyncSession, *, phone: str, code_hash: str, now: datetime, max_attempts: int
) -> tuple[bool, int] | None:
    """One verification attempt, as one conditional UPDATE: on the phone's live code (not
    used, not expired, attempts left) count the attempt and, when ``code_hash`` is the
    code's, mark it used. Concurrent attempts queue on the row, so a code is used at most
    once and never tried more than ``max_attempts`` times. Returns (matched, attempts so
    far), or None when there is no live code."""
    now_value = literal(now, UTCDateTime())
    row = (
        await session.execute(
            update(OtpCode)
            .where(
                OtpCode.phone == phone,
                OtpCode.used_at.is_(None),
                OtpCode.attempts < max_attempts,
                OtpCode.expires_at > now,
            )
            .values(
                attempts=OtpCode.attempts + 1,
                used_at=case((OtpCode.code_hash == code_hash, now_value), else_=None),
            )
            .returning(OtpCode.used_at, OtpCode.attempts)
        )
    ).one_or_none()
    if row is None:
        return None
    used_at, attempts = row
    return used_at is not None, attempts


async def get_otp_code(session: AsyncSession, phone: str) -> OtpCode | None:
    return await session.scalar(
        select(OtpCode).where(OtpCode.phone == phone).execution_options(populate_existing=True)
    )


async def delete_expired_otp_codes(session: AsyncSession, now: datetime) -> None:
    await session.execute(delete(OtpCode).where(OtpCode.expires_at <= now))
