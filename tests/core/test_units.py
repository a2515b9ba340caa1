"""Plumbing without a database: settings, language negotiation, cursors, phones."""

from __future__ import annotations

import pytest

from app.core.config import (
    PLACEHOLDER_SECRET,
    ConfigurationError,
    Settings,
    normalize_database_url,
)
from app.core.errors import ValidationFailed
from app.core.i18n import negotiate_language
from app.core.pagination import decode_cursor, encode_cursor
from app.core.phone import mask_phone, normalize_phone


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://user@db:5432/app", "postgresql+asyncpg://user@db:5432/app"),
        ("postgres://user:pw@db/app", "postgresql+asyncpg://user:pw@db/app"),
        ("postgresql+psycopg://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql://u@h/d?sslmode=require", "postgresql+asyncpg://u@h/d?ssl=require"),
        ("sqlite:///./data/x.db", "sqlite+aiosqlite:///./data/x.db"),
        ("sqlite:////abs/x.db", "sqlite+aiosqlite:////abs/x.db"),
    ],
)
def test_database_urls_get_our_driver(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


def test_unsupported_database_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        normalize_database_url("mysql://root@localhost/db")


def test_placeholder_secret_is_refused_outside_development() -> None:
    assert Settings(env="development").secret_key == PLACEHOLDER_SECRET
    with pytest.raises(ConfigurationError):
        Settings(env="production")
    with pytest.raises(ConfigurationError):
        Settings(env="production", secret_key="short")
    assert Settings(env="production", secret_key="x" * 40).env == "production"


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICROWISH_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("MICROWISH_ACCESS_TOKEN_TTL_SECONDS", "600")
    settings = Settings()
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.access_token_ttl_seconds == 600
    assert settings.is_sqlite


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "zh-CN"),
        ("", "zh-CN"),
        ("en", "en"),
        ("en-GB,en;q=0.8", "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
        ("fr, en;q=0.5", "en"),
        ("fr", "zh-CN"),
        ("en;q=0, zh;q=0.1", "zh-CN"),
        ("en;q=garbage", "zh-CN"),
        ("zh-TW", "zh-CN"),
    ],
)
def test_language_negotiation(header: str | None, expected: str) -> None:
    assert negotiate_language(header) == expected


def test_cursor_round_trip_and_tampering() -> None:
    cursor = encode_cursor("wishes", ["2026-01-01T00:00:00Z", 42])
    assert decode_cursor("wishes", cursor, 2) == ["2026-01-01T00:00:00Z", 42]
    for bad in (
        "",
        "%%%",
        "bm90IGpzb24",
        encode_cursor("regions", [1]),
        encode_cursor("wishes", [True, 1]),
    ):
        with pytest.raises(ValidationFailed):
            decode_cursor("wishes", bad, 2)
    with pytest.raises(ValidationFailed):
        decode_cursor("regions", encode_cursor("regions", [2**70]), 1)


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("13912345678", "+8613912345678"),
        ("+86 139 1234 5678", "+8613912345678"),
        ("0086-139-1234-5678", "+8613912345678"),
        ("+1 650 253 0000", "+16502530000"),
    ],
)
def test_phone_normalisation(raw: str, e164: str) -> None:
    assert normalize_phone(raw) == e164


@pytest.mark.parametrize("raw", ["", "123", "abc", "1" * 40, "+86 12345"])
def test_invalid_phones(raw: str) -> None:
    with pytest.raises(ValueError, match="phone"):
        normalize_phone(raw)


def test_phone_masking() -> None:
    assert mask_phone("+8613912345678") == "139****5678"


def test_a_requests_token_is_decoded_once() -> None:
    """The Idempotency-Key middleware and the bearer dependency share one decode per request;
    an invalid token is refused every time, and the claims never outlive the request's
    scope (nor answer for another token)."""
    from unittest import mock

    from app.core import security
    from app.core.errors import Unauthorized

    secret = "s" * 48
    token = security.issue_access_token(user_id=7, secret_key=secret, ttl_seconds=60)
    other = security.issue_access_token(user_id=8, secret_key=secret, ttl_seconds=60)
    scope: dict[str, object] = {}
    with mock.patch.object(
        security, "decode_access_token", wraps=security.decode_access_token
    ) as decode:
        assert security.request_access_claims(scope, token, secret_key=secret).user_id == 7
        assert security.request_access_claims(scope, token, secret_key=secret).user_id == 7
        assert decode.call_count == 1
        assert security.request_access_claims(scope, other, secret_key=secret).user_id == 8
        assert security.request_access_claims({}, token, secret_key=secret).user_id == 7
        assert decode.call_count == 3
        for _ in range(2):
            with pytest.raises(Unauthorized):
                security.request_access_claims(scope, token + "x", secret_key=secret)
        assert decode.call_count == 5
