from __future__ import annotations

from datetime import timedelta

import jwt
import pytest

from app.core.db import utcnow
from tests.conftest import TEST_SECRET, Api
from tests.problems import PROBLEM

pytestmark = pytest.mark.anyio


async def test_register_returns_a_resident_with_e164_phone(api: Api) -> None:
    response = await api.client.post(
        "/v1/auth/register",
        json={"phone": "138 0013 8000", "password": "password-123", "display_name": " 王阿姨 "},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["phone"] == "+8613800138000"
    assert body["display_name"] == "王阿姨"
    assert body["roles"] == ["resident"]
    assert body["grants"] == []
    assert isinstance(body["id"], str)
    assert body["created_at"].endswith("Z")
    assert "password" not in response.text


async def test_duplicate_phone_in_any_spelling_is_409(api: Api) -> None:
    await api.register("13800138000")
    response = await api.client.post(
        "/v1/auth/register",
        json={"phone": "+86 138-0013-8000", "password": "password-456", "display_name": "另一个"},
    )
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "phone_taken"
    assert await api.sql("SELECT count(*) FROM users") == [(1,)]


async def test_register_refuses_bad_input_without_echoing_it(api: Api) -> None:
    cases = [
        {"phone": "12345", "password": "password-123", "display_name": "x"},
        {"phone": "13800138000", "password": "short", "display_name": "x"},
        {"phone": "13800138000", "password": "password-123", "display_name": ""},
        {"phone": "13800138000", "password": "password-123", "display_name": "x" * 51},
        {"phone": "13800138000", "password": "password-123", "display_name": "x", "is_admin": True},
        {"phone": 13800138000, "password": "password-123", "display_name": "x"},
    ]
    for body in cases:
        response = await api.client.post("/v1/auth/register", json=body)
        assert response.status_code == 422, body
        problem = response.json()
        assert problem["code"] == "validation_failed"
        assert problem["errors"], problem
        assert "password-123" not in response.text
    assert await api.sql("SELECT count(*) FROM users") == [(0,)]


async def test_token_and_me(api: Api) -> None:
    await api.register("13800138000", display_name="王阿姨")
    tokens = await api.login("13800138000")
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    response = await api.client.get(
        "/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert response.status_code == 200
    assert response.json()["display_name"] == "王阿姨"
    assert response.json()["phone"] == "+8613800138000"


async def test_wrong_password_and_unknown_phone_are_the_same_401(api: Api) -> None:
    await api.register("13800138000")
    wrong = await api.client.post(
        "/v1/auth/token", json={"phone": "13800138000", "password": "not-the-password"}
    )
    unknown = await api.client.post(
        "/v1/auth/token", json={"phone": "13900139000", "password": "password-123"}
    )
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["code"] == "invalid_credentials"
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_refresh_rotates_and_a_spent_token_revokes_its_family(api: Api) -> None:
    await api.register("13800138000")
    first = await api.login("13800138000")

    rotated = await api.client.post(
        "/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    # A new pair, even within the same second as the login.
    assert second["access_token"] != first["access_token"]

    replay = await api.client.post(
        "/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert replay.status_code == 401
    assert replay.json()["code"] == "invalid_refresh_token"

    # The replay revoked the whole family, including the token issued to the rightful owner.
    after_replay = await api.client.post(
        "/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert after_replay.status_code == 401
    # Only stored hashed.
    stored = await api.sql("SELECT token_hash FROM refresh_tokens")
    assert all(first["refresh_token"] not in str(row) for row in stored)


async def test_another_login_family_survives_a_replay(api: Api) -> None:
    await api.register("13800138000")
    phone_a = await api.login("13800138000")
    phone_b = await api.login("13800138000")
    await api.client.post("/v1/auth/refresh", json={"refresh_token": phone_a["refresh_token"]})
    await api.client.post("/v1/auth/refresh", json={"refresh_token": phone_a["refresh_token"]})
    response = await api.client.post(
        "/v1/auth/refresh", json={"refresh_token": phone_b["refresh_token"]}
    )
    assert response.status_code == 200


async def test_unknown_and_expired_refresh_tokens_are_401(api: Api) -> None:
    await api.register("13800138000")
    tokens = await api.login("13800138000")
    unknown = await api.client.post("/v1/auth/refresh", json={"refresh_token": "nope"})
    assert unknown.status_code == 401
    await api.sql(
        "UPDATE refresh_tokens SET expires_at = :past", past=utcnow() - timedelta(seconds=1)
    )
    expired = await api.client.post(
        "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert expired.status_code == 401


async def test_me_requires_a_valid_token(api: Api) -> None:
    missing = await api.client.get("/v1/me")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["code"] == "unauthenticated"

    garbage = await api.client.get("/v1/me", headers={"Authorization": "Bearer garbage"})
    assert garbage.status_code == 401

    forged = jwt.encode(
        {"sub": "1", "aud": "microwish:access", "exp": 9999999999},
        "wrong-key-wrong-key-wrong-key-wrong-key",
        "HS256",
    )
    response = await api.client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401

    expired = jwt.encode({"sub": "1", "aud": "microwish:access", "exp": 1000}, TEST_SECRET, "HS256")
    response = await api.client.get("/v1/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert response.json()["code"] == "token_expired"

    # Signed with our key (a leaked one, say) but not what we issue: 401, never a 500.
    await api.register("13800138000")
    for claims in (
        {"sub": str(2**63)},
        {"sub": " 1"},
        {"sub": "１"},
        {"sub": 1},
        {"sub": "1", "exp": 10**20},
    ):
        odd = jwt.encode(
            {"sub": "1", "aud": "microwish:access", "exp": 9999999999, **claims},
            TEST_SECRET,
            "HS256",
        )
        response = await api.client.get("/v1/me", headers={"Authorization": f"Bearer {odd}"})
        assert response.status_code == 401, (claims, response.text)


async def test_health_answers_head_for_load_balancers(api: Api) -> None:
    response = await api.client.head("/v1/health")
    assert response.status_code == 200
    assert response.content == b""


async def test_token_of_a_deleted_user_is_401(api: Api) -> None:
    headers = await api.user_headers("13800138000")
    await api.sql("DELETE FROM users")
    response = await api.client.get("/v1/me", headers=headers)
    assert response.status_code == 401
