from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.categories.models import Category


async def list_all(session: AsyncSession) -> Sequence[Category]:
    return (await session.scalars(select(Category).order_by(Category.position))).all()


async def unknown_slugs(session: AsyncSession, slugs: Iterable[str]) -> set[str]:
    wanted = set(slugs)
    if not wanted:
        return set()
    known = await session.scalars(select(Category.slug).where(Category.slug.in_(wanted)))
    return wanted - set(known)
