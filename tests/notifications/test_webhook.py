"""Push delivery by webhook against a real receiver (Starlette on uvicorn, 127.0.0.1, so
private targets are allowed here): Standard Webhooks signatures checked independently,
retries with backoff, the dead letter, several senders sharing the outbox, a request that
never waits for delivery; and the private-address rule, at start and at send time."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.accounts.models import User
from app.core.config import ConfigurationError, Settings
from app.core.db import create_database, utcnow
from app.main import create_app
from app.notifications.delivery import signing, targets
from app.notifications.delivery.webhook import WebhookSender, enable_outbox, retry_delay
from app.notifications.models import Notification, NotificationDelivery
from tests.conftest import Api, make_settings
from tests.live import free_port
from tests.world import build_world

pytestmark = pytest.mark.anyio

SECRET = signing.new_secret()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()


@dataclass
class Receiver:
    """A push gateway stand-in: records every request; answers 500 to the first
    ``fail_first`` (or to all, ``always_fail``); waits for ``gate`` before answering."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    fail_first: int = 0
    always_fail: bool = False
    gate: asyncio.Event | None = None

    async def handle(self, request: Request) -> Response:
        self.requests.append(
            Received(dict(request.headers), await request.body(), time.monotonic())
        )
        if self.gate is not None:
            await self.gate.wait()
        if self.always_fail or len(self.requests) <= self.fail_first:
            return Response("gateway down", status_code=500)
        return Response(status_code=204)

    def ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.requests]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    port = free_port()
    app = Starlette(routes=[Route("/hook", hook.handle, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    hook.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield hook
    finally:
        if hook.gate is not None:
            hook.gate.set()
        server.should_exit = True
        await task


def push_settings(database_url: str, receiver: Receiver, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "push_webhook_url": receiver.url,
        "push_webhook_secret": SECRET,
        "webhook_allow_private": True,
        "push_retry_base_seconds": 0.05,
        "push_retry_max_seconds": 1.0,
        "push_poll_interval_seconds": 0.02,
        "push_timeout_seconds": 5.0,
    }
    values.update(overrides)
    return make_settings(database_url, **values)


@asynccontextmanager
async def push_api(settings: Settings) -> AsyncIterator[Api]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(client=client, settings=settings)


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(15):
        while not await check():  # noqa: ASYNC110 (polls the database and the receiver)
            await asyncio.sleep(0.02)


def verify(received: Received) -> dict[str, Any]:
    """What a push gateway does, from the Standard Webhooks spec rather than our code."""
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    message_id = received.headers["webhook-id"]
    timestamp = received.headers["webhook-timestamp"]
    assert abs(time.time() - int(timestamp)) < 300
    signed = f"{message_id}.{timestamp}.".encode() + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    versions = dict(s.split(",", 1) for s in received.headers["webhook-signature"].split())
    assert hmac.compare_digest(versions["v1"], expected)
    assert received.headers["content-type"] == "application/json"
    body: dict[str, Any] = json.loads(received.body)
    return body


async def outbox(api: Api) -> list[tuple[Any, ...]]:
    return await api.sql(
        "SELECT notification_id, status, attempts, last_error FROM notification_deliveries"
        " ORDER BY notification_id"
    )


async def test_deliveries_are_signed_and_leave_the_outbox(
    clean_database: str, receiver: Receiver
) -> None:
    async with push_api(push_settings(clean_database, receiver)) as api:
        world = await build_world(api)
        wish = await world.wish("C1", approve=False, title="需要一台轮椅")
        await api.client.post(f"/v1/wishes/{wish['id']}/approve", headers=world.organizer)
        [(notification_id, kind)] = await api.sql("SELECT id, kind FROM notifications")
        assert kind == "wish_approved"

        async def delivered() -> bool:
            return bool(receiver.requests) and await outbox(api) == []

        await eventually(delivered)
        [received] = receiver.requests
        body = verify(received)
        assert received.headers["webhook-id"] == f"ntf_{notification_id}"
        assert received.headers["user-agent"].startswith("microwish-webhooks/")
        assert body["type"] == "notification.wish_approved"
        data = body["data"]
        assert data["id"] == str(notification_id)
        assert data["user_id"] == world.resident_id
        assert data["kind"] == "wish_approved"
        assert data["title"] == {
            "zh-CN": "心愿「需要一台轮椅」已通过审核",
            "en": "Your wish “需要一台轮椅” was approved",
        }
        assert data["data"] == {"wish_id": wish["id"], "wish_title": "需要一台轮椅"}
        assert body["timestamp"] == data["created_at"]
        # The contact given with the wish (tests.world) never leaves the service.
        assert b"13912345678" not in received.body
        assert "3栋201".encode() not in received.body
        # The inbox keeps it.
        inbox = await api.client.get("/v1/me/notifications", headers=world.resident)
        assert [n["id"] for n in inbox.json()["items"]] == [str(notification_id)]


async def test_retries_back_off_then_succeed(clean_database: str, receiver: Receiver) -> None:
    receiver.fail_first = 3
    async with push_api(push_settings(clean_database, receiver)) as api:
        world = await build_world(api)
        await world.wish("C1", approve=True)  # approved: one notification

        async def delivered() -> bool:
            return len(receiver.requests) == 4 and await outbox(api) == []

        await eventually(delivered)
        # The same message every time (receivers deduplicate on webhook-id), each attempt
        # signed afresh.
        assert len(set(receiver.ids())) == 1
        bodies = [verify(r) for r in receiver.requests]
        assert all(b == bodies[0] for b in bodies)
        # Backoff: the n-th failure waits at least half of base·2^(n-1) (base 0.05 s here).
        gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
        for failure, gap in enumerate(gaps, start=1):
            assert gap >= 0.05 * 2 ** (failure - 1) / 2 * 0.9, gaps


async def test_dead_letter_after_the_last_attempt(clean_database: str, receiver: Receiver) -> None:
    receiver.always_fail = True
    settings = push_settings(clean_database, receiver, push_max_attempts=3)
    async with push_api(settings) as api:
        world = await build_world(api)
        await world.wish("C1", approve=True)

        async def dead() -> bool:
            rows = await outbox(api)
            return bool(rows) and rows[0][1] == "dead"

        await eventually(dead)
        [(_, status, attempts, last_error)] = await outbox(api)
        assert (status, attempts, last_error) == ("dead", 3, "HTTP 500")
        await asyncio.sleep(0.3)  # well past any backoff: nothing more is sent
        assert len(receiver.requests) == 3
        # The inbox is unaffected by delivery trouble.
        assert (
            await api.client.get("/v1/me/notifications/unread-count", headers=world.resident)
        ).json() == {"unread": 1}


async def test_a_request_never_waits_for_delivery(clean_database: str, receiver: Receiver) -> None:
    receiver.gate = asyncio.Event()  # the gateway hangs until released
    async with push_api(push_settings(clean_database, receiver)) as api:
        world = await build_world(api)
        wish = await world.wish("C1", approve=False)
        started = time.monotonic()
        approved = await asyncio.wait_for(
            api.client.post(f"/v1/wishes/{wish['id']}/approve", headers=world.organizer),
            timeout=5,
        )
        assert approved.status_code == 200
        assert time.monotonic() - started < 2
        await eventually(lambda: _has_requests(receiver, 1))  # in flight, not answered
        assert not receiver.gate.is_set()
        member, _ = await world.member("C1")
        assert (await world.claim(wish["id"], member)).status_code == 201  # still not waiting
        receiver.gate.set()

        async def drained() -> bool:
            return len(receiver.requests) == 2 and await outbox(api) == []

        await eventually(drained)


async def test_a_commit_wakes_the_sender(clean_database: str, receiver: Receiver) -> None:
    """Sent right after the change commits, not at the next poll (a minute away here)."""
    settings = push_settings(clean_database, receiver, push_poll_interval_seconds=60)
    async with push_api(settings) as api:
        world = await build_world(api)
        await asyncio.sleep(0.2)  # the sender's first round is done: it now waits
        wish = await world.wish("C1", approve=False)
        await api.client.post(f"/v1/wishes/{wish['id']}/approve", headers=world.organizer)
        async with asyncio.timeout(5):
            await eventually(lambda: _has_requests(receiver, 1))


async def _has_requests(receiver: Receiver, count: int = 0) -> bool:
    return len(receiver.requests) >= count


async def _seed_outbox(settings: Settings, count: int) -> list[int]:
    """``count`` notifications waiting in the outbox, written directly."""
    engine = create_async_engine(settings.async_database_url)
    now = utcnow()
    try:
        async with engine.begin() as connection:
            user_id = (
                await connection.execute(
                    insert(User)
                    .values(phone="+8613700000001", display_name="居民", created_at=now)
                    .returning(User.id)
                )
            ).scalar_one()
            ids = list(
                (
                    await connection.execute(
                        insert(Notification).returning(Notification.id),
                        [
                            {
                                "user_id": user_id,
                                "kind": "wish_claimed",
                                "data": {"wish_id": str(i), "wish_title": f"心愿{i}"},
                                "created_at": now,
                            }
                            for i in range(count)
                        ],
                    )
                ).scalars()
            )
            await connection.execute(
                insert(NotificationDelivery),
                [
                    {
                        "notification_id": i,
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                    for i in ids
                ],
            )
        return ids
    finally:
        await engine.dispose()


async def test_senders_in_several_processes_share_the_outbox(
    clean_database: str, receiver: Receiver
) -> None:
    settings = push_settings(clean_database, receiver, push_batch_size=7)
    ids = await _seed_outbox(settings, 60)
    # Two "processes": each its own engine and pool, as two servers would have.
    databases = [create_database(settings) for _ in range(2)]
    senders = [WebhookSender(database, settings) for database in databases]
    try:

        async def drain(sender: WebhookSender) -> int:
            sent = 0
            while handled := await sender.deliver_due():
                sent += handled
            return sent

        counts = await asyncio.gather(*(drain(sender) for sender in senders))
        assert sum(counts) == 60
        assert sorted(receiver.ids()) == sorted(f"ntf_{i}" for i in ids)  # each exactly once
        engine = create_async_engine(settings.async_database_url)
        try:
            async with engine.connect() as connection:
                left = await connection.exec_driver_sql(
                    "SELECT count(*) FROM notification_deliveries"
                )
                assert left.scalar_one() == 0
        finally:
            await engine.dispose()
    finally:
        for sender, database in zip(senders, databases, strict=True):
            await sender.close()
            await database.dispose()


def test_private_targets_are_refused_at_start(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    for target in (
        "http://127.0.0.1:9000/hook",
        "http://10.0.0.5/hook",
        "https://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8080/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://localhost:8080/hook",
        "http://100.64.0.1/hook",
    ):
        with pytest.raises(ConfigurationError, match="MICROWISH_WEBHOOK_ALLOW_PRIVATE"):
            make_settings(url, push_webhook_url=target, push_webhook_secret=SECRET)
        allowed = make_settings(
            url, push_webhook_url=target, push_webhook_secret=SECRET, webhook_allow_private=True
        )
        assert allowed.push_webhook_url == target
    public = make_settings(
        url, push_webhook_url="https://push.example.org/hook", push_webhook_secret=SECRET
    )
    assert public.push_webhook_url == "https://push.example.org/hook"
    with pytest.raises(ConfigurationError, match="MICROWISH_PUSH_WEBHOOK_SECRET"):
        make_settings(url, push_webhook_url="https://push.example.org/hook")
    with pytest.raises(ConfigurationError, match="whsec_"):
        make_settings(
            url, push_webhook_url="https://push.example.org/hook", push_webhook_secret="hunter2"
        )
    with pytest.raises(ConfigurationError, match="http"):
        make_settings(url, push_webhook_url="ftp://push.example.org/", push_webhook_secret=SECRET)
    assert make_settings(url, push_webhook_url="").push_webhook_url is None


def _recording_transport(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    return httpx.MockTransport(handler)


def _resolver(answers: list[str]) -> targets.Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return answers

    return resolve


async def _one_delivery(clean_database: str, url: str) -> tuple[Settings, Any]:
    settings = make_settings(clean_database, push_webhook_url=url, push_webhook_secret=SECRET)
    await _seed_outbox(settings, 1)
    return settings, create_database(settings)


async def test_names_resolving_to_private_addresses_are_refused_at_send(
    clean_database: str,
) -> None:
    """DNS rebinding: a public name that now answers with a private address (or a mix)."""
    settings, database = await _one_delivery(clean_database, "https://push.example.org/hook")
    try:
        for answers in (["127.0.0.1"], ["93.184.215.14", "10.0.0.7"], ["fd00::1"]):
            seen: list[httpx.Request] = []
            sender = WebhookSender(
                database,
                settings,
                transport=_recording_transport(seen),
                resolver=_resolver(answers),
            )
            try:
                assert await sender.deliver_due() == 1
            finally:
                await sender.close()
            assert seen == []  # nothing was sent
            async with database.transaction(write=True) as session:
                row = (await session.execute(select(NotificationDelivery))).scalar_one()
                assert row.status == "pending"
                assert row.last_error is not None
                assert row.last_error.startswith("refused: push.example.org resolves to")
                # Due again now, for the next answer.
                await session.execute(update(NotificationDelivery).values(next_attempt_at=utcnow()))
    finally:
        await database.dispose()


async def test_a_send_goes_to_the_address_that_was_checked(clean_database: str) -> None:
    settings, database = await _one_delivery(clean_database, "https://push.example.org:8443/h")
    seen: list[httpx.Request] = []
    sender = WebhookSender(
        database,
        settings,
        transport=_recording_transport(seen),
        resolver=_resolver(["93.184.215.14"]),
    )
    try:
        assert await sender.deliver_due() == 1
    finally:
        await sender.close()
        await database.dispose()
    [request] = seen
    assert request.url.host == "93.184.215.14"  # pinned: no second lookup
    assert request.url.port == 8443
    assert request.headers["host"] == "push.example.org:8443"
    assert request.extensions["sni_hostname"] == "push.example.org"  # TLS checks the name


def test_standard_webhooks_reference_vector() -> None:
    key = signing.secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    signature = signing.sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    message_id, timestamp = "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330"

    def check(signatures: str, signed_body: bytes, now: float) -> bool:
        return signing.verify(
            key,
            message_id=message_id,
            timestamp=timestamp,
            signatures=signatures,
            body=signed_body,
            now=now,
        )

    assert check(f"v1,bogus {signature}", body, 1614265331)  # one of several may match
    assert not check(signature, body + b" ", 1614265331)  # altered body
    assert not check(signature, body, 1614265330 + 3600)  # too old: a replay


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    import random

    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = min(3600.0, 15.0 * 2 ** (attempt - 1))
        for _ in range(50):
            delay = retry_delay(attempt, base_seconds=15.0, max_seconds=3600.0, rng=rng)
            assert ceiling / 2 <= delay <= ceiling
    assert timedelta(seconds=retry_delay(30, base_seconds=15, max_seconds=60)) <= timedelta(
        minutes=1
    )


async def test_no_gateway_no_outbox(clean_database: str) -> None:
    settings = make_settings(clean_database)
    database = create_database(settings)
    try:
        async with database.transaction(write=True) as session:
            assert not session.info.get("microwish_push_outbox")
        enable_outbox(database)
        async with database.transaction(write=True) as session:
            assert session.info.get("microwish_push_outbox") is True
    finally:
        await database.dispose()
