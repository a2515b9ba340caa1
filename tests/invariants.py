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


EVENT_CHECKS = {
    "a member's quota count equals their live claims in the event": """
        SELECT p.event_id, p.member_id FROM claim_event_participants p
        LEFT JOIN (SELECT event_id, member_id, COUNT(*) AS n FROM claims
                   WHERE event_id IS NOT NULL AND status IN ('active', 'fulfilled')
                   GROUP BY event_id, member_id) c
          ON c.event_id = p.event_id AND c.member_id = p.member_id
        WHERE p.claims <> COALESCE(c.n, 0)
    """,
    "no member holds more live claims in an event than its quota": """
        SELECT c.event_id, c.member_id FROM claims c JOIN claim_events e ON e.id = c.event_id
        WHERE c.status IN ('active', 'fulfilled')
        GROUP BY c.event_id, c.member_id, e.per_member_quota
        HAVING COUNT(*) > e.per_member_quota
    """,
    "only wishes of live events are pooled": """
        SELECT w.id FROM wishes w JOIN claim_events e ON e.id = w.event_id
        WHERE e.status <> 'live'
    """,
    "event claims only on wishes pooled in that event": """
        SELECT c.id FROM claims c
        LEFT JOIN claim_event_wishes p ON p.event_id = c.event_id AND p.wish_id = c.wish_id
            AND p.state IN ('pooled', 'returned')
        WHERE c.event_id IS NOT NULL AND (p.wish_id IS NULL OR c.source <> 'event')
    """,
    "no event claim is dated after its event closed": """
        SELECT c.id FROM claims c JOIN claim_events e ON e.id = c.event_id
        WHERE e.closed_at IS NOT NULL AND c.created_at > e.closed_at
    """,
    "a closed event's pooled wishes are all back home": """
        SELECT p.wish_id FROM claim_event_wishes p JOIN claim_events e ON e.id = p.event_id
        WHERE e.status = 'closed' AND p.state = 'pooled'
    """,
}


async def event_violations(database_url: str) -> dict[str, list[tuple[object, ...]]]:
    engine = create_async_engine(normalize_database_url(database_url))
    found: dict[str, list[tuple[object, ...]]] = {}
    try:
        async with engine.connect() as connection:
            for name, query in EVENT_CHECKS.items():
                rows = (await connection.execute(text(query))).all()
                if rows:
                    found[name] = [tuple(row) for row in rows[:10]]
    finally:
        await engine.dispose()
    return found
