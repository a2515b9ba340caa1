from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query
from fastapi.responses import Response
from starlette.requests import Request

from app.core.auth import CurrentActor
from app.core.config import Settings
from app.core.db import utcnow
from app.core.deps import AppSettings, DbSession
from app.core.nobody import Route
from app.core.pagination import PageParams, build_page, page_params
from app.core.problems import problem_responses
from app.core.types import MAX_ID, PathDigits
from app.photos import service, signing
from app.photos.models import Photo, PhotoKind
from app.photos.schemas import PhotoPage, PhotoRead
from app.photos.signing import PhotoVariant
from app.photos.upload import MULTIPART_BODY, PhotoStorageDep, UploadedImage

router = APIRouter(route_class=Route, tags=["photos"])

WishId = Annotated[int, Path(ge=1, le=MAX_ID, description="Wish id."), PathDigits]
ClaimId = Annotated[int, Path(ge=1, le=MAX_ID, description="Claim id."), PathDigits]
PhotoId = Annotated[int, Path(ge=1, le=MAX_ID, description="Photo id."), PathDigits]
Paging = Annotated[PageParams, Depends(page_params)]

UPLOAD_PROBLEMS = problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 429)
UPLOAD_RULES = (
    "Send `multipart/form-data` with the image in the field `file`. The type is judged by "
    "the content (JPEG, PNG or WebP), never by the file name or declared type: anything else "
    "is 415 `unsupported_image`. Over the size limit (10 MB by default) is 413 "
    "`image_too_large`, over the pixel limit (40 megapixels) 422 `image_too_many_pixels`. "
    "The image is stored re-encoded as JPEG, upright (EXIF orientation applied) and without "
    "any metadata (EXIF, GPS position, ICC, XMP), at most 2048 px on its longest side, with "
    "a 320 px thumbnail."
)


def photo_read(request: Request, settings: Settings, photo: Photo, now: datetime) -> PhotoRead:
    expires = signing.expiry(now, settings.photo_url_ttl_seconds)

    def link(variant: PhotoVariant) -> str:
        signed = signing.sign(settings.secret_key, photo.id, photo.storage_key, variant, expires)
        url = request.url_for("photo_file", photo_id=str(photo.id), variant=variant.value)
        return str(url.include_query_params(expires=signed.expires, signature=signed.signature))

    return PhotoRead(
        id=photo.id,
        kind=PhotoKind(photo.kind),
        wish_id=photo.wish_id,
        claim_id=photo.claim_id,
        width=photo.width,
        height=photo.height,
        content_type=photo.content_type,
        byte_size=photo.byte_size,
        thumbnail_width=photo.thumbnail_width,
        thumbnail_height=photo.thumbnail_height,
        url=link(PhotoVariant.full),
        thumbnail_url=link(PhotoVariant.thumbnail),
        expires_at=signing.expires_at(expires),
        uploaded_by=photo.uploader_id,
        created_at=photo.created_at,
    )


def photo_page(
    request: Request, settings: Settings, rows: list[Photo], limit: int, listing: str
) -> PhotoPage:
    items, next_cursor = build_page(rows, limit, listing, lambda photo: [photo.id])
    now = utcnow()
    return PhotoPage(
        items=[photo_read(request, settings, photo, now) for photo in items],
        next_cursor=next_cursor,
    )


@router.post(
    "/v1/wishes/{wish_id}/photos",
    status_code=201,
    summary="Add a photo to a wish (its owner or an organizer in scope; not once closed)",
    description=UPLOAD_RULES + " At most 6 photos per wish (409 `too_many_photos`); a "
    "confirmed, rejected, cancelled or expired wish takes none (409 `invalid_state`).",
    openapi_extra=MULTIPART_BODY,
    responses=UPLOAD_PROBLEMS,
)
async def upload_wish_photo(
    wish_id: WishId,
    request: Request,
    actor: CurrentActor,
    image: UploadedImage,  # read and checked before the session (and its transaction) opens
    session: DbSession,
    storage: PhotoStorageDep,
    settings: AppSettings,
) -> PhotoRead:
    photo = await service.add_wish_photo(
        session,
        actor,
        wish_id=wish_id,
        image=image,
        storage=storage,
        max_photos=settings.photo_max_per_wish,
    )
    return photo_read(request, settings, photo, utcnow())


@router.get(
    "/v1/wishes/{wish_id}/photos",
    summary="A wish's photos, oldest first (whoever may see the wish)",
    description="Each item carries signed URLs (`url`, `thumbnail_url`) that work without "
    "an Authorization header until `expires_at` (about 10 minutes); list again for new ones.",
    responses=problem_responses(401, 404, 422),
)
async def list_wish_photos(
    wish_id: WishId,
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    settings: AppSettings,
    paging: Paging,
) -> PhotoPage:
    after_id = paging.after_id("wish_photos")
    rows = await service.wish_photos(
        session, actor, wish_id=wish_id, after_id=after_id, limit=paging.fetch
    )
    return photo_page(request, settings, list(rows), paging.limit, "wish_photos")


@router.post(
    "/v1/claims/{claim_id}/proof",
    status_code=201,
    summary="Add a proof photo to my claim (while active, or within 24 h of fulfilling it)",
    description=UPLOAD_RULES + " At most 6 proof photos per claim (409 `too_many_photos`).",
    openapi_extra=MULTIPART_BODY,
    responses=UPLOAD_PROBLEMS,
)
async def upload_proof_photo(
    claim_id: ClaimId,
    request: Request,
    actor: CurrentActor,
    image: UploadedImage,
    session: DbSession,
    storage: PhotoStorageDep,
    settings: AppSettings,
) -> PhotoRead:
    photo = await service.add_proof_photo(
        session,
        actor,
        claim_id=claim_id,
        image=image,
        storage=storage,
        max_photos=settings.photo_max_per_wish,
    )
    return photo_read(request, settings, photo, utcnow())


@router.get(
    "/v1/claims/{claim_id}/proof",
    summary="A claim's proof photos (the claimer, the wish's owner, organizers in scope)",
    responses=problem_responses(401, 404, 422),
)
async def list_proof_photos(
    claim_id: ClaimId,
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    settings: AppSettings,
    paging: Paging,
) -> PhotoPage:
    after_id = paging.after_id("proof_photos")
    rows = await service.proof_photos(
        session, actor, claim_id=claim_id, after_id=after_id, limit=paging.fetch
    )
    return photo_page(request, settings, list(rows), paging.limit, "proof_photos")


@router.delete(
    "/v1/photos/{photo_id}",
    status_code=204,
    summary="Delete a photo (its uploader, the wish's owner, or an organizer in scope)",
    responses=problem_responses(401, 403, 404, 422),
)
async def delete_photo(
    photo_id: PhotoId,
    session: DbSession,
    actor: CurrentActor,
    storage: PhotoStorageDep,
    background: BackgroundTasks,
) -> None:
    photo = await service.delete_photo(session, actor, photo_id=photo_id)
    # After the response, so after the commit: a rolled-back delete keeps its image.
    background.add_task(service.delete_stored, storage, service.stored_keys(photo))


@router.get(
    "/v1/photos/{photo_id}/{variant}",
    summary="The image behind a signed photo URL (no Authorization header needed)",
    description="Use the `url` and `thumbnail_url` the photo listings hand out; do not build "
    "these URLs. 403 `photo_link_expired` after `expires_at`, 403 `photo_link_invalid` for "
    "a changed URL. Served with `Cache-Control: private` for the rest of the link's life.",
    response_class=Response,
    responses={
        200: {
            "description": "The image",
            "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
        },
        **problem_responses(403, 404, 422),
    },
)
async def photo_file(
    photo_id: PhotoId,
    variant: PhotoVariant,
    session: DbSession,
    storage: PhotoStorageDep,
    settings: AppSettings,
    expires: Annotated[int, Query(ge=0, le=2**40, description="Unix time the link ends.")],
    signature: Annotated[str, Query(min_length=1, max_length=64)],
) -> Response:
    now = utcnow()
    data, content_type = await service.open_signed(
        session,
        storage,
        photo_id=photo_id,
        variant=variant,
        expires=expires,
        signature=signature,
        secret=settings.secret_key,
        now=now,
    )
    max_age = max(0, expires - int(now.timestamp()))
    return Response(
        data,
        media_type=content_type,
        headers={
            "Cache-Control": f"private, max-age={max_age}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
