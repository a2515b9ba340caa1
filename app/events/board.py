"""What the live board shows of an event, kept up to date from changed rows. Pure: no I/O.

The live feed (``app.events.live``) reads an event's pool entries and claims once, then,
several times a second during a rush, only the rows written since its last read. A
``Board`` folds those rows in at a cost that grows with the rows, not with the event: each
pooled wish keeps its share of its community's tally (``WishPart``); a change takes the
old share out and puts the new one in. ``tests/events/test_board.py`` checks that it
always equals ``service.summary_of`` over the same rows, which the snapshot and the report
use.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.categories.models import DEFAULT_CATEGORIES
from app.events.service import (
    EventClaimFields,
    PooledWishFields,
    PoolEntryFields,
    counts_in_event,
    slots_offered,
)

TOTALS_NAME = "合计"
# The board is in Chinese: each wish card shows its category's label (a category a district
# added itself shows its slug).
CATEGORY_LABELS = {slug: zh_cn for slug, zh_cn, _ in DEFAULT_CATEGORIES}


def wish_shown(wish: PooledWishFields, claimed: int, free: int | None) -> tuple[int, str]:
    """The wish's slots on the board (free at opening) and the status shown for it."""
    total = (
        slots_offered(free, claimed)
        if free is not None
        else wish.slots_total - wish.slots_claimed + claimed
    )
    return total, "claimed" if total and claimed >= total else wish.status


@dataclass(frozen=True)
class WishPart:
    """One pooled wish's share of its community's tally, and how the board shows it."""

    community_id: int
    free: int  # slots free at opening
    claimed: int  # slots of its live claims in the event
    fulfilled: int
    filled: bool
    members: tuple[int, ...]  # the members holding those claims
    shown: tuple[int, str]  # (slots shown, status shown)


@dataclass
class Count:
    """A community's tally (or the totals): sums of its wishes' parts."""

    wishes_pooled: int = 0
    slots_pooled: int = 0
    slots_claimed: int = 0
    slots_fulfilled: int = 0
    wishes_filled: int = 0
    members: Counter[int] = field(default_factory=Counter)  # member -> live claims here

    def add(self, part: WishPart, sign: int) -> None:
        self.wishes_pooled += sign
        self.slots_pooled += sign * part.free
        self.slots_claimed += sign * part.claimed
        self.slots_fulfilled += sign * part.fulfilled
        self.wishes_filled += sign * part.filled
        for member in part.members:
            self.members[member] += sign
            if not self.members[member]:
                del self.members[member]


@dataclass
class Changed:
    """What a fold of rows may have changed: the claims it brought (ids) and the wishes
    whose share it recomputed."""

    claim_ids: list[int]
    wish_ids: set[int]


@dataclass
class Board:
    """An event's pool entries, wishes and claims, and the tallies they add up to."""

    names: dict[int, str]  # community id -> name
    opened: bool  # the event has opened (a wish counts as filled only after)
    closed_at: datetime | None = None  # once closed, claims count as they were then
    pooled: dict[int, tuple[PoolEntryFields, PooledWishFields]] = field(default_factory=dict)
    claims: dict[int, tuple[EventClaimFields, str]] = field(default_factory=dict)
    live: dict[int, dict[int, EventClaimFields]] = field(default_factory=dict)  # by wish
    parts: dict[int, WishPart] = field(default_factory=dict)
    counts: dict[int, Count] = field(default_factory=dict)
    totals: Count = field(default_factory=Count)

    def __post_init__(self) -> None:
        for community_id in self.names:
            self.counts.setdefault(community_id, Count())

    def fold(
        self,
        pooled: Iterable[tuple[PoolEntryFields, PooledWishFields]],
        claims: Iterable[tuple[EventClaimFields, str]],
    ) -> Changed:
        """Take in rows read (all of them, or those written since the last read)."""
        touched: set[int] = set()
        for entry, wish in pooled:
            self.pooled[wish.id] = (entry, wish)
            touched.add(wish.id)
        claim_ids = []
        for claim, name in claims:
            claim_ids.append(claim.id)
            self.claims[claim.id] = (claim, name)
            own = self.live.setdefault(claim.wish_id, {})
            if counts_in_event(claim, self.closed_at):
                own[claim.id] = claim
            else:
                own.pop(claim.id, None)
            touched.add(claim.wish_id)
        for wish_id in touched:
            self._reckon(wish_id)
        return Changed(claim_ids, touched & self.parts.keys())

    def _reckon(self, wish_id: int) -> None:
        pooled = self.pooled.get(wish_id)
        if pooled is None:  # a claim on a wish not (yet) seen in the pool: no share
            return
        entry, wish = pooled
        own = self.live.get(wish_id, {}).values()
        claimed = sum(claim.slots for claim in own)
        free = slots_offered(entry.slots_free_at_open, claimed)
        part = WishPart(
            community_id=entry.community_id,
            free=free,
            claimed=claimed,
            fulfilled=sum(claim.slots for claim in own if claim.status == "fulfilled"),
            filled=claimed >= free and bool(own) and self.opened,
            members=tuple(claim.member_id for claim in own),
            shown=wish_shown(wish, claimed, entry.slots_free_at_open),
        )
        old = self.parts.get(wish_id)
        if old == part:
            return
        if old is not None:
            self.counts[old.community_id].add(old, -1)
            self.totals.add(old, -1)
        self.parts[wish_id] = part
        self.counts.setdefault(part.community_id, Count()).add(part, 1)
        self.totals.add(part, 1)

    def shown(self, wish_id: int) -> tuple[int, str]:
        """(slots claimed in the event, status shown): what a ``wish`` message changes."""
        part = self.parts[wish_id]
        return part.claimed, part.shown[1]

    def tally_key(self) -> tuple[Any, ...]:
        """Changes whenever a ``tally`` message would."""
        totals = self.totals
        return (
            totals.wishes_pooled,
            totals.slots_claimed,
            totals.wishes_filled,
            len(totals.members),
            tuple(
                (community_id, count.slots_claimed, count.wishes_pooled)
                for community_id, count in sorted(self.counts.items())
            ),
        )

    def wish_json(self, wish_id: int) -> dict[str, Any]:
        _, wish = self.pooled[wish_id]
        part = self.parts[wish_id]
        return {
            "id": str(wish.id),
            "title": wish.title,
            "category": wish.category,
            "category_label": CATEGORY_LABELS.get(wish.category, wish.category),
            "community_id": str(wish.community_id),
            "slots_total": part.shown[0],
            "slots_claimed": part.claimed,
            "status": part.shown[1],
        }

    def tally_json(self) -> dict[str, Any]:
        return {
            "communities": [
                count_json(community_id, self.names.get(community_id, str(community_id)), count)
                for community_id, count in sorted(self.counts.items())
            ],
            "totals": count_json(0, TOTALS_NAME, self.totals),
        }

    def title_of(self, wish_id: int) -> tuple[str, int | None]:
        pooled = self.pooled.get(wish_id)
        return (pooled[1].title, pooled[1].community_id) if pooled else ("", None)


def count_json(community_id: int, name: str, count: Count) -> dict[str, Any]:
    return {
        "id": str(community_id),
        "name": name,
        "wishes_pooled": count.wishes_pooled,
        "slots_total": count.slots_pooled,
        "slots_claimed": count.slots_claimed,
        "wishes_filled": count.wishes_filled,
        "members": len(count.members),
    }
