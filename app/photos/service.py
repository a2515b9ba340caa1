"""Photos of wishes and claim proof: who may add, see and delete them, and opening a signed
photo URL. Images arrive already checked and re-encoded (``app.photos.images``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from app.claims import repository as claims_repository
from app.claims import service as claims_service
from app.claims.models import Claim, ClaimStatus
from app.core.actor import Actor
from app.core.db import utcnow
from app.core.errors import Conflict, Forbidden, InvalidState, NotFound
from app.photos import repository
from app.photos.images import ProcessedImage
from app.photos.models import Photo, PhotoKind
from app.photos.signing import PhotoVariant, signature_valid
from app.photos.storage import PhotoStorage, new_key
from app.regions.access import scope_of
from app.wishes import repository as wishes_repository
from app.wishes.models import Wish, WishStatus
from app.wishes.service import Relation, is_owner, relation_to

logger = logging.getLogger("microwish.photos")

# A wish in one of these takes no new photos (its photos stay, and may be deleted).
CLOSED_STATUSES = (
    WishStatus.confirmed.value,
    WishStatus.rejected.value,
    WishStatus.cancelled.value,
    WishStatus.expired.value,
)
# The claimer may add proof while the claim is active and for this long after reporting it
# fulfilled (the app may report first and upload after, on a poor connection).
PROOF_GRACE = timedelta(hours=24)


async def _store(
    session: AsyncSession,
    storage: PhotoStorage,
    image: ProcessedImage,
    *,
    kind: PhotoKind,
    wish_id: int,
    claim_id: int | None,
    uploader_id: int,
) -> Photo:
    """Write both variants, then the row. Should anything fail, the bytes written are removed
    again: a refused or failed upload leaves nothing behind."""
    photo = Photo(
        kind=kind.value,
        wish_id=wish_id,
        claim_id=claim_id,
        uploader_id=uploader_id,
        storage_key=new_key(),
        content_type=image.content_type,
        width=image.full.width,
        height=image.full.height,
        byte_size=len(image.full.data),
        thumbnail_width=image.thumbnail.width,
        thumbnail_height=image.thumbnail.height,
        thumbnail_byte_size=len(image.thumbnail.data),
        created_at=utcnow(),
    )
    written: list[str] = []
    try:
        for variant, data in (
            (PhotoVariant.full, image.full.data),
            (PhotoVariant.thumbnail, image.thumbnail.data),
        ):
            key = photo.variant_key(variant)
            written.append(key)
            await storage.put(key, data, content_type=image.content_type)
        session.add(photo)
        await session.flush()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await delete_stored(storage, written)
        raise
    return photo


async def delete_stored(storage: PhotoStorage, keys: Sequence[str]) -> None:
    """Best effort: a blob left behind is unreferenced garbage, not an error for the user."""
    for key in keys:
        try:
            await storage.delete(key)
        except Exception:
            logger.warning("could not delete stored photo %s", key, exc_info=True)


def stored_keys(photo: Photo) -> list[str]:
    return [photo.variant_key(variant) for variant in PhotoVariant]


async def add_wish_photo(
    session: AsyncSession,
    actor: Actor,
    *,
    wish_id: int,
    image: ProcessedImage,
    storage: PhotoStorage,
    max_photos: int,
) -> Photo:
    """The wish's owner (resident or publisher) or an organizer in scope adds a photo while
    the wish is not closed, up to ``max_photos``."""
    wish = await wishes_repository.get(session, wish_id)
    if wish is None:
        raise NotFound(resource="wish")
    scope = await scope_of(session, actor)
    if not (is_owner(actor.user_id, wish) or scope.covers(wish)):
        if await relation_to(session, scope, wish) == Relation.none:
            raise NotFound(resource="wish")
        raise Forbidden()
    locked = await repository.lock_wish(session, wish_id)
    if locked is None:
        raise NotFound(resource="wish")
    if locked.status in CLOSED_STATUSES:
        raise InvalidState(resource="wish", current_state=locked.status, action="add_photos")
    if await repository.count_wish_photos(session, wish_id) >= max_photos:
        raise Conflict("too_many_photos", extra={"max_photos": max_photos}, max_photos=max_photos)
    return await _store(
        session,
        storage,
        image,
        kind=PhotoKind.wish,
        wish_id=wish_id,
        claim_id=None,
        uploader_id=actor.user_id,
    )


def _may_add_proof(claim: Claim, now: datetime) -> bool:
    if claim.status == ClaimStatus.active.value:
        return True
    return (
        claim.status == ClaimStatus.fulfilled.value
        and claim.fulfilled_at is not None
        and claim.fulfilled_at >= now - PROOF_GRACE
    )


async def add_proof_photo(
    session: AsyncSession,
    actor: Actor,
    *,
    claim_id: int,
    image: ProcessedImage,
    storage: PhotoStorage,
    max_photos: int,
    now: datetime | None = None,
) -> Photo:
    """The claimer adds proof while the claim is active or was fulfilled less than
    ``PROOF_GRACE`` ago, up to ``max_photos`` per claim."""
    now = now or utcnow()
    claim = await claims_repository.get(session, claim_id)
    if claim is None:
        raise NotFound(resource="claim")
    if claim.member_id != actor.user_id:
        # The wish's owner and organizers may see the claim, not add to it; others get 404.
        await claims_service.get_claim(session, actor, claim_id=claim_id)
        raise Forbidden()
    # Lock order wish → claim, as in every claim transition: the claim cannot be withdrawn
    # or fulfilled between this check and the insert.
    await repository.lock_wish(session, claim.wish_id)
    claim = await claims_repository.get(session, claim_id)
    if claim is None:
        raise NotFound(resource="claim")
    if not _may_add_proof(claim, now):
        raise InvalidState(resource="claim", current_state=claim.status, action="add_proof")
    if await repository.count_proof_photos(session, claim_id) >= max_photos:
        raise Conflict("too_many_photos", extra={"max_photos": max_photos}, max_photos=max_photos)
    return await _store(
        session,
        storage,
        image,
        kind=PhotoKind.proof,
        wish_id=claim.wish_id,
        claim_id=claim.id,
        uploader_id=actor.user_id,
    )


async def wish_photos(
    session: AsyncSession, actor: Actor, *, wish_id: int, after_id: int | None, limit: int
) -> Sequence[Photo]:
    """A wish's photos, for whoever may see the wish (404 for anyone else)."""
    wish = await wishes_repository.get(session, wish_id)
    if wish is None:
        raise NotFound(resource="wish")
    if await relation_to(session, await scope_of(session, actor), wish) == Relation.none:
        raise NotFound(resource="wish")
    return await repository.list_wish_photos(
        session, wish_id=wish_id, after_id=after_id, limit=limit
    )


async def proof_photos(
    session: AsyncSession, actor: Actor, *, claim_id: int, after_id: int | None, limit: int
) -> Sequence[Photo]:
    """A claim's proof, for the claimer, the wish's owner and organizers in scope."""
    await claims_service.get_claim(session, actor, claim_id=claim_id)
    return await repository.list_proof_photos(
        session, claim_id=claim_id, after_id=after_id, limit=limit
    )


async def _may_see_photo(session: AsyncSession, actor: Actor, photo: Photo, wish: Wish) -> bool:
    scope = await scope_of(session, actor)
    if photo.kind == PhotoKind.wish.value:
        return await relation_to(session, scope, wish) != Relation.none
    claim = await claims_repository.get(session, photo.claim_id) if photo.claim_id else None
    return (
        (claim is not None and claim.member_id == actor.user_id)
        or is_owner(actor.user_id, wish)
        or scope.covers(wish)
    )


async def delete_photo(session: AsyncSession, actor: Actor, *, photo_id: int) -> Photo:
    """Whoever uploaded it, the wish's owner, or an organizer in scope deletes a photo (at
    any time: a photo is personal data). The row goes in this transaction; the caller removes
    the stored bytes (``stored_keys``) once it has committed."""
    photo = await repository.get(session, photo_id)
    wish = await wishes_repository.get(session, photo.wish_id) if photo else None
    if photo is None or wish is None or not await _may_see_photo(session, actor, photo, wish):
        raise NotFound(resource="photo")
    scope = await scope_of(session, actor)
    if not (
        photo.uploader_id == actor.user_id or is_owner(actor.user_id, wish) or scope.covers(wish)
    ):
        raise Forbidden()
    deleted = await repository.delete_photo(session, photo_id)
    if deleted is None:  # deleted by someone else meanwhile
        raise NotFound(resource="photo")
    return deleted


async def open_signed(
    session: AsyncSession,
    storage: PhotoStorage,
    *,
    photo_id: int,
    variant: PhotoVariant,
    expires: int,
    signature: str,
    secret: str,
    now: datetime | None = None,
) -> tuple[bytes, str]:
    """The bytes and content type behind a signed photo URL. The signature is the only
    credential; it covers the photo's random storage key, so it opens this photo only."""
    photo = await repository.get(session, photo_id)
    if photo is None:
        raise NotFound(resource="photo")
    if not signature_valid(secret, photo_id, photo.storage_key, variant, expires, signature):
        raise Forbidden("photo_link_invalid")
    if expires <= (now or utcnow()).timestamp():
        raise Forbidden("photo_link_expired")
    data = await storage.get(photo.variant_key(variant))
    if data is None:
        raise NotFound(resource="photo")
    return data, photo.content_type
