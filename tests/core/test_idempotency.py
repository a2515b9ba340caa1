"""Idempotency-Key: replays, mismatches, failures, scopes (ASGI), and a retry storm against
a real server on each database."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import httpx
import pytest

from app.core import idempotency
from tests.conftest import Api
from tests.invariants import violations
from tests.live import seed
from tests.problems import assert_problem
from tests.world import World, build_world

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(api: Api) -> World:
    return await build_world(api)


async def test_a_retried_claim_is_replayed_not_repeated(world: World) -> None:
    api = world.api
    wish = await world.wish(slots=3)
    member, _ = await world.member()
    headers = {**member, "Idempotency-Key": "claim-7f3a"}
    first = await api.client.post(
        f"/v1/wishes/{wish['id']}/claims", json={"slots": 1}, headers=headers
    )
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    again = await api.client.post(
        f"/v1/wishes/{wish['id']}/claims", json={"slots": 1}, headers=headers
    )
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["content-type"] == first.headers["content-type"]
    # The same data spelled differently by another JSON library is the same request.
    spelled = await api.client.post(
        f"/v1/wishes/{wish['id']}/claims",
        content=b'{ "slots" : 1 }',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert spelled.status_code == 201
    assert spelled.headers["idempotent-replayed"] == "true"
    rows = await api.sql("SELECT count(*) FROM claims")
    assert rows[0][0] == 1
    # The same key with another body is a client bug: 422, nothing done.
    other = await api.client.post(
        f"/v1/wishes/{wish['id']}/claims", json={"slots": 2}, headers=headers
    )
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    # Keys are per user: another member's identical key is theirs alone.
    second_member, _ = await world.member()
    theirs = await api.client.post(
        f"/v1/wishes/{wish['id']}/claims",
        json={"slots": 1},
        headers={**second_member, "Idempotency-Key": "claim-7f3a"},
    )
    assert theirs.status_code == 201
    assert theirs.json()["id"] != first.json()["id"]
    assert await violations(api.settings.database_url) == {}


async def test_a_failed_request_can_be_retried(world: World) -> None:
    api = world.api
    wish = await world.wish()
    member, _ = await world.member(approve=False)
    headers = {**member, "Idempotency-Key": "k-1"}
    refused = await api.client.post(f"/v1/wishes/{wish['id']}/claims", json={}, headers=headers)
    assert refused.status_code == 403
    # Nothing changed, so nothing is stored: the retry runs again (and now succeeds).
    approve = await api.client.post(
        f"/v1/members/{(await api.client.get('/v1/me', headers=member)).json()['id']}/approve",
        headers=world.admin,
    )
    assert approve.status_code == 200
    retried = await api.client.post(f"/v1/wishes/{wish['id']}/claims", json={}, headers=headers)
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers


async def test_registration_is_idempotent_without_a_token(api: Api) -> None:
    body = {"phone": "13911112222", "password": "password-123", "display_name": "张三"}
    headers = {"Idempotency-Key": "register-1"}
    first = await api.client.post("/v1/auth/register", json=body, headers=headers)
    again = await api.client.post("/v1/auth/register", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    # Callers without a token share no keys: another person who picked the same key signs
    # up as themselves (not a 422, nor the first person's answer).
    other = {**body, "phone": "13911112223"}
    theirs = await api.client.post("/v1/auth/register", json=other, headers=headers)
    assert theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["phone"] == "+8613911112223"


async def test_a_key_without_a_token_is_a_401_not_a_reservation(api: Api) -> None:
    headers = {"Idempotency-Key": "k1"}
    await api.client.post("/v1/auth/otp/request", json={"phone": "13912340001"}, headers=headers)
    for auth in ({}, {"Authorization": "Bearer not-a-token"}):
        refused = await api.client.post("/v1/wishes", json={}, headers={**headers, **auth})
        assert_problem(refused, 401, "unauthenticated")


async def test_bad_keys_are_refused(world: World) -> None:
    api = world.api
    wish = await world.wish()
    member, _ = await world.member()
    for key in ["", "x" * 256]:
        response = await api.client.post(
            f"/v1/wishes/{wish['id']}/claims",
            json={},
            headers={**member, "Idempotency-Key": key},
        )
        assert response.status_code == 422, key
        assert response.json()["code"] == "invalid_idempotency_key"
    rows = await api.sql("SELECT count(*) FROM claims")
    assert rows[0][0] == 0


@pytest.mark.server
async def test_twenty_identical_requests_at_once_make_one_claim(
    running_server: str, clean_database: str
) -> None:
    people = await seed(clean_database, member_capacities=[3], wish_slots=[5])
    member_id, wish_id = people.member_ids[0], people.wish_ids[0]
    headers = {**people.headers(member_id), "Idempotency-Key": "tap-tap-tap"}
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(base_url=running_server, limits=limits, timeout=30) as http:
        responses = await asyncio.gather(
            *(
                http.post(f"/v1/wishes/{wish_id}/claims", json={"slots": 1}, headers=headers)
                for _ in range(20)
            )
        )
        # Every answer is the one claim (201, first or replayed) or "still in flight" (409).
        outcomes = Counter(r.status_code for r in responses)
        assert set(outcomes) <= {201, 409}, outcomes
        created = {r.json()["id"] for r in responses if r.status_code == 201}
        assert len(created) == 1
        for r in responses:
            if r.status_code == 409:
                assert r.json()["code"] == "idempotency_in_flight"
        # Once it is done, every retry replays it.
        late = await http.post(f"/v1/wishes/{wish_id}/claims", json={"slots": 1}, headers=headers)
        assert late.status_code == 201
        assert late.headers["idempotent-replayed"] == "true"
        assert late.json()["id"] in created
    claims = await _count(clean_database)
    assert claims == 1
    assert await violations(clean_database) == {}


async def _count(database_url: str) -> int:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.core.config import normalize_database_url

    engine = create_async_engine(normalize_database_url(database_url))
    try:
        async with engine.connect() as connection:
            return int((await connection.execute(text("SELECT count(*) FROM claims"))).scalar_one())
    finally:
        await engine.dispose()


async def test_an_oversized_body_is_refused_before_it_is_held(api: Api) -> None:
    big = b"{" + b" " * (11 * 1024 * 1024) + b"}"
    response = await api.client.post(
        "/v1/auth/register",
        content=big,
        headers={"Idempotency-Key": "big-1", "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert (await api.sql("SELECT count(*) FROM idempotency_keys"))[0][0] == 0


async def test_a_lost_refresh_answer_is_replayed_sealed(api: Api) -> None:
    """A refresh token is spent by its first use: without a replay, a phone whose answer
    was lost would present it again and have its whole login revoked."""
    await api.register("13911113333")
    pair = await api.login("13911113333")
    body = {"refresh_token": pair["refresh_token"]}
    headers = {"Idempotency-Key": "refresh-1"}
    first = await api.client.post("/v1/auth/refresh", json=body, headers=headers)
    again = await api.client.post("/v1/auth/refresh", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    # Nothing was revoked: the pair the phone finally got works.
    refreshed = await api.client.post(
        "/v1/auth/refresh", json={"refresh_token": first.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200
    # The stored answer is sealed: a copy of the database holds no usable token, and the
    # key the client chose is not stored either.
    [(stored_key, stored_body)] = await api.sql("SELECT key, response_body FROM idempotency_keys")
    assert stored_key != "refresh-1"
    assert isinstance(stored_body, bytes)
    for token in (first.json()["refresh_token"], first.json()["access_token"]):
        assert token.encode() not in stored_body
    # Without a key a spent token stays spent (and revokes the login, as before).
    reused = await api.client.post("/v1/auth/refresh", json=body)
    assert_problem(reused, 401, "invalid_refresh_token")


async def test_a_credential_key_with_another_body_runs_as_a_new_request(api: Api) -> None:
    """No "wrong body" oracle on the token routes: the same key with another password is
    just another login attempt, checked (and counted) like any other."""
    await api.register("13911113334")
    headers = {"Idempotency-Key": "login-2"}
    good = {"phone": "13911113334", "password": "password-123"}
    first = await api.client.post("/v1/auth/token", json=good, headers=headers)
    assert first.status_code == 200
    guess = await api.client.post(
        "/v1/auth/token", json={**good, "password": "password-124"}, headers=headers
    )
    assert_problem(guess, 401, "invalid_credentials")
    replay = await api.client.post("/v1/auth/token", json=good, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()


async def test_a_credential_answer_is_replayed_only_within_its_window(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    await api.register("13911113335")
    body = {"phone": "13911113335", "password": "password-123"}
    headers = {"Idempotency-Key": "login-3"}
    first = await api.client.post("/v1/auth/token", json=body, headers=headers)
    monkeypatch.setattr(idempotency, "CREDENTIAL_REPLAY_WINDOW", timedelta(0))
    later = await api.client.post("/v1/auth/token", json=body, headers=headers)
    assert later.status_code == 200
    assert "idempotent-replayed" not in later.headers
    assert later.json()["refresh_token"] != first.json()["refresh_token"]
    # The key now holds the newer answer.
    monkeypatch.undo()
    replay = await api.client.post("/v1/auth/token", json=body, headers=headers)
    assert replay.json() == later.json()
    assert (await api.sql("SELECT count(*) FROM idempotency_keys"))[0][0] == 1
