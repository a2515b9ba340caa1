"""The brief's invariants, checked in SQL after concurrent work."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.config import normalize_database_url

CHECKS = {
    "slots_claimed equals the slots of live claims, within slots_total": """
        SELECT w.id FROM wishes w
        LEFT JOIN (SELECT wish_id, SUM(slots) AS live FROM claims
                   WHERE status IN ('active', 'fulfilled') GROUP BY wish_id) c ON c.wish_id = w.id
        WHERE w.slots_claimed <> COALESCE(c.live, 0) OR w.slots_claimed > w.slots_total
           OR w.slots_claimed < 0
    """,
    "slots_fulfilled equals the slots of fulfilled claims": """
        SELECT w.id FROM wishes w
        LEFT JOIN (SELECT wish_id, SUM(slots) AS done FROM claims
                   WHERE status = 'fulfilled' GROUP BY wish_id) c ON c.wish_id = w.id
        WHERE w.slots_fulfilled <> COALESCE(c.done, 0)
    """,
    "a full open wish is 'claimed', a claimed wish is full": """
        SELECT id FROM wishes
        WHERE (status = 'open' AND slots_claimed = slots_total)
           OR (status = 'claimed' AND slots_claimed <> slots_total)
    """,
    "active_claims equals the member's active claims": """
        SELECT m.user_id FROM members m
        LEFT JOIN (SELECT member_id, COUNT(*) AS n FROM claims
                   WHERE status = 'active' GROUP BY member_id) c ON c.member_id = m.user_id
        WHERE m.active_claims <> COALESCE(c.n, 0)
    """,
    "at most one live claim per (wish, member)": """
        SELECT wish_id, member_id FROM claims WHERE status IN ('active', 'fulfilled')
        GROUP BY wish_id, member_id HAVING COUNT(*) > 1
    """,
    "claims only by members who were active (no claim by a pending member)": """
        SELECT c.id FROM claims c JOIN members m ON m.user_id = c.member_id
        WHERE m.status = 'pending'
    """,
}

CAPACITY_CHECK = """
    SELECT user_id FROM members WHERE active_claims > capacity
"""


async def violations(
    database_url: str, *, capacity_unchanged: bool = True
) -> dict[str, list[object]]:
    """Every broken invariant with the offending rows; empty when all hold."""
    engine = create_async_engine(normalize_database_url(database_url))
    found: dict[str, list[object]] = {}
    checks = dict(CHECKS)
    if capacity_unchanged:
        # Only when no organizer lowered a capacity below what a member already held.
        checks["active claims never above capacity"] = CAPACITY_CHECK
    try:
        async with engine.connect() as connection:
            for name, query in checks.items():
                rows = (await connection.execute(text(query))).all()
                if rows:
                    found[name] = [tuple(row) for row in rows[:10]]
    finally:
        await engine.dispose()
    return found
