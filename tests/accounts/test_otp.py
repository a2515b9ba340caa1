"""OTP login: codes by SMS (the file sender), their limits, and the auth endpoints' rate
limits. Time is moved by patching the accounts service's clock; the rate limiter's own
windows are real time, so those tests use limits small enough to reach."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.accounts import otp
from app.accounts import service as accounts_service
from app.core.config import Settings
from app.core.db import create_database, utcnow
from app.core.sms import FileSmsSender, LogSmsSender
from app.main import create_app
from tests.conftest import make_settings
from tests.live import live_server
from tests.problems import assert_problem

pytestmark = pytest.mark.anyio

PHONE = "13800138000"
E164 = "+8613800138000"


@dataclass
class OtpApi:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    sms_file: Path

    async def request(self, phone: str = PHONE, **kwargs: Any) -> httpx.Response:
        return await self.client.post("/v1/auth/otp/request", json={"phone": phone}, **kwargs)

    async def verify(self, code: str, phone: str = PHONE, **kwargs: Any) -> httpx.Response:
        return await self.client.post(
            "/v1/auth/otp/verify", json={"phone": phone, "code": code}, **kwargs
        )

    async def messages(self) -> list[dict[str, Any]]:
        await self.app.state.sms.drain()  # sends start after the commit, in the background
        if not self.sms_file.exists():
            return []
        return [json.loads(line) for line in self.sms_file.read_text().splitlines()]

    async def code(self, phone: str = E164) -> str:
        codes = [m["code"] for m in await self.messages() if m["phone"] == phone]
        assert codes, f"no SMS to {phone}"
        code: str = codes[-1]
        return code

    async def login(self, phone: str = PHONE) -> dict[str, Any]:
        assert (await self.request(phone)).status_code == 202
        response = await self.verify(await self.code(), phone)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def sql(self, statement: str, **params: object) -> list[tuple[object, ...]]:
        engine = create_async_engine(self.settings.async_database_url)
        try:
            async with engine.begin() as connection:
                result = await connection.execute(text(statement), params)
                return [tuple(row) for row in result.all()] if result.returns_rows else []
        finally:
            await engine.dispose()

    async def count(self, table: str) -> object:
        return (await self.sql(f"SELECT count(*) FROM {table}"))[0][0]


@asynccontextmanager
async def otp_api(
    database_url: str, sms_file: Path, client_ip: str = "127.0.0.1", **overrides: object
) -> AsyncIterator[OtpApi]:
    settings = make_settings(database_url, sms_file=sms_file, **overrides)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(client_ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield OtpApi(app=app, client=client, settings=settings, sms_file=sms_file)


@pytest.fixture
async def api(clean_database: str, tmp_path: Path) -> AsyncIterator[OtpApi]:
    async with otp_api(clean_database, tmp_path / "sms.jsonl") as api:
        yield api


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """``clock(seconds)`` moves the accounts service's time that far from the real time."""

    def move(seconds: float) -> None:
        monkeypatch.setattr(
            accounts_service, "utcnow", lambda: utcnow() + timedelta(seconds=seconds)
        )

    return move


def assert_rate_limited(response: httpx.Response, code: str = "rate_limited") -> None:
    body = assert_problem(response, 429, code)
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    assert body["retry_after"] == retry_after


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


# --- the happy path -----------------------------------------------------------------------


async def test_first_login_registers_and_the_second_logs_in(
    api: OtpApi, clock: Callable[[float], None]
) -> None:
    requested = await api.request("138 0013 8000")
    assert requested.status_code == 202
    # The development sender wrote the code before the answer left: no waiting needed.
    assert '"phone": "+8613800138000"' in api.sms_file.read_text()
    assert requested.json() == {"expires_in": 300, "resend_after": 60}

    [message] = await api.messages()
    assert message["phone"] == E164
    assert len(message["code"]) == 6
    assert message["code"].isdigit()
    assert message["code"] in message["text"]
    assert message["template"] == "login_code"
    assert message["sent_at"].endswith("Z")
    # Stored hashed: the table never holds the code.
    [(code_hash,)] = await api.sql("SELECT code_hash FROM otp_codes")
    assert isinstance(code_hash, str)
    assert message["code"] not in code_hash

    first = await api.verify(message["code"])
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == api.settings.access_token_ttl_seconds
    assert tokens["refresh_token"]
    assert tokens["refresh_expires_in"] > 0
    me = await api.client.get(
        "/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["phone"] == E164
    assert me.json()["display_name"] == "居民8000"
    assert me.json()["roles"] == ["resident"]
    assert await api.sql("SELECT password_hash FROM users") == [(None,)]
    # The refresh token works like a password login's.
    refreshed = await api.client.post(
        "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200

    clock(61)  # past the resend cooldown
    second = await api.login()
    assert second["refresh_token"] != tokens["refresh_token"]
    assert await api.count("users") == 1
    me_again = await api.client.get(
        "/v1/me", headers={"Authorization": f"Bearer {second['access_token']}"}
    )
    assert me_again.json()["id"] == me.json()["id"]


async def test_a_lost_verify_answer_is_replayed_under_its_key(api: OtpApi) -> None:
    """The code is spent by its first use; the retry of a dropped verify gets that first
    answer back rather than 400 otp_expired and another SMS round."""
    assert (await api.request()).status_code == 202
    code = await api.code()
    headers = {"Idempotency-Key": "verify-1"}
    first = await api.verify(code, headers=headers)
    again = await api.verify(code, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await api.count("users") == 1
    # Without the key the code is spent, as before.
    assert_problem(await api.verify(code), 400, "otp_expired")


async def test_a_password_user_logs_in_by_code_and_answers_do_not_tell_who_has_an_account(
    api: OtpApi,
) -> None:
    registered = await api.client.post(
        "/v1/auth/register",
        json={"phone": PHONE, "password": "password-123", "display_name": "王阿姨"},
    )
    assert registered.status_code == 201
    known = await api.request(PHONE)
    unknown = await api.request("13900139000")
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())

    # Wrong codes answer the same for both too.
    known_code, unknown_code = await api.code(), await api.code("+8613900139000")
    wrong_known = await api.verify(wrong(known_code), PHONE)
    wrong_unknown = await api.verify(wrong(unknown_code), "13900139000")
    assert (wrong_known.status_code, wrong_known.json()) == (
        wrong_unknown.status_code,
        wrong_unknown.json(),
    )
    assert wrong_known.json()["code"] == "otp_invalid"

    tokens = (await api.verify(known_code)).json()
    me = await api.client.get(
        "/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.json()["id"] == registered.json()["id"]
    assert me.json()["display_name"] == "王阿姨"  # not renamed
    assert await api.count("users") == 1


# --- wrong, expired, used, exhausted codes ----------------------------------------------------


async def test_a_wrong_code_is_400_and_counts_an_attempt(api: OtpApi) -> None:
    await api.request()
    code = await api.code()
    body = assert_problem(
        await api.verify(wrong(code), headers={"Accept-Language": "en"}), 400, "otp_invalid"
    )
    assert body["attempts_remaining"] == 4
    assert body["detail"] == "The code is wrong; 4 tries left."
    assert await api.sql("SELECT attempts, used_at FROM otp_codes") == [(1, None)]
    assert await api.count("users") == 0
    assert (await api.verify(code)).status_code == 200


async def test_five_wrong_codes_kill_the_code(api: OtpApi) -> None:
    await api.request()
    code = await api.code()
    remaining = [
        assert_problem(await api.verify(wrong(code)), 400, "otp_invalid")["attempts_remaining"]
        for _ in range(5)
    ]
    assert remaining == [4, 3, 2, 1, 0]
    # Dead: even the right code is refused now, and nothing more is counted.
    assert_problem(await api.verify(code), 400, "otp_attempts_exceeded")
    assert await api.sql("SELECT attempts, used_at FROM otp_codes") == [(5, None)]
    assert await api.count("users") == 0
    assert await api.count("refresh_tokens") == 0


async def test_an_expired_code_is_refused(api: OtpApi, clock: Callable[[float], None]) -> None:
    await api.request()
    code = await api.code()
    clock(301)
    assert_problem(await api.verify(code), 400, "otp_expired")
    assert await api.count("users") == 0
    # Not counted as an attempt (unless the clock's purge, seeing the moved time, already
    # deleted the expired code).
    assert await api.sql("SELECT attempts FROM otp_codes") in ([(0,)], [])


async def test_a_code_logs_in_once(api: OtpApi) -> None:
    await api.request()
    code = await api.code()
    assert (await api.verify(code)).status_code == 200
    assert_problem(await api.verify(code), 400, "otp_expired")
    assert await api.count("refresh_tokens") == 1


async def test_a_code_never_sent_is_refused(api: OtpApi) -> None:
    assert_problem(await api.verify("123456"), 400, "otp_expired")
    assert await api.count("otp_codes") == 0


async def test_expired_codes_are_purged(api: OtpApi, clock: Callable[[float], None]) -> None:
    await api.request(PHONE)
    await api.request("13900139000")
    await api.sql("UPDATE otp_codes SET expires_at = created_at WHERE phone = :p", p=E164)
    database = create_database(api.settings)
    try:
        async with database.transaction(write=True) as session:
            await accounts_service.purge_expired_otp_codes(session)
    finally:
        await database.dispose()
    assert await api.sql("SELECT phone FROM otp_codes") == [("+8613900139000",)]


# --- resend cooldown and rate limits -------------------------------------------------------


async def test_resend_cooldown(api: OtpApi, clock: Callable[[float], None]) -> None:
    await api.request()
    first = await api.code()
    [(first_hash,)] = await api.sql("SELECT code_hash FROM otp_codes")

    clock(20)
    again = await api.request(headers={"Accept-Language": "en"})
    assert_rate_limited(again, "otp_cooldown")
    assert 39 <= int(again.headers["Retry-After"]) <= 41
    assert "40 seconds" in again.json()["detail"] or "41 seconds" in again.json()["detail"]
    # Nothing changed: no SMS, the same code, still valid.
    assert len(await api.messages()) == 1
    assert await api.sql("SELECT code_hash FROM otp_codes") == [(first_hash,)]

    clock(61)
    assert (await api.request()).status_code == 202
    second = await api.code()
    assert len(await api.messages()) == 2
    # A new code replaces the previous one.
    if second != first:
        assert_problem(await api.verify(first), 400, "otp_invalid")
    assert (await api.verify(second)).status_code == 200


async def test_per_phone_limit(
    clean_database: str, tmp_path: Path, clock: Callable[[float], None]
) -> None:
    async with otp_api(
        clean_database, tmp_path / "sms.jsonl", otp_phone_rate_limit="2/hour"
    ) as api:
        for step in range(2):
            clock(61 * step)
            assert (await api.request()).status_code == 202
        [(hash_before,)] = await api.sql("SELECT code_hash FROM otp_codes")
        clock(61 * 2)
        assert_rate_limited(await api.request())
        # Nothing changed: no third SMS, the second code still stands.
        assert len(await api.messages()) == 2
        assert await api.sql("SELECT code_hash FROM otp_codes") == [(hash_before,)]
        assert (await api.verify(await api.code())).status_code == 200
        # Per phone: another phone from the same address is served.
        assert (await api.request("13900139000")).status_code == 202


async def test_cooldown_taps_do_not_use_up_the_phone_limit(
    clean_database: str, tmp_path: Path, clock: Callable[[float], None]
) -> None:
    async with otp_api(
        clean_database, tmp_path / "sms.jsonl", otp_phone_rate_limit="2/hour"
    ) as api:
        assert (await api.request()).status_code == 202
        for _ in range(3):
            assert_rate_limited(await api.request(), "otp_cooldown")
        clock(61)
        assert (await api.request()).status_code == 202


async def test_per_ip_limit_on_code_requests(clean_database: str, tmp_path: Path) -> None:
    sms_file = tmp_path / "sms.jsonl"
    async with otp_api(
        clean_database, sms_file, client_ip="10.0.0.1", otp_ip_rate_limit="2/hour"
    ) as api:
        assert (await api.request("13800138000")).status_code == 202
        assert (await api.request("13900139000")).status_code == 202
        assert_rate_limited(await api.request("13700137000"))
        assert len(await api.messages()) == 2
        assert await api.count("otp_codes") == 2
        # Another address is not held back.
        other = httpx.ASGITransport(app=api.app, client=("10.0.0.2", 40000))
        async with httpx.AsyncClient(transport=other, base_url="http://testserver") as client:
            response = await client.post("/v1/auth/otp/request", json={"phone": "13700137000"})
            assert response.status_code == 202


async def test_per_ip_limit_on_auth_failures(clean_database: str, tmp_path: Path) -> None:
    async with otp_api(clean_database, tmp_path / "sms.jsonl", auth_rate_limit="4/minute") as api:
        # Successes do not count: one address (a service centre) signs many people up and in.
        for n in range(6):
            registered = await api.client.post(
                "/v1/auth/register",
                json={"phone": f"1390013900{n}", "password": "password-123", "display_name": "x"},
            )
            assert registered.status_code == 201
        registered = await api.client.post(
            "/v1/auth/register",
            json={"phone": PHONE, "password": "password-123", "display_name": "王阿姨"},
        )
        assert registered.status_code == 201
        for _ in range(6):
            login = await api.client.post(
                "/v1/auth/token", json={"phone": PHONE, "password": "password-123"}
            )
            assert login.status_code == 200
        refresh = await api.client.post(
            "/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
        )
        assert refresh.status_code == 200
        # Failures do: a phone taken, a wrong password, a bad refresh token, a wrong code.
        taken = await api.client.post(
            "/v1/auth/register",
            json={"phone": PHONE, "password": "password-123", "display_name": "x"},
        )
        assert_problem(taken, 409, "phone_taken")
        wrong = await api.client.post(
            "/v1/auth/token", json={"phone": "13900139001", "password": "guess-guess"}
        )
        assert_problem(wrong, 401, "invalid_credentials")
        spent = await api.client.post("/v1/auth/refresh", json={"refresh_token": "not-a-token"})
        assert_problem(spent, 401, "invalid_refresh_token")
        assert_problem(await api.verify("123456"), 400, "otp_expired")  # the 4th failure
        # Every auth call from this address is refused now, and changes nothing.
        assert_rate_limited(
            await api.client.post(
                "/v1/auth/register",
                json={"phone": "13900139999", "password": "password-123", "display_name": "x"},
            )
        )
        assert_rate_limited(
            await api.client.post(
                "/v1/auth/token", json={"phone": PHONE, "password": "password-123"}
            )
        )
        assert_rate_limited(
            await api.client.post(
                "/v1/auth/refresh", json={"refresh_token": refresh.json()["refresh_token"]}
            )
        )
        assert_rate_limited(await api.verify("123456"))
        assert await api.count("users") == 7
        assert await api.sql("SELECT count(*) FROM refresh_tokens WHERE spent_at IS NULL") == [(6,)]


async def test_password_login_is_limited_per_phone(clean_database: str, tmp_path: Path) -> None:
    async with otp_api(
        clean_database, tmp_path / "sms.jsonl", login_phone_rate_limit="3/minute"
    ) as api:
        for phone in (PHONE, "13900139000"):
            response = await api.client.post(
                "/v1/auth/register",
                json={"phone": phone, "password": "password-123", "display_name": "x"},
            )
            assert response.status_code == 201

        async def login(password: str, phone: str = PHONE) -> httpx.Response:
            return await api.client.post(
                "/v1/auth/token", json={"phone": phone, "password": password}
            )

        # Logging in often (several devices, a test suite) is never refused: a good login
        # starts the count again.
        for _ in range(5):
            assert (await login("password-123")).status_code == 200
        for _ in range(2):
            assert_problem(await login("guess-guess"), 401, "invalid_credentials")
        assert (await login("password-123")).status_code == 200
        before = await api.count("refresh_tokens")
        for _ in range(3):
            assert_problem(await login("guess-guess"), 401, "invalid_credentials")
        # The 4th try is refused even with the right password: guessing is throttled.
        assert_rate_limited(await login("password-123"))
        assert await api.count("refresh_tokens") == before
        # Another phone logs in from the same address.
        assert (await login("password-123", "13900139000")).status_code == 200
        # Unknown phones are limited the same way (no telling them apart).
        for _ in range(3):
            assert_problem(await login("guess-guess", "13700137000"), 401, "invalid_credentials")
        assert_rate_limited(await login("guess-guess", "13700137000"))


async def test_rate_limits_off_turns_the_limits_off(
    clean_database: str, tmp_path: Path, clock: Callable[[float], None]
) -> None:
    async with otp_api(
        clean_database,
        tmp_path / "sms.jsonl",
        rate_limits="off",
        auth_rate_limit="1/hour",
        login_phone_rate_limit="1/hour",
        otp_phone_rate_limit="1/hour",
        otp_ip_rate_limit="1/hour",
    ) as api:
        for step in range(3):
            clock(61 * step)
            await api.login()
            login = await api.client.post(
                "/v1/auth/token", json={"phone": PHONE, "password": "wrong-password"}
            )
            assert login.status_code == 401
        # The resend cooldown is part of what a code is, not a rate limit: it stays.
        assert_rate_limited(await api.request(), "otp_cooldown")


# --- bad input, SMS failures, retries --------------------------------------------------------


async def test_bad_input_is_422_and_counts_nothing(api: OtpApi) -> None:
    await api.request()
    code = await api.code()
    for body in [
        {"phone": "12345"},
        {"phone": ""},
        {"phone": PHONE, "extra": 1},
        {"phone": 13800138000},
        {},
    ]:
        response = await api.client.post("/v1/auth/otp/request", json=body)
        assert_problem(response, 422, "validation_failed")
    for body in [
        {"phone": PHONE, "code": "12345"},
        {"phone": PHONE, "code": "1234567"},
        {"phone": PHONE, "code": "abcdef"},
        {"phone": PHONE, "code": "١٢٣٤٥٦"},  # Arabic-Indic digits are digits, not ours
        {"phone": PHONE, "code": " 123456"},
        {"phone": PHONE, "code": 123456},
        {"phone": PHONE},
        {"phone": "12345", "code": code},
        {"phone": PHONE, "code": code, "extra": True},
    ]:
        response = await api.client.post("/v1/auth/otp/verify", json=body)
        problem = assert_problem(response, 422, "validation_failed")
        assert problem["errors"]
        assert code not in response.text
    malformed = await api.client.post(
        "/v1/auth/otp/verify",
        content=b'{"phone": ',
        headers={"Content-Type": "application/json"},
    )
    assert_problem(malformed, 400, "malformed_json")
    assert len(await api.messages()) == 1
    assert await api.sql("SELECT attempts, used_at FROM otp_codes") == [(0, None)]
    assert (await api.verify(code)).status_code == 200


class FailingSender:
    async def send(
        self, phone: str, text: str, *, template: str, params: Mapping[str, str]
    ) -> None:
        raise ConnectionError("provider down")


async def test_a_failed_send_is_logged_and_harmless(
    api: OtpApi, caplog: pytest.LogCaptureFixture, clock: Callable[[float], None]
) -> None:
    working = api.app.state.sms.sender
    api.app.state.sms.sender = FailingSender()
    with caplog.at_level(logging.ERROR, logger="microwish.sms"):
        response = await api.request()
        await api.app.state.sms.drain()
    assert response.status_code == 202
    assert "138****8000" in caplog.text
    assert PHONE not in caplog.text
    # The user asks again after the cooldown and gets a working code.
    api.app.state.sms.sender = working
    clock(61)
    assert (await api.request()).status_code == 202
    assert (await api.verify(await api.code())).status_code == 200


async def test_no_sms_when_the_transaction_rolls_back(
    clean_database: str, tmp_path: Path, clock: Callable[[float], None]
) -> None:
    # The phone limit refuses after the code was stored: the rollback takes the code and
    # the SMS with it (the send waits for a commit that never comes).
    async with otp_api(
        clean_database, tmp_path / "sms.jsonl", otp_phone_rate_limit="1/hour"
    ) as api:
        assert (await api.request()).status_code == 202
        clock(61)
        assert_rate_limited(await api.request())
        assert len(await api.messages()) == 1


async def test_a_retried_request_with_an_idempotency_key_sends_one_sms(api: OtpApi) -> None:
    headers = {"Idempotency-Key": "otp-request-1"}
    first = await api.request(headers=headers)
    replay = await api.request(headers=headers)
    assert first.status_code == replay.status_code == 202
    assert replay.json() == first.json()
    assert len(await api.messages()) == 1
    assert (await api.verify(await api.code())).status_code == 200


# --- senders -------------------------------------------------------------------------------


async def test_file_sender_appends_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "sms.jsonl"
    sender = FileSmsSender(path)
    message = otp.login_sms(E164, "012345", 300)
    await asyncio.gather(
        *(
            sender.send(message.phone, message.text, template=message.template, params=p)
            for p in ({"code": "012345"}, {"code": "999999"})
        )
    )
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["code"] for r in records) == ["012345", "999999"]
    assert all(r["phone"] == E164 and "012345" in r["text"] for r in records)
    assert "5 分钟" in message.text
    datetime.fromisoformat(records[0]["sent_at"])


async def test_log_sender_masks_the_phone(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="microwish.sms"):
        await LogSmsSender().send(E164, "code 123456", template="login_code", params={})
    assert "138****8000" in caplog.text
    assert E164 not in caplog.text


def test_codes_are_six_digits_and_hashes_are_keyed() -> None:
    codes = {otp.new_code() for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert len(codes) > 150
    assert otp.code_hash(E164, "123456", "a" * 32) != otp.code_hash(E164, "123456", "b" * 32)
    assert otp.code_hash(E164, "123456", "a" * 32) != otp.code_hash(
        "+8613900139000", "123456", "a" * 32
    )
    assert E164 not in otp.phone_key(E164, "a" * 32)
    assert otp.default_display_name(E164) == "居民8000"


# --- concurrency, against a real server ------------------------------------------------------


@pytest.mark.server
async def test_concurrent_verifies_issue_tokens_once_and_guesses_stop_at_five(
    clean_database: str, tmp_path: Path
) -> None:
    sms_file = tmp_path / "sms.jsonl"
    log = tmp_path / "server.log"
    env = {"MICROWISH_SMS_FILE": str(sms_file), "MICROWISH_AUTH_RATE_LIMIT": "100000/minute"}
    with live_server(clean_database, log, **env) as base_url:
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as http:

            async def code_for(phone: str) -> str:
                for _ in range(200):  # the SMS leaves just after the response
                    if sms_file.exists():
                        for line in reversed(sms_file.read_text().splitlines()):
                            record = json.loads(line)
                            if record["phone"] == phone:
                                code: str = record["code"]
                                return code
                    await asyncio.sleep(0.05)
                raise AssertionError(f"no SMS to {phone}")

            async def verify(phone: str, code: str) -> str:
                response = await http.post(
                    "/v1/auth/otp/verify", json={"phone": phone, "code": code}
                )
                return "tokens" if response.status_code == 200 else str(response.json()["code"])

            # Ten verifies of the right code at once: one token pair.
            assert (
                await http.post("/v1/auth/otp/request", json={"phone": PHONE})
            ).status_code == 202
            code = await code_for(E164)
            outcomes = Counter(await asyncio.gather(*(verify(PHONE, code) for _ in range(10))))
            assert outcomes == {"tokens": 1, "otp_expired": 9}

            # Twenty wrong guesses at once: five are compared, the rest find the code dead.
            other, other_e164 = "13900139000", "+8613900139000"
            assert (
                await http.post("/v1/auth/otp/request", json={"phone": other})
            ).status_code == 202
            right = await code_for(other_e164)
            guesses = [f"{(int(right) + n) % 1_000_000:06d}" for n in range(1, 21)]
            outcomes = Counter(await asyncio.gather(*(verify(other, g) for g in guesses)))
            assert outcomes == {"otp_invalid": 5, "otp_attempts_exceeded": 15}
            assert await verify(other, right) == "otp_attempts_exceeded"

    engine = create_async_engine(make_settings(clean_database).async_database_url)
    try:
        async with engine.connect() as connection:
            users = (await connection.execute(text("SELECT phone FROM users"))).all()
            tokens = (await connection.execute(text("SELECT count(*) FROM refresh_tokens"))).one()
            attempts = (
                await connection.execute(
                    text("SELECT attempts FROM otp_codes WHERE phone = :p"), {"p": other_e164}
                )
            ).one()
    finally:
        await engine.dispose()
    assert [tuple(u) for u in users] == [(E164,)]
    assert tokens[0] == 1
    assert attempts[0] == 5
    server_log = log.read_text()
    assert "Traceback" not in server_log, server_log[-3000:]
