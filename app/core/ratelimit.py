"""Rate limits, with the ``limits`` library (moving windows; in memory by default, Redis or
another shared store when ``MICROWISH_RATE_LIMIT_STORAGE`` names one, e.g.
``redis://127.0.0.1:6379``, so that several server processes share the counts).
``MICROWISH_RATE_LIMITS=off`` turns them off for load tests and benchmarks."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from starlette.requests import Request

from app.core.config import Settings
from app.core.errors import TooManyRequests


def client_ip(request: Request) -> str:
    """The client's address for per-IP limits. Behind a reverse proxy this is the proxy's
    unless uvicorn trusts it to tell the real one (``microwish serve`` reads
    ``X-Forwarded-For`` from the addresses in ``FORWARDED_ALLOW_IPS``, 127.0.0.1 by default)."""
    return request.client.host if request.client else "unknown"


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limits == "on"
        uri = settings.rate_limit_storage
        # The asyncio flavour of each store is registered as "async+<scheme>".
        storage = storage_from_string(uri if uri.startswith("async+") else f"async+{uri}")
        assert isinstance(storage, Storage)
        self.storage = storage
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.event_claims: list[RateLimitItem] = parse_many(settings.event_claim_rate_limit)
        self.claims: list[RateLimitItem] = parse_many(settings.claim_rate_limit)
        self.auth_ip: list[RateLimitItem] = parse_many(settings.auth_rate_limit)
        self.login_phone: list[RateLimitItem] = parse_many(settings.login_phone_rate_limit)
        self.otp_phone: list[RateLimitItem] = parse_many(settings.otp_phone_rate_limit)
        self.otp_ip: list[RateLimitItem] = parse_many(settings.otp_ip_rate_limit)

    async def hit(self, items: list[RateLimitItem], *key: str) -> None:
        """Count one request under ``key``; raise 429 with ``Retry-After`` when any of the
        limits is exhausted (and then count nothing)."""
        if not self.enabled:
            return
        for item in items:
            if not await self.limiter.hit(item, *key):
                await self._refuse(item, *key)

    async def check(self, items: list[RateLimitItem], *key: str) -> None:
        """Raise 429 when any of the limits under ``key`` is exhausted; count nothing (for
        limits on failures: ``count`` them once the outcome is known)."""
        if not self.enabled:
            return
        for item in items:
            if not await self.limiter.test(item, *key):
                await self._refuse(item, *key)

    async def count(self, items: list[RateLimitItem], *key: str) -> None:
        """Count one (failed) request under ``key``, without refusing it."""
        if not self.enabled:
            return
        for item in items:
            await self.limiter.hit(item, *key)

    async def _refuse(self, item: RateLimitItem, *key: str) -> None:
        stats = await self.limiter.get_window_stats(item, *key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise TooManyRequests(
            extra={"retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )
