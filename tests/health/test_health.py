from __future__ import annotations

import httpx
import pytest

from app.core.security import issue_access_token
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


async def test_every_call_is_503_when_the_database_does_not_answer() -> None:
    """Not only the health check: a read, a login and a claim (whose connection comes
    straight from the pool, where the driver's error is not wrapped) say "retry later"."""
    settings = make_settings("postgresql://nobody@127.0.0.1:1/none")
    app = create_app(settings)
    token = issue_access_token(user_id=1, secret_key=settings.secret_key, ttl_seconds=60)
    member = {"Authorization": f"Bearer {token}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answers = [
                await client.get("/v1/categories"),
                await client.post(
                    "/v1/auth/token", json={"phone": "13800138000", "password": "x" * 8}
                ),
                await client.post(
                    "/v1/auth/register",
                    json={"phone": "13800138000", "password": "x" * 8, "display_name": "x"},
                ),
                await client.post("/v1/wishes/1/claims", json={"slots": 1}, headers=member),
                await client.post(
                    "/v1/wishes/1/claims",
                    json={"slots": 1},
                    headers={**member, "Idempotency-Key": "k-1"},
                ),
                await client.get("/v1/wishes/1", headers=member),
            ]
    for response in answers:
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "service_unavailable"
        assert response.headers["retry-after"] == "5"
