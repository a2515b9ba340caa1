from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import RefreshToken, User


async def get_by_phone(session: AsyncSession, phone: str) -> User | None:
    return await session.scalar(select(User).where(User.phone == phone))


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
