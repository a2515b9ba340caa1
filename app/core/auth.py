"""The bearer-token dependency that turns a request into an ``Actor``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import Request

from app.core.actor import Actor
from app.core.errors import Unauthorized
from app.core.security import bearer_challenge, request_access_claims

_bearer = HTTPBearer(auto_error=False, description="Access token from POST /v1/auth/token")


async def get_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized(headers=bearer_challenge())
    claims = request_access_claims(
        request.scope, credentials.credentials, secret_key=request.app.state.settings.secret_key
    )
    return Actor(user_id=claims.user_id)


CurrentActor = Annotated[Actor, Depends(get_actor)]
