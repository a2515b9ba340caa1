"""The live board's incremental tallies (``app.events.board``) always equal the summary
the snapshot and the report compute from scratch (``service.summary_of``), however the
rows arrive: all at once, or as the changes of many small reads, claims changing state
(withdrawn, fulfilled, revoked) after they first appeared."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.events import service
from app.events.board import Board, wish_shown
from app.events.repository import EventClaimRow, PooledWishRow, PoolEntryRow

OPENED = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
CLOSED = OPENED + timedelta(seconds=20)  # when a closed event closed: half way through steps
COMMUNITIES = {11: "东七社区", 12: "西三社区", 13: "南一社区"}
STATUSES = ("active", "fulfilled", "withdrawn", "released", "revoked")


def _pool(specs: list[tuple[int, int | None, int]]) -> list[tuple[PoolEntryRow, PooledWishRow]]:
    pooled = []
    for index, (community_id, free, slots_total) in enumerate(specs):
        wish = PooledWishRow(
            id=100 + index,
            title=f"心愿{index}",
            category="errand",
            community_id=community_id,
            slots_total=slots_total,
            slots_claimed=0,
            status="open",
        )
        pooled.append((PoolEntryRow(community_id, free), wish))
    return pooled


pool_specs = st.lists(
    st.tuples(
        st.sampled_from([11, 12, 13, 14]),  # 14: a community no longer in the event
        st.one_of(st.none(), st.integers(0, 3)),
        st.integers(1, 3),
    ),
    min_size=1,
    max_size=8,
)
# Each step writes one claim version: (claim number, wish index, member, slots, status).
steps = st.lists(
    st.tuples(
        st.integers(0, 9),
        st.integers(0, 7),
        st.integers(1, 5),
        st.integers(1, 2),
        st.sampled_from(STATUSES),
    ),
    max_size=40,
)


def _expected(
    pooled: list[tuple[PoolEntryRow, PooledWishRow]],
    claims: dict[int, tuple[EventClaimRow, str]],
    opened: bool,
    closed_at: datetime | None = None,
) -> tuple[dict[str, Any], dict[int, tuple[int, str]]]:
    event: Any = SimpleNamespace(opened_at=OPENED if opened else None, closed_at=closed_at)
    communities: Any = [SimpleNamespace(id=c, name=n) for c, n in COMMUNITIES.items()]
    summary = service.summary_of(
        event, communities, pooled, [claims[claim_id] for claim_id in sorted(claims)]
    )

    def tally(count: service.Tally) -> dict[str, Any]:
        return {
            "id": str(count.community_id),
            "name": count.name,
            "wishes_pooled": count.wishes_pooled,
            "slots_total": count.slots_pooled,
            "slots_claimed": count.slots_claimed,
            "wishes_filled": count.wishes_filled,
            "members": len(count.members),
        }

    tallies = {
        "communities": [tally(t) for t in summary.tallies],
        "totals": tally(summary.totals),
    }
    wishes = {
        wish.id: (claimed, wish_shown(wish, claimed, free)[1])
        for wish, claimed, free in summary.wishes
    }
    return tallies, wishes


def _seen(board: Board) -> tuple[dict[str, Any], dict[int, tuple[int, str]]]:
    return board.tally_json(), {wish_id: board.shown(wish_id) for wish_id in board.parts}


@settings(max_examples=200, deadline=None)
@given(
    specs=pool_specs,
    writes=steps,
    batch=st.integers(1, 5),
    opened=st.booleans(),
    closed=st.booleans(),
)
def test_board_folds_changes_into_what_a_full_summary_says(
    specs: list[tuple[int, int | None, int]],
    writes: list[tuple[int, int, int, int, str]],
    batch: int,
    opened: bool,
    closed: bool,
) -> None:
    """Closed: claims ending after the close (step 20 on) still count, as in the report."""
    pooled = _pool(specs)
    closed_at = CLOSED if closed and opened else None
    incremental = Board(names=dict(COMMUNITIES), opened=opened, closed_at=closed_at)
    incremental.fold(pooled, [])
    claims: dict[int, tuple[EventClaimRow, str]] = {}
    pending: list[tuple[EventClaimRow, str]] = []
    for number, (claim_no, wish_index, member, slots, status) in enumerate(writes):
        wish_id = pooled[wish_index % len(pooled)][1].id
        known = claims.get(claim_no + 1)
        moment = OPENED + timedelta(seconds=number)
        ended = None if status in ("active", "fulfilled") else moment
        if known is not None:  # a later version of the same claim: only its status moves
            claim = known[0]._replace(status=status, ended_at=ended)
        else:
            claim = EventClaimRow(claim_no + 1, wish_id, member, slots, status, moment, ended)
        claims[claim.id] = (claim, f"成员{member}")
        pending.append((claim, f"成员{member}"))
        if len(pending) >= batch:
            changed = incremental.fold([], pending)
            assert set(changed.claim_ids) == {c.id for c, _ in pending}
            pending = []
            assert _seen(incremental) == _expected(pooled, claims, opened, closed_at)
    incremental.fold([], pending)
    assert _seen(incremental) == _expected(pooled, claims, opened, closed_at)

    at_once = Board(names=dict(COMMUNITIES), opened=opened, closed_at=closed_at)
    at_once.fold(pooled, [claims[claim_id] for claim_id in sorted(claims)])
    assert _seen(at_once) == _seen(incremental)
    assert at_once.totals == incremental.totals


def test_a_wish_whose_row_changes_is_reckoned_again() -> None:
    """A pooled wish read again (its row was written) replaces the old one; its share moves
    with it, and a wish message would be due only if what it shows changed."""
    pooled = _pool([(11, 2, 2)])
    board = Board(names=dict(COMMUNITIES), opened=True)
    board.fold(pooled, [])
    claim = EventClaimRow(1, 100, 7, 2, "active", OPENED)
    changed = board.fold([], [(claim, "王阿姨")])
    assert changed.wish_ids == {100}
    assert board.shown(100) == (2, "claimed")
    assert board.tally_json()["totals"]["wishes_filled"] == 1
    entry, wish = pooled[0]
    changed = board.fold([(entry, wish._replace(slots_claimed=2, status="claimed"))], [])
    assert changed.wish_ids == {100}
    assert board.shown(100) == (2, "claimed")
    changed = board.fold([], [(claim._replace(status="withdrawn"), "王阿姨")])
    assert board.shown(100) == (0, "claimed")  # the row still says claimed until read again
    assert board.tally_json()["totals"]["members"] == 0
    assert board.title_of(100) == ("心愿0", 11)
    assert board.title_of(999) == ("", None)
