"""The photo tests' app: the usual one, with its own photo folder per test and settings a
test may change with ``@pytest.mark.parametrize("photo_settings", [{...}], indirect=True)``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from tests.conftest import Api, make_settings


@pytest.fixture
def photo_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    overrides: dict[str, Any] = getattr(request, "param", {})
    return overrides


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    return tmp_path / "photos"


@pytest.fixture
async def photo_app(
    clean_database: str, photo_dir: Path, photo_settings: dict[str, Any]
) -> AsyncIterator[FastAPI]:
    settings = make_settings(clean_database, photo_dir=photo_dir, **photo_settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def api(photo_app: FastAPI) -> AsyncIterator[Api]:
    transport = httpx.ASGITransport(app=photo_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Api(client=client, settings=photo_app.state.settings)
