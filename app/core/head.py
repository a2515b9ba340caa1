"""HEAD wherever GET is (RFC 9110 §9.3.2): the same status and headers, no content.

FastAPI routes answer only the methods they name, so ``HEAD /v1/wishes`` would be a 405;
this runs a HEAD as the GET it mirrors and drops the body on the way out (uvicorn would
not send it either, but an in-process client would)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        finished = False

        async def headers_only(message: Message) -> None:
            nonlocal finished
            if message["type"] != "http.response.body":
                await send(message)
            elif not finished:  # the first chunk ends the response; the rest is dropped
                finished = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, receive, headers_only)
