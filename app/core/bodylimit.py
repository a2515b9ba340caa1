"""A cap on request bodies other than uploads: no JSON body of this API comes near 1 MiB (the
largest, a full resource roster, is about 150 KB), so a bigger one is refused (413
``payload_too_large``) before it is read, or as soon as it grows past the cap when its size
was not announced, instead of being held and parsed. Photo uploads have their own cap,
checked while they are read (``app.photos.upload``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import PayloadTooLarge

MAX_BODY_BYTES = 1024 * 1024
UPLOAD_PATH_ENDINGS = ("/photos", "/proof")
BODILESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_upload(scope):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is None and scope.get("method") in BODILESS:
            # A GET (a read, an event stream) is passed on untouched.
            await self.app(scope, receive, send)
            return
        if declared is not None:
            # The server delivers exactly what was announced.
            if declared > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        # No size announced (chunked): read up to the cap first, then hand it on.
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        from app.core.problems import domain_problem

        problem = domain_problem(Request(scope), PayloadTooLarge(limit=self.max_bytes))
        await problem(scope, receive, send)


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((value for key, value in scope.get("headers", []) if key == name), None)


def _is_upload(scope: Scope) -> bool:
    """A photo upload (a wish's photo, a claim's proof): capped by its own route. Judged by
    the route, not by the Content-Type a client chooses (a 30 MB body labelled multipart is
    still refused by any other route)."""
    path: str = scope.get("path", "")
    return scope.get("method") == "POST" and path.endswith(UPLOAD_PATH_ENDINGS)


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    return int(value) if value is not None and value.isdigit() else None
