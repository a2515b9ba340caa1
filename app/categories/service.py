from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.categories import repository
from app.categories.models import Category
from app.core.errors import ValidationFailed


async def list_categories(session: AsyncSession) -> Sequence[Category]:
    return await repository.list_all(session)


async def require_known(session: AsyncSession, slugs: Iterable[str]) -> None:
    unknown = await repository.unknown_slugs(session, slugs)
    if unknown:
        raise ValidationFailed("unknown_category", category=", ".join(sorted(unknown)))
