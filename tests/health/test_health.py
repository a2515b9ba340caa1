from __future__ import annotations

import pathlib

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
    for response in await _answers("postgresql://nobody@127.0.0.1:1/none"):
        assert response.status_code == 503, (response.request.url, response.text)
        assert response.json()["code"] == "service_unavailable"
        assert response.headers["retry-after"] == "5"


async def _answers(database_url: str) -> list[httpx.Response]:
    """Health, reads, a login, a sign-up and claims (with and without a key)."""
    settings = make_settings(database_url)
    app = create_app(settings)
    token = issue_access_token(user_id=1, secret_key=settings.secret_key, ttl_seconds=60)
    member = {"Authorization": f"Bearer {token}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [
                await client.get("/v1/health"),
                await client.get("/v1/categories"),
                await client.get("/v1/regions"),
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


@pytest.mark.parametrize("content", [b"", b"this is not a database file" * 200])
async def test_a_database_that_cannot_serve_is_503_not_500_and_not_healthy(
    tmp_path: pathlib.Path, content: bytes
) -> None:
    """An empty SQLite file (never migrated) and one that is not a database: the health
    check reads the schema's own row, and every call says "retry later"."""
    path = tmp_path / "microwish.db"
    path.write_bytes(content)
    for response in await _answers(f"sqlite:///{path}"):
        assert response.status_code == 503, (response.request.url, response.text)
        assert response.json()["code"] == "service_unavailable"


async def test_a_database_that_is_not_there_is_503(
    database_url: str, backend: str, tmp_path: pathlib.Path
) -> None:
    """PostgreSQL: a database that does not exist (dropped); SQLite: a path that cannot be
    opened as a database file (a folder)."""
    if backend == "postgresql":
        gone = database_url.rsplit("/", 1)[0] + "/microwish_never_created"
    else:
        gone = f"sqlite:///{tmp_path}"
    for response in await _answers(gone):
        assert response.status_code == 503, (response.request.url, response.text)
        assert response.json()["code"] == "service_unavailable"
