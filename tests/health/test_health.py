from __future__ import annotations

import httpx
import pytest

from app.main import create_app
from tests.conftest import Api, make_settings

pytestmark = pytest.mark.anyio


async def test_health_answers_when_the_database_does(api: Api, backend: str) -> None:
    response = await api.client.get("/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": backend}


async def test_health_is_503_when_the_database_does_not_answer() -> None:
    # Nothing listens on port 1.
    app = create_app(make_settings("postgresql://nobody@127.0.0.1:1/none"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/v1/health")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "service_unavailable"
