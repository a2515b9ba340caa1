"""Conditional requests (RFC 9110 §13): strong ETags on single resources, ``If-None-Match``
→ 304 on reads, and ``If-Match`` on updates (412 on a mismatch, 428 when missing) so two
phones editing the same wish cannot silently overwrite each other.

An ETag names one representation: the resource, its ``version`` column (bumped by every
UPDATE of the row), and, where the same version reads differently for different viewers
(contact data masked or not), that variant.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from app.core.errors import DomainError


class PreconditionFailed(DomainError):
    status = 412
    default_code = "precondition_failed"


class PreconditionRequired(DomainError):
    status = 428
    default_code = "precondition_required"


def etag(kind: str, resource_id: int, version: int | str, variant: str = "") -> str:
    suffix = f".{variant}" if variant else ""
    return f'"{kind}-{resource_id}-{version}{suffix}"'


def content_etag(kind: str, resource_id: int, *parts: object) -> str:
    """For rows without a version column: a digest of the fields the representation shows."""
    digest = hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
    return etag(kind, resource_id, digest)


def tagged_read(
    request: Request, response: Response, kind: str, resource_id: int, representation: BaseModel
) -> Response | None:
    """For composite reads without one version column (``/v1/me``: the user, their grants
    and member profile): a strong ETag from the representation itself; 304 when the client
    holds it, else None (with the ETag set on ``response``)."""
    return answer_read(
        request, response, content_etag(kind, resource_id, representation.model_dump_json())
    )


def answer_read(request: Request, response: Response, current: str) -> Response | None:
    """A read with the ETag ``current``: 304 when the client holds it (``not_modified``),
    else None, with the ETag set on the answer being built."""
    unchanged = not_modified(request, current)
    if unchanged is None:
        response.headers["ETag"] = current
    return unchanged


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def not_modified(request: Request, current: str) -> Response | None:
    """304 when ``If-None-Match`` names the current representation (weak comparison, as
    RFC 9110 prescribes for If-None-Match)."""
    header = request.headers.get("if-none-match")
    if header is None:
        return None
    tags = _tags(header)
    if "*" in tags or _opaque(current) in {_opaque(t) for t in tags}:
        return Response(status_code=304, headers={"ETag": current})
    return None


def required_if_match(request: Request) -> list[str]:
    """The ``If-Match`` tags of an update; 428 when it has none. ``*`` matches any."""
    header = request.headers.get("if-match")
    if not header:
        raise PreconditionRequired()
    return _tags(header)


def check_if_match(tags: list[str], current: str) -> None:
    """Strong comparison (RFC 9110 §13.1.1): weak tags never match."""
    if "*" in tags:
        return
    if current not in [t for t in tags if not t.startswith("W/")]:
        raise PreconditionFailed(extra={"etag": current})
