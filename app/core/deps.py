"""Dependencies shared by every router."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from app.core.config import Settings
from app.core.db import get_session, get_write_session

# scope="function": the commit happens before the response goes out (see app.core.db).
DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]
# A GET that writes too (audit rows): a write transaction from the start.
AuditedReadSession = Annotated[AsyncSession, Depends(get_write_session, scope="function")]


async def get_settings_from_app(request: Request) -> Settings:
    # async: a plain def dependency would run in the threadpool on every request.
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(get_settings_from_app)]
