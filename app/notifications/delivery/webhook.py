"""Push delivery: a background task in every server process sends due outbox rows to the
configured push gateway as signed webhooks (Standard Webhooks), after the transactions that
wrote them committed. Requests only ever insert rows; nothing here runs inside a request.

One round: claim a batch of due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several
processes share the outbox; SQLite has one process and one writer), counting the attempt and
leasing the rows, and commit; send them, a few at a time, outside any transaction; then
settle them in one transaction: delete what the gateway took (any 2xx), reschedule a failure
with exponential backoff and jitter, or after the last attempt mark it ``dead`` (the dead
letter). A process that dies mid-send leaves its rows due again when the lease ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from app.core.config import Settings
from app.core.db import Database, utcnow
from app.core.types import rfc3339
from app.notifications import repository, texts
from app.notifications.delivery import signing, targets
from app.notifications.repository import DueDelivery

logger = logging.getLogger("microwish.push")

USER_AGENT = "microwish-webhooks/1"
# How many sends one process has in flight at once.
CONCURRENCY = 8


def enable_outbox(database: Database) -> None:
    """Sessions of this database write a delivery row with every notification."""
    for factory in (database.read_sessions, database.write_sessions):
        info = dict(factory.kw.get("info") or {})
        info[repository.PUSH_OUTBOX] = True
        factory.configure(info=info)


def retry_delay(
    attempt: int, *, base_seconds: float, max_seconds: float, rng: random.Random | None = None
) -> float:
    """Exponential backoff with "equal jitter": the n-th failure waits between half and all
    of ``base · 2^(n-1)`` (capped), so retries spread out but never shrink."""
    ceiling: float = min(max_seconds, base_seconds * 2.0 ** max(0, attempt - 1))
    jitter: float = (rng or random).uniform(0, ceiling / 2)
    return ceiling / 2 + jitter


def message_id(notification_id: int) -> str:
    # The same for every attempt of a notification: receivers deduplicate on it.
    return f"ntf_{notification_id}"


def payload(delivery: DueDelivery) -> bytes:
    """The JSON body: Standard Webhooks' ``{type, timestamp, data}`` envelope."""
    created = rfc3339(delivery.created_at)
    body = {
        "type": f"notification.{delivery.kind}",
        "timestamp": created,
        "data": {
            "id": str(delivery.notification_id),
            "user_id": str(delivery.user_id),
            "kind": delivery.kind,
            "title": texts.titles(delivery.kind, delivery.data),
            "data": delivery.data,
            "created_at": created,
        },
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Outcome:
    delivery: DueDelivery
    error: str | None  # None: delivered


class WebhookSender:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: targets.Resolver | None = None,
    ) -> None:
        url = settings.push_webhook_url
        secret = settings.push_webhook_secret
        if url is None or secret is None:
            raise ValueError("no push webhook configured")
        self.database = database
        self.target = targets.check_configured(url, allow_private=settings.webhook_allow_private)
        self.allow_private = settings.webhook_allow_private
        self.key = signing.secret_bytes(secret.get_secret_value())
        self.max_attempts = settings.push_max_attempts
        self.base_seconds = settings.push_retry_base_seconds
        self.max_seconds = settings.push_retry_max_seconds
        self.poll_seconds = settings.push_poll_interval_seconds
        self.batch_size = settings.push_batch_size
        self.timeout = settings.push_timeout_seconds
        # A claimed row stays leased a while longer than its send can take.
        self.lease = timedelta(seconds=self.timeout * 3 + 30)
        self.resolver = resolver
        self.client = httpx.AsyncClient(
            transport=transport,
            timeout=self.timeout,
            # A redirect could lead anywhere, private addresses included: never follow one.
            follow_redirects=False,
            # The address check must see the real destination, not an environment proxy.
            trust_env=False,
            headers={"user-agent": USER_AGENT, "content-type": "application/json"},
        )

        # Woken when a transaction of this process that wrote outbox rows commits, so a
        # notification leaves at once; the poll finds retries and other processes' rows.
        self._wake = asyncio.Event()
        database.commit_hooks.append(self._committed)

    def _committed(self, info: dict[str, Any]) -> None:
        if info.pop(repository.OUTBOX_WRITTEN, False):
            self._wake.set()

    async def close(self) -> None:
        if self._committed in self.database.commit_hooks:
            self.database.commit_hooks.remove(self._committed)
        await self.client.aclose()

    async def run(self) -> None:
        """Forever: a round, then a pause (until woken or the poll interval passed) unless
        the round was full: a backlog drains at full speed. A failing round never stops it."""
        while True:
            self._wake.clear()
            try:
                handled = await self.deliver_due()
            except Exception:
                logger.exception("push delivery round failed")
                handled = 0
            if handled < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    async def deliver_due(self) -> int:
        now = utcnow()
        async with self.database.transaction(write=False) as session:
            if not await repository.has_due(session, now=now):
                return 0  # the usual case: one indexed read, no write transaction
        async with self.database.transaction(write=True) as session:
            due = await repository.claim_due(
                session, now=now, lease_until=now + self.lease, limit=self.batch_size
            )
        if not due:
            return 0
        gate = asyncio.Semaphore(CONCURRENCY)

        async def send(delivery: DueDelivery) -> Outcome:
            async with gate:
                return Outcome(delivery, await self.send(delivery))

        outcomes = await asyncio.gather(*(send(delivery) for delivery in due))
        await self._settle(outcomes)
        return len(due)

    async def _settle(self, outcomes: list[Outcome]) -> None:
        settled_at = utcnow()
        async with self.database.transaction(write=True) as session:
            for outcome in outcomes:
                delivery = outcome.delivery
                if outcome.error is None:
                    await repository.settle_delivered(
                        session, notification_id=delivery.notification_id, attempt=delivery.attempt
                    )
                    continue
                retry_at: datetime | None = None
                if delivery.attempt < self.max_attempts:
                    retry_at = settled_at + timedelta(
                        seconds=retry_delay(
                            delivery.attempt,
                            base_seconds=self.base_seconds,
                            max_seconds=self.max_seconds,
                        )
                    )
                else:
                    # Ids and kinds only: payloads hold titles, which may be personal.
                    logger.warning(
                        "push notification %s (%s) dead after %s attempts: %s",
                        delivery.notification_id,
                        delivery.kind,
                        delivery.attempt,
                        outcome.error,
                    )
                await repository.settle_failed(
                    session,
                    notification_id=delivery.notification_id,
                    attempt=delivery.attempt,
                    error=outcome.error,
                    retry_at=retry_at,
                )

    async def send(self, delivery: DueDelivery) -> str | None:
        """One attempt; the error (short, no payload) or None when the gateway took it."""
        body = payload(delivery)
        identifier = message_id(delivery.notification_id)
        timestamp = int(time.time())
        headers = {
            "webhook-id": identifier,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signing.sign(self.key, identifier, timestamp, body),
        }
        try:
            response = await self._post(body, headers)
        except targets.UnsafeTarget as refused:
            return f"refused: {refused}"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:200]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    async def _post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        if self.allow_private:
            return await self.client.post(self.target.url, content=body, headers=headers)
        # Connect to an address that was checked, not to whatever the name resolves to a
        # moment later (DNS rebinding); the name still goes in Host and TLS (SNI and the
        # certificate check).
        addresses = await targets.public_addresses(self.target, self.resolver)
        url = httpx.URL(self.target.url)
        extensions: dict[str, Any] = {}
        if self.target.scheme == "https":
            extensions["sni_hostname"] = self.target.host
        last_error: httpx.HTTPError | None = None
        for address in addresses:
            try:
                return await self.client.post(
                    url.copy_with(host=address),
                    content=body,
                    headers={**headers, "host": url.netloc.decode("ascii")},
                    extensions=extensions,
                )
            except httpx.ConnectError as exc:  # try the host's next address
                last_error = exc
        assert last_error is not None
        raise last_error


def sender_for(database: Database, settings: Settings) -> WebhookSender | None:
    """The process's sender when a push gateway is configured (and the outbox switched on
    for this database's sessions), else None: notifications then stay in the inbox only."""
    if settings.push_webhook_url is None:
        return None
    enable_outbox(database)
    return WebhookSender(database, settings)
