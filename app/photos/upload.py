"""Reading a photo upload: the request dependency that streams a ``multipart/form-data``
body with a size limit, then checks and re-encodes the image in a worker thread.

The body is read chunk by chunk and refused as soon as it passes the limit (at once when
``Content-Length`` already says so), so an oversized or endless upload never sits in memory
or on disk. The file is held in memory up to the limit (10 MB by default): Pillow needs it
whole anyway. Decoding runs in worker threads, at most ``IMAGE_WORKERS`` at a time per
process, so a burst of uploads queues instead of decoding a dozen 40-megapixel images at
once. This runs before the request's database session opens: no transaction (and on SQLite
no write lock) is held while an image is decoded.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends, FastAPI
from limits import parse_many
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from app.core.actor import Actor
from app.core.auth import CurrentActor
from app.core.config import Settings
from app.core.deps import AppSettings
from app.core.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from app.core.ratelimit import RateLimits
from app.photos.images import ImageRejected, ProcessedImage, process_image
from app.photos.storage import PhotoStorage, storage_from_settings

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FILE_FIELD = "file"
# Room for the multipart framing and a few small fields around the file.
MULTIPART_OVERHEAD = 64 * 1024
MAX_PARTS = 8
IMAGE_WORKERS = 2

# The request body as documented in OpenAPI (the route reads it itself, see read_upload).
MULTIPART_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {
                            "type": "string",
                            "format": "binary",
                            "contentMediaType": "application/octet-stream",
                            "description": "A JPEG, PNG or WebP image (judged by its content), "
                            "at most 10 MB and 40 megapixels by default.",
                        }
                    },
                },
                "encoding": {FILE_FIELD: {"contentType": "image/jpeg, image/png, image/webp"}},
            }
        },
    }
}


def _too_large(max_bytes: int) -> PayloadTooLarge:
    megabytes = f"{max_bytes / 2**20:g}"
    return PayloadTooLarge(
        "image_too_large", extra={"max_bytes": max_bytes}, max_megabytes=megabytes
    )


def _file_problem(message: str, error_type: str) -> ValidationFailed:
    return ValidationFailed(
        extra={"errors": [{"loc": ["body", FILE_FIELD], "msg": message, "type": error_type}]}
    )


class _FileCollector:
    """python-multipart callbacks keeping the bytes of the one ``file`` part."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.data: bytearray | None = None
        self.parts = 0
        self.ended = False
        self._in_file = False
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise BadRequest("malformed_multipart")
        self._disposition = b""
        self._in_file = False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if bytes(self._header_name).strip().lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if options.get(b"name") == FILE_FIELD.encode():
            if self.data is not None:
                raise _file_problem("Send one file per request.", "too_many_files")
            self.data = bytearray()
            self._in_file = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_file:
            return  # other fields are ignored (their bytes count towards the body limit)
        assert self.data is not None
        if len(self.data) + (end - start) > self.max_bytes:
            raise _too_large(self.max_bytes)
        self.data += data[start:end]

    def _part_end(self) -> None:
        self._in_file = False

    def _end(self) -> None:
        self.ended = True


async def read_upload(request: Request, *, max_bytes: int) -> bytes:
    """The bytes of the ``file`` field of a multipart/form-data body, at most ``max_bytes``."""
    media_type, params = parse_options_header(request.headers.get("content-type"))
    boundary = params.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise UnsupportedMediaType("multipart_required")
    max_body = max_bytes + MULTIPART_OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body:
        raise _too_large(max_bytes)
    collector = _FileCollector(max_bytes)
    try:
        parser = MultipartParser(boundary, collector.callbacks())
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_body:
                raise _too_large(max_bytes)
            parser.write(chunk)
        parser.finalize()
    except (FormParserError, ClientDisconnect) as exc:
        raise BadRequest("malformed_multipart") from exc
    if not collector.ended:
        raise BadRequest("malformed_multipart")  # the body stopped before its last boundary
    if collector.data is None:
        raise _file_problem("Field required", "missing")
    return bytes(collector.data)


def _app_state(app: FastAPI, name: str, make: Any) -> Any:
    # Made on first use, per app instance (a limiter belongs to the running event loop).
    value = getattr(app.state, name, None)
    if value is None:
        value = make()
        setattr(app.state, name, value)
    return value


async def get_photo_storage(request: Request) -> PhotoStorage:
    settings: Settings = request.app.state.settings
    storage: PhotoStorage = _app_state(
        request.app, "photo_storage", partial(storage_from_settings, settings)
    )
    return storage


async def image_upload(
    request: Request, actor: CurrentActor, settings: AppSettings
) -> ProcessedImage:
    """The uploaded image, checked and re-encoded. Depends on the actor so that a request
    without a valid token is refused before its body is read."""
    await _count_upload(request, actor, settings)
    data = await read_upload(request, max_bytes=settings.photo_max_bytes)
    limiter: anyio.CapacityLimiter = _app_state(
        request.app, "photo_limiter", partial(anyio.CapacityLimiter, IMAGE_WORKERS)
    )
    job = partial(
        process_image,
        data,
        max_pixels=settings.photo_max_pixels,
        max_side=settings.photo_max_side,
        thumbnail_side=settings.photo_thumbnail_side,
    )
    try:
        return await anyio.to_thread.run_sync(job, limiter=limiter)
    except ImageRejected as rejected:
        if rejected.reason == "too_many_pixels":
            megapixels = f"{settings.photo_max_pixels / 1e6:g}"
            raise ValidationFailed(
                "image_too_many_pixels",
                extra={"max_pixels": settings.photo_max_pixels},
                max_megapixels=megapixels,
            ) from None
        raise UnsupportedMediaType("unsupported_image") from None


async def _count_upload(request: Request, actor: Actor, settings: Settings) -> None:
    limits: RateLimits = request.app.state.rate_limits
    items = _app_state(
        request.app, "photo_rate_limits", partial(parse_many, settings.photo_upload_rate_limit)
    )
    await limits.hit(items, "photo_upload", str(actor.user_id))


UploadedImage = Annotated[ProcessedImage, Depends(image_upload)]
PhotoStorageDep = Annotated[PhotoStorage, Depends(get_photo_storage)]
