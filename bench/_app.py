"""The real application plus one endpoint that does no I/O, for ``bench/claims.py``.

``GET /bench/noop`` goes through the same middleware, exception handlers and bearer-token
dependency as every ``/v1`` route but touches no database, so its throughput and p99 are
the ceiling the claim path is measured against. Never served outside the benchmark.
"""

from __future__ import annotations

from app.core.auth import CurrentActor
from app.main import create_app

app = create_app()


@app.get("/bench/noop", include_in_schema=False)
async def noop(actor: CurrentActor) -> dict[str, bool]:
    return {"ok": True}
