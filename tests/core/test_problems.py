"""Every failure is problem+json: domain errors, validation, malformed JSON, unknown routes,
wrong methods, and unexpected exceptions (without leaking a traceback)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.core.errors import InvalidState
from app.main import create_app
from tests.conftest import Api, make_settings
from tests.problems import assert_problem
from tests.world import build_world

pytestmark = pytest.mark.anyio


async def test_unknown_route_is_a_problem(api: Api) -> None:
    assert_problem(await api.client.get("/v1/nowhere"), 404, "not_found")
    # A trailing slash is another path, not a redirect to the one without it.
    assert_problem(await api.client.get("/v1/health/"), 404, "not_found")


async def test_a_path_id_is_digits_only(api: Api) -> None:
    headers = await api.user_headers("13800138000")
    for odd in ("1_0", "%201", "+1", "1.0", "0", "9223372036854775808"):
        response = await api.client.get(f"/v1/wishes/{odd}", headers=headers)
        assert_problem(response, 422, "validation_failed")
    assert_problem(await api.client.get("/v1/wishes/10", headers=headers), 404, "not_found")


async def test_head_answers_wherever_get_does(api: Api) -> None:
    headers = await api.user_headers("13800138000")
    got = await api.client.get("/v1/me", headers=headers)
    head = await api.client.head("/v1/me", headers=headers)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == got.headers["content-length"]
    assert (await api.client.head("/v1/me")).status_code == 401
    refused = await api.client.head("/v1/auth/token")  # POST only
    assert refused.status_code == 405
    assert refused.content == b""
    assert "POST" in refused.headers["allow"]


async def test_wrong_method_is_a_problem_with_allow(api: Api) -> None:
    response = await api.client.delete("/v1/auth/token")
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]
    # Every method the path answers, though two routes share it.
    both = await api.client.delete("/v1/wishes")
    assert_problem(both, 405, "method_not_allowed")
    assert both.headers["allow"] == "GET, HEAD, POST"


async def test_malformed_json_is_400(api: Api) -> None:
    response = await api.client.post(
        "/v1/auth/register",
        content=b'{"phone": "13800138000", ',
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 400, "malformed_json")


async def test_non_object_bodies_are_422(api: Api) -> None:
    payloads: list[object] = [[], "text", 12, None]
    for payload in payloads:
        response = await api.client.post("/v1/auth/register", json=payload)
        assert_problem(response, 422, "validation_failed")


async def test_language_follows_accept_language(api: Api) -> None:
    zh = await api.client.get("/v1/nowhere")
    en = await api.client.get("/v1/nowhere", headers={"Accept-Language": "en-US,en;q=0.9"})
    preferred_zh = await api.client.get(
        "/v1/nowhere", headers={"Accept-Language": "en;q=0.5, zh-CN"}
    )
    assert zh.json()["title"] == "未找到"
    assert zh.headers["content-language"] == "zh-CN"
    assert en.json()["title"] == "Not found"
    assert en.headers["content-language"] == "en"
    assert preferred_zh.json()["title"] == "未找到"


async def test_unexpected_exception_is_a_500_without_traceback(clean_database: str) -> None:
    app = create_app(make_settings(clean_database))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals /etc/passwd")

    @app.get("/invalid-state")
    async def invalid_state() -> None:
        raise InvalidState(resource="resource", current_state="closed", action="open")

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/boom")
            body = assert_problem(response, 500, "internal_error")
            assert "secret" not in response.text
            assert "Traceback" not in response.text
            assert body["instance"] == "/boom"

            state = await client.get("/invalid-state", headers={"Accept-Language": "en"})
            problem = assert_problem(state, 409, "invalid_state")
            assert problem["current_state"] == "closed"
            assert "closed" in str(problem["detail"])


async def test_problem_type_uris_resolve(api: Api) -> None:
    response = await api.client.get("/problems/phone_taken", headers={"Accept-Language": "en"})
    assert response.status_code == 200
    assert response.json()["title"] == "Phone already registered"
    assert_problem(await api.client.get("/problems/nope"), 404, "not_found")


async def test_an_oversized_json_body_is_413_before_it_is_parsed(api: Api) -> None:
    huge = b'{"phone": "13800138000", "password": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    announced = await api.client.post(
        "/v1/auth/register", content=huge, headers={"Content-Type": "application/json"}
    )
    assert announced.status_code == 413
    assert announced.json()["code"] == "payload_too_large"

    async def chunks(body: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    # No Content-Length (chunked): refused once it grows past the cap.
    streamed = await api.client.post(
        "/v1/auth/register", content=chunks(huge), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    small = b'{"phone": "13800138000", "password": "password-123", "display_name": "x"}'
    fine = await api.client.post(
        "/v1/auth/register", content=chunks(small), headers={"Content-Type": "application/json"}
    )
    assert fine.status_code == 201, fine.text
    assert await api.sql("SELECT count(*) FROM users") == [(1,)]
    # Labelling it multipart does not get it past the cap: only photo uploads have their own.
    relabelled = await api.client.post(
        "/v1/auth/register",
        content=huge,
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert relabelled.status_code == 413
    # Nested too deep to compare under an Idempotency-Key: refused as bad JSON, never a 500.
    deep = await api.client.post(
        "/v1/auth/register",
        content=b"[" * 100_000,
        headers={"Content-Type": "application/json", "Idempotency-Key": "deep-1"},
    )
    assert deep.status_code in (400, 422), deep.text


async def test_an_action_without_a_body_refuses_one_and_changes_nothing(api: Api) -> None:
    """Approve, withdraw, open… declare no body; a body they cannot ignore is bad input."""
    world = await build_world(api)
    wish = await world.wish(approve=False)
    url = f"/v1/wishes/{wish['id']}/approve"
    for content, status, code in (
        (b'{"force": true}', 422, "validation_failed"),
        (b"[1, 2]", 422, "validation_failed"),
        (b'"x"', 422, "validation_failed"),
        (b"{", 400, "malformed_json"),
    ):
        response = await api.client.post(
            url,
            content=content,
            headers={**world.organizer, "Content-Type": "application/json"},
        )
        assert_problem(response, status, code)
        current = await api.client.get(f"/v1/wishes/{wish['id']}", headers=world.organizer)
        assert current.json()["status"] == "pending_review"
    # What client libraries send by default is fine: nothing, {}, or null.
    approved = await api.client.post(url, json={}, headers=world.organizer)
    assert approved.status_code == 200
    member, _ = await world.member()
    claim = (await world.claim(wish["id"], member)).json()
    withdraw = f"/v1/claims/{claim['id']}/withdraw"
    refused = await api.client.post(withdraw, json={"reason": "x"}, headers=member)
    assert_problem(refused, 422, "validation_failed")
    assert refused.json()["errors"][0]["loc"] == ["body"]
    assert (await api.client.post(withdraw, content=b"null", headers=member)).status_code == 200


async def test_unreadable_bodies_are_malformed_json(api: Api) -> None:
    token = await api.user_headers("13911114444")
    for content in (
        b'{"title": "\xff"}',  # not UTF-8
        b"[" * 10_000 + b"]" * 10_000,  # deeper than the parser goes
        b'{"slots_total": ' + b"9" * 5000 + b"}",  # more digits than Python converts
    ):
        response = await api.client.post(
            "/v1/wishes", content=content, headers={**token, "Content-Type": "application/json"}
        )
        assert_problem(response, 400, "malformed_json")
