from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.photos.models import Photo, PhotoKind
from app.wishes.models import Wish


async def get(session: AsyncSession, photo_id: int) -> Photo | None:
    return await session.get(Photo, photo_id)


async def lock_wish(session: AsyncSession, wish_id: int) -> Wish | None:
    """The wish's row lock, freshly read (PostgreSQL; SQLite's writer already holds the
    database). Every photo upload of a wish takes it first, so counting the photos and adding
    one cannot interleave, and the wish cannot close in between."""
    return await session.scalar(
        select(Wish)
        .where(Wish.id == wish_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def count_wish_photos(session: AsyncSession, wish_id: int) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Photo)
        .where(Photo.wish_id == wish_id, Photo.kind == PhotoKind.wish.value)
    )
    return int(count or 0)


async def count_proof_photos(session: AsyncSession, claim_id: int) -> int:
    count = await session.scalar(
        select(func.count()).select_from(Photo).where(Photo.claim_id == claim_id)
    )
    return int(count or 0)


async def list_wish_photos(
    session: AsyncSession, *, wish_id: int, after_id: int | None, limit: int
) -> Sequence[Photo]:
    query = select(Photo).where(Photo.wish_id == wish_id, Photo.kind == PhotoKind.wish.value)
    if after_id is not None:
        query = query.where(Photo.id > after_id)
    return (await session.scalars(query.order_by(Photo.id).limit(limit))).all()


async def list_proof_photos(
    session: AsyncSession, *, claim_id: int, after_id: int | None, limit: int
) -> Sequence[Photo]:
    query = select(Photo).where(Photo.claim_id == claim_id)
    if after_id is not None:
        query = query.where(Photo.id > after_id)
    return (await session.scalars(query.order_by(Photo.id).limit(limit))).all()


async def delete_photo(session: AsyncSession, photo_id: int) -> Photo | None:
    """Delete the row; the photo as it was, or None if it was already gone."""
    return await session.scalar(delete(Photo).where(Photo.id == photo_id).returning(Photo))
