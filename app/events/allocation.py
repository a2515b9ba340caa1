"""Allocate mode: the optimal assignment of an event's pooled wishes to the members who
ranked them. Pure: plain inputs in, plain pairs out, no session; the same inputs always give
the same pairs, so anyone holding the stored inputs can recompute and audit the result.

The objective is the matching engine's (``app.matching.engine.assign``): most slots filled
first, then the highest total score. A member's rank r (1 = most wanted) scores
``(MAX_PREFERENCES - r) / MAX_PREFERENCES``; scores of different ranks differ by at least
1/MAX_PREFERENCES. Ties (say, two members who both ranked a one-slot wish first) are broken
by a seeded lottery: each (wish, member) pair gets a tiny bonus drawn from the stored seed,
so small that all of the pairs' bonuses together stay below one rank step. The lottery
therefore only ever decides between assignments that are equally good by rank, and the
seed makes it reproducible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from app.events.models import MAX_PREFERENCES
from app.matching import engine

_NOWHERE = engine.Place(None, None, None, None)
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_RANK_STEP_UNITS = engine.SCORE_SCALE // MAX_PREFERENCES  # one rank step in cost units


@dataclass(frozen=True)
class AllocationInputs:
    seed: str
    wishes: tuple[tuple[int, int], ...]  # (wish id, slots open), ascending by id
    members: tuple[tuple[int, int], ...]  # (member id, how many claims they may still get)
    preferences: tuple[tuple[int, int, int], ...]  # (member id, wish id, rank)

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "wishes": [{"wish_id": str(w), "slots_open": n} for w, n in self.wishes],
            "members": [{"member_id": str(m), "limit": n} for m, n in self.members],
            "preferences": [
                {"member_id": str(m), "wish_id": str(w), "rank": r} for m, w, r in self.preferences
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AllocationInputs:
        return cls(
            seed=str(data["seed"]),
            wishes=tuple((int(w["wish_id"]), int(w["slots_open"])) for w in data["wishes"]),
            members=tuple((int(m["member_id"]), int(m["limit"])) for m in data["members"]),
            preferences=tuple(
                (int(p["member_id"]), int(p["wish_id"]), int(p["rank"]))
                for p in data["preferences"]
            ),
        )


@dataclass(frozen=True)
class AllocatedPair:
    wish_id: int
    member_id: int
    rank: int


@dataclass(frozen=True)
class Allocation:
    pairs: tuple[AllocatedPair, ...]  # ascending by (wish id, member id)
    slots_open: int
    slots_filled: int
    rank_histogram: dict[int, int]  # rank -> pairs given at that rank

    def to_json(self) -> dict[str, Any]:
        return {
            "pairs": [
                {"wish_id": str(p.wish_id), "member_id": str(p.member_id), "rank": p.rank}
                for p in self.pairs
            ],
            "slots_open": self.slots_open,
            "slots_filled": self.slots_filled,
            "rank_histogram": {str(rank): n for rank, n in sorted(self.rank_histogram.items())},
        }


def _lottery(seed: str, wish_ids: np.ndarray, member_ids: np.ndarray, span: int) -> np.ndarray:
    """A reproducible number in [0, span) per pair, from the seed (BLAKE2b, not Python's
    per-process salted hash)."""
    draws = np.empty(wish_ids.size, dtype=np.int64)
    for index, (wish_id, member_id) in enumerate(
        zip(wish_ids.tolist(), member_ids.tolist(), strict=True)
    ):
        digest = hashlib.blake2b(f"{seed}:{wish_id}:{member_id}".encode(), digest_size=8).digest()
        draws[index] = int.from_bytes(digest, "big") % span
    return draws


def allocate(inputs: AllocationInputs) -> Allocation:
    slots_open = dict(inputs.wishes)
    limits = dict(inputs.members)
    usable = [
        (member_id, wish_id, rank)
        for member_id, wish_id, rank in inputs.preferences
        if slots_open.get(wish_id, 0) > 0 and limits.get(member_id, 0) > 0
    ]
    usable.sort(key=lambda p: (p[1], p[0]))
    wish_ids = np.array([w for _, w, _ in usable], dtype=np.int64)
    member_ids = np.array([m for m, _, _ in usable], dtype=np.int64)
    ranks = np.array([r for _, _, r in usable], dtype=np.int64)
    # All bonuses together stay under one rank step: the lottery only breaks ties.
    span = max(1, (_RANK_STEP_UNITS - 1) // max(1, sum(slots_open.values())))
    units = (MAX_PREFERENCES - ranks) * _RANK_STEP_UNITS + _lottery(
        inputs.seed, wish_ids, member_ids, span
    )
    table = engine.CandidateTable(
        wish_ids=wish_ids,
        member_ids=member_ids,
        scores=units.astype(np.float64) / engine.SCORE_SCALE,
        components=np.zeros((wish_ids.size, len(engine.COMPONENTS))),
        locality_levels=np.zeros(wish_ids.size, dtype=np.int64),
        general_help=np.zeros(wish_ids.size, dtype=bool),
    )
    wishes = [
        engine.WishInput(
            id=wish_id, category="", text="", place=_NOWHERE, slots_open=n, created_at=_EPOCH
        )
        for wish_id, n in inputs.wishes
    ]
    members = [
        engine.MemberInput(id=member_id, home=_NOWHERE, capacity=n, active_claims=0, roster=())
        for member_id, n in inputs.members
    ]
    result = engine.assign(wishes, members, table)
    rank_of = {(w, m): r for m, w, r in usable}
    pairs = tuple(
        AllocatedPair(p.wish_id, p.member_id, rank_of[(p.wish_id, p.member_id)])
        for p in sorted(result.pairs, key=lambda p: (p.wish_id, p.member_id))
    )
    histogram: dict[int, int] = {}
    for pair in pairs:
        histogram[pair.rank] = histogram.get(pair.rank, 0) + 1
    return Allocation(
        pairs=pairs,
        slots_open=sum(n for n in slots_open.values()),
        slots_filled=len(pairs),
        rank_histogram=histogram,
    )


def make_inputs(
    *,
    seed: str,
    wishes: Sequence[tuple[int, int]],
    members: Sequence[tuple[int, int]],
    preferences: Sequence[tuple[int, int, int]],
) -> AllocationInputs:
    return AllocationInputs(
        seed=seed,
        wishes=tuple(sorted(wishes)),
        members=tuple(sorted(members)),
        preferences=tuple(sorted(preferences)),
    )
