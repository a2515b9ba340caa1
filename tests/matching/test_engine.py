"""The matching engine on its own: plain dataclasses in, plain results out, no database.

* ``rank`` against a plain per-pair reference written from the engine's docstring (area,
  claims, capacity, activity, every component, the order and the per-wish cut), on small
  hypothesis instances and on medium ones where the engine's exact pruning is at work.
* ``assign`` against an exhaustive search on small hypothesis instances (same slots filled,
  same total score, every constraint held, deterministic), and against an independent
  formulation solved by scipy's MILP (HiGHS) on medium instances.
* Hand-written cases for each score component.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from app.matching import engine
from app.matching.engine import (
    COMPONENTS,
    GENERAL_CATEGORY,
    LOCALITY_LEVELS,
    Assignment,
    Candidate,
    CandidateTable,
    MemberInput,
    Place,
    RosterEntry,
    Weights,
    WishInput,
    assign,
    characters,
    fairness,
    greedy,
    load_spread,
    rank,
    urgency,
)

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

# A tiny region tree: district 1; streets 10 and 11; communities 100 and 101 (street 10) and
# 110 (street 11); grids 1000 (in 100) and 1001 (in 101).
DISTRICT = Place(1, None, None, None)
STREET_10 = Place(1, 10, None, None)
STREET_11 = Place(1, 11, None, None)
COMMUNITY_100 = Place(1, 10, 100, None)
COMMUNITY_101 = Place(1, 10, 101, None)
COMMUNITY_110 = Place(1, 11, 110, None)
GRID_1000 = Place(1, 10, 100, 1000)
GRID_1001 = Place(1, 10, 101, 1001)
COMMUNITIES = (COMMUNITY_100, COMMUNITY_101, COMMUNITY_110)
WISH_PLACES = (GRID_1000, GRID_1001, COMMUNITY_100, COMMUNITY_101, COMMUNITY_110)
SERVICE_PLACES = (*WISH_PLACES, STREET_10, STREET_11, DISTRICT)
CATEGORIES = ("repair", "tutoring", GENERAL_CATEGORY)
ALPHABET = "修水电灯门辅导数学陪聊天的"  # 的 is a stop character


# --- the reference: one pair at a time, straight from the docstring -----------------------


def own_id(place: Place) -> int:
    return place.own[1]


def reference_pairs(
    wishes: Sequence[WishInput], members: Sequence[MemberInput], weights: Weights
) -> dict[tuple[int, int], Candidate]:
    """Every pair a member could serve, scored: unrounded score and components."""
    pairs: dict[tuple[int, int], Candidate] = {}
    for wish in wishes:
        if wish.slots_open <= 0:
            continue
        for member in members:
            if not member.active or member.free_capacity <= 0:
                continue
            if wish.id in member.claimed_wish_ids:
                continue
            offered = {entry.category for entry in member.roster}
            if wish.category in offered:
                matched, general = wish.category, False
            elif GENERAL_CATEGORY in offered:
                matched, general = GENERAL_CATEGORY, True
            else:
                continue
            area = {own_id(place) for place in (member.home, *member.service_places)}
            reached = [kind for kind, region_id in wish.place.levels() if region_id in area]
            if not reached:
                continue  # outside the member's area
            mine = frozenset().union(
                *(characters(e.text) for e in member.roster if e.category == matched)
            )
            theirs = characters(wish.text)
            sizes = len(mine) + len(theirs)
            components = {
                "category": 0.4 if general else 1.0,
                "text": 2.0 * len(mine & theirs) / sizes if sizes else 0.0,
                "locality": LOCALITY_LEVELS[reached[0]],
                "capacity": member.free_capacity / member.capacity,
                "urgency": urgency(wish, NOW),
                "fairness": fairness(member),
            }
            score = (
                (
                    (weights.category * components["category"])
                    + (weights.locality * components["locality"])
                )
                + (
                    weights.capacity * components["capacity"]
                    + weights.fairness * components["fairness"]
                )
                + weights.text * components["text"]
                + weights.urgency * components["urgency"]
            )
            pairs[(wish.id, member.id)] = Candidate(
                wish_id=wish.id,
                member_id=member.id,
                score=score,
                components=components,
                locality_level=reached[0],
                general_help=general,
            )
    return pairs


def reference_rank(
    wishes: Sequence[WishInput],
    members: Sequence[MemberInput],
    weights: Weights,
    per_wish: int,
) -> list[Candidate]:
    by_wish: dict[int, list[Candidate]] = defaultdict(list)
    for candidate in reference_pairs(wishes, members, weights).values():
        by_wish[candidate.wish_id].append(candidate)
    ranked: list[Candidate] = []
    for wish_id in sorted(by_wish):
        best = sorted(by_wish[wish_id], key=lambda c: (-round(c.score, 9), c.member_id))
        ranked.extend(
            replace(
                c,
                score=round(c.score, 6),
                components={name: round(value, 6) for name, value in c.components.items()},
            )
            for c in best[:per_wish]
        )
    return ranked


def exhaustive(
    table: CandidateTable, wishes: Sequence[WishInput], members: Sequence[MemberInput]
) -> tuple[int, float]:
    """The best (slots filled, total score) over every feasible set of candidate pairs:
    each wish tries every subset of its candidates up to its open slots, memoised on the
    members' remaining capacity."""
    slots = {w.id: w.slots_open for w in wishes}
    capacity = {m.id: m.free_capacity if m.active else 0 for m in members}
    by_wish: dict[int, list[Candidate]] = defaultdict(list)
    for candidate in table.rows():
        by_wish[candidate.wish_id].append(candidate)
    wish_ids = sorted(by_wish)
    member_ids = sorted({c.member_id for c in table.rows()})
    column = {member_id: n for n, member_id in enumerate(member_ids)}

    @functools.cache
    def best(position: int, remaining: tuple[int, ...]) -> tuple[int, float]:
        if position == len(wish_ids):
            return (0, 0.0)
        options = by_wish[wish_ids[position]]
        found = (-1, 0.0)
        for size in range(min(slots.get(wish_ids[position], 0), len(options)) + 1):
            for chosen in itertools.combinations(options, size):
                left = list(remaining)
                for candidate in chosen:
                    left[column[candidate.member_id]] -= 1
                if min(left, default=0) < 0:
                    continue
                filled, score = best(position + 1, tuple(left))
                found = max(found, (filled + size, score + sum(c.score for c in chosen)))
        return found

    return best(0, tuple(capacity.get(member_id, 0) for member_id in member_ids))


def check_assignment(
    result: Assignment,
    table: CandidateTable,
    wishes: Sequence[WishInput],
    members: Sequence[MemberInput],
) -> None:
    """Every constraint of an assignment, and its summary fields."""
    rows = {(c.wish_id, c.member_id): c for c in table.rows()}
    chosen = [(pair.wish_id, pair.member_id) for pair in result.pairs]
    assert chosen == sorted(chosen)
    assert len(set(chosen)) == len(chosen), "a member at most once per wish"
    for pair in result.pairs:
        assert rows[(pair.wish_id, pair.member_id)] == pair
    slots = {w.id: w.slots_open for w in wishes}
    capacity = {m.id: m.free_capacity for m in members if m.active}
    per_wish = Counter(wish_id for wish_id, _ in chosen)
    per_member = Counter(member_id for _, member_id in chosen)
    for wish_id, count in per_wish.items():
        assert count <= slots[wish_id]
    for member_id, count in per_member.items():
        assert count <= capacity.get(member_id, 0)
    assert result.filled_by_wish == dict(per_wish)
    assert result.slots_filled == len(chosen)
    assert result.slots_open == sum(s for s in slots.values() if s > 0)
    assert result.total_score == round(sum(pair.score for pair in result.pairs), 6)


# --- small random instances ---------------------------------------------------------------


@st.composite
def instances(draw: st.DrawFn) -> tuple[list[WishInput], list[MemberInput], Weights]:
    texts = st.text(alphabet=ALPHABET, max_size=5)
    wishes = [
        WishInput(
            id=wish_id,
            category=draw(st.sampled_from(CATEGORIES)),
            text=draw(texts),
            place=draw(st.sampled_from(WISH_PLACES)),
            slots_open=draw(st.sampled_from((0, 1, 1, 2, 2, 3, 3))),  # 0: not open
            created_at=NOW - timedelta(hours=draw(st.integers(0, 1500))),
            deadline=draw(
                st.none() | st.integers(-48, 500).map(lambda hours: NOW + timedelta(hours=hours))
            ),
        )
        for wish_id in draw(st.sets(st.integers(1, 40), min_size=1, max_size=5))
    ]
    wish_ids = sorted(w.id for w in wishes)
    members = []
    for member_id in draw(st.sets(st.integers(1, 40), min_size=1, max_size=5)):
        capacity = draw(st.integers(1, 3))
        members.append(
            MemberInput(
                id=member_id,
                home=draw(st.sampled_from(COMMUNITIES)),
                capacity=capacity,
                # Up to one over: an organizer may lower a capacity below the claims held.
                active_claims=draw(st.integers(0, capacity + 1)),
                roster=tuple(
                    RosterEntry(draw(st.sampled_from(CATEGORIES)), draw(texts))
                    for _ in range(draw(st.integers(0, 3)))
                ),
                service_places=tuple(
                    draw(st.lists(st.sampled_from(SERVICE_PLACES), max_size=2, unique=True))
                ),
                recent_matches=draw(st.integers(0, 12)),
                claimed_wish_ids=frozenset(
                    draw(st.lists(st.sampled_from(wish_ids), max_size=2, unique=True))
                ),
                active=draw(st.integers(0, 9)) > 0,
            )
        )
    weights = draw(
        st.just(Weights())
        | st.builds(
            Weights,
            *(st.sampled_from((0.0, 0.05, 0.1, 0.25, 0.5, 1.0, -0.2)) for _ in COMPONENTS),
        )
    )
    return wishes, members, weights


SMALL = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SMALL
@given(instance=instances(), per_wish=st.integers(1, 6))
def test_rank_is_the_reference_ranking(
    instance: tuple[list[WishInput], list[MemberInput], Weights], per_wish: int
) -> None:
    wishes, members, weights = instance
    table = rank(wishes, members, now=NOW, weights=weights, per_wish=per_wish)
    assert table.rows() == reference_rank(wishes, members, weights, per_wish)
    # And the columns hold the unrounded scores the rows were rounded from.
    reference = reference_pairs(wishes, members, weights)
    for n in range(len(table)):
        expected = reference[(int(table.wish_ids[n]), int(table.member_ids[n]))]
        assert float(table.scores[n]) == expected.score


@SMALL
@given(instance=instances())
def test_rank_never_offers_an_impossible_pair(
    instance: tuple[list[WishInput], list[MemberInput], Weights],
) -> None:
    wishes, members, weights = instance
    table = rank(wishes, members, now=NOW, weights=weights)
    by_id = {m.id: m for m in members}
    wish_by_id = {w.id: w for w in wishes}
    for candidate in table.rows():
        member, wish = by_id[candidate.member_id], wish_by_id[candidate.wish_id]
        assert member.active
        assert member.free_capacity > 0
        assert wish.slots_open > 0
        assert wish.id not in member.claimed_wish_ids
        area = {own_id(p) for p in (member.home, *member.service_places)}
        assert area & {region_id for _, region_id in wish.place.levels()}
    assert table.rows() == rank(wishes, members, now=NOW, weights=weights).rows()


@SMALL
@given(instance=instances(), per_wish=st.integers(1, 5))
def test_assign_matches_exhaustive_search(
    instance: tuple[list[WishInput], list[MemberInput], Weights], per_wish: int
) -> None:
    wishes, members, weights = instance
    table = rank(wishes, members, now=NOW, weights=weights, per_wish=per_wish)
    result = assign(wishes, members, table)
    check_assignment(result, table, wishes, members)
    filled, score = exhaustive(table, wishes, members)
    assert result.slots_filled == filled
    assert result.total_score == pytest.approx(score, abs=1e-6)
    assert assign(wishes, members, table) == result, "deterministic"
    baseline = greedy(wishes, members, table)
    check_assignment(baseline, table, wishes, members)
    assert (baseline.slots_filled, baseline.total_score) <= (filled, score + 1e-6)


# --- medium instances ---------------------------------------------------------------------


def medium_district(
    seed: int, n_wishes: int = 200, n_members: int = 150
) -> tuple[list[WishInput], list[MemberInput]]:
    """Three streets of three communities of three grids; members serve their community and
    sometimes a neighbour or their street, so the candidates form a few components."""
    rng = random.Random(seed)
    vocabulary = {
        "repair": ("修理水龙头", "更换灯泡", "修门窗", "水电维修", "管道疏通"),
        "tutoring": ("数学作业辅导", "英语陪读", "作文指导", "小学数学"),
        "companionship": ("陪我聊天", "陪伴散步", "读报陪伴", "节日探访"),
        GENERAL_CATEGORY: ("跑腿代办", "搬家搭把手", "搬运帮手"),
    }
    categories = list(vocabulary)
    communities = [Place(1, 10 + s, 100 + 3 * s + c, None) for s in range(3) for c in range(3)]
    grids = [
        Place(1, community.street_id, community.community_id, 1000 + 3 * n + g)
        for n, community in enumerate(communities)
        for g in range(3)
    ]
    members = []
    for member_id in range(1, n_members + 1):
        home = rng.choice(communities)
        neighbours = [c for c in communities if c.street_id == home.street_id and c != home]
        service: tuple[Place, ...] = ()
        if rng.random() < 0.3:
            service = (rng.choice(neighbours),)
        elif rng.random() < 0.1:
            service = (Place(1, home.street_id, None, None),)
        capacity = rng.choice((1, 2, 3, 3, 5))
        members.append(
            MemberInput(
                id=member_id,
                home=home,
                capacity=capacity,
                active_claims=rng.randint(0, capacity),
                roster=tuple(
                    RosterEntry(category, rng.choice(vocabulary[category]))
                    for category in rng.sample(categories, rng.randint(1, 2))
                ),
                service_places=service,
                recent_matches=rng.randint(0, 3),
                claimed_wish_ids=frozenset(
                    rng.sample(range(1, n_wishes + 1), 2) if rng.random() < 0.1 else ()
                ),
                active=rng.random() < 0.95,
            )
        )
    wishes = [
        WishInput(
            id=wish_id,
            category=(category := rng.choice(categories)),
            text=rng.choice(vocabulary[category]) + rng.choice(("", "请帮忙", "急")),
            place=rng.choice(grids) if rng.random() < 0.7 else rng.choice(communities),
            slots_open=1 if rng.random() < 0.7 else rng.randint(2, 4),
            created_at=NOW - timedelta(days=rng.randint(0, 45)),
            deadline=NOW + timedelta(days=rng.randint(1, 20)) if rng.random() < 0.5 else None,
        )
        for wish_id in range(1, n_wishes + 1)
    ]
    return wishes, members


def milp_optimum(
    table: CandidateTable, wishes: Sequence[WishInput], members: Sequence[MemberInput]
) -> tuple[int, float]:
    """The same problem, independently, as two integer programs (HiGHS, exact gap): the
    most pairs; then the highest total score among assignments with that many."""
    slots = {w.id: w.slots_open for w in wishes if w.slots_open > 0}
    capacity = {m.id: m.free_capacity for m in members if m.active and m.free_capacity > 0}
    pairs = [c for c in table.rows() if c.wish_id in slots and c.member_id in capacity]
    if not pairs:
        return 0, 0.0
    wish_row = {w: n for n, w in enumerate(sorted({c.wish_id for c in pairs}))}
    member_row = {m: n for n, m in enumerate(sorted({c.member_id for c in pairs}))}
    n = len(pairs)
    columns = np.arange(n)
    by_wish = coo_matrix(
        (np.ones(n), ([wish_row[c.wish_id] for c in pairs], columns)), shape=(len(wish_row), n)
    )
    by_member = coo_matrix(
        (np.ones(n), ([member_row[c.member_id] for c in pairs], columns)),
        shape=(len(member_row), n),
    )
    limits = [
        LinearConstraint(by_wish, 0, [slots[w] for w in sorted(wish_row)]),
        LinearConstraint(by_member, 0, [capacity[m] for m in sorted(member_row)]),
    ]
    options = {"mip_rel_gap": 0.0}
    most = milp(
        -np.ones(n),
        constraints=limits,
        integrality=np.ones(n),
        bounds=Bounds(0, 1),
        options=options,
    )
    assert most.success, most.message
    filled = round(-most.fun)
    scores = np.array([c.score for c in pairs])
    best = milp(
        -scores,
        constraints=[*limits, LinearConstraint(np.ones((1, n)), filled, filled)],
        integrality=np.ones(n),
        bounds=Bounds(0, 1),
        options=options,
    )
    assert best.success, best.message
    return filled, float(scores[best.x > 0.5].sum())


@pytest.mark.parametrize(("seed", "per_wish"), [(1, 3), (2, 6), (3, 20)])
def test_medium_rank_is_the_reference_ranking(seed: int, per_wish: int) -> None:
    """Hundreds of pairs per bucket here, so the exact pruning does real work."""
    wishes, members = medium_district(seed, n_wishes=150, n_members=400)
    table = rank(wishes, members, now=NOW, weights=Weights(), per_wish=per_wish)
    assert table.rows() == reference_rank(wishes, members, Weights(), per_wish)


def test_rank_in_small_chunks_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine scores and selects a few thousand wishes at a time; chunk edges change
    nothing."""
    wishes, members = medium_district(4, n_wishes=150, n_members=300)
    monkeypatch.setattr(engine, "_CHUNK", 7)
    table = rank(wishes, members, now=NOW, weights=Weights(), per_wish=4)
    assert table.rows() == reference_rank(wishes, members, Weights(), 4)


@pytest.mark.parametrize(("seed", "per_wish"), [(11, 4), (12, 8), (13, 20)])
def test_assign_matches_milp_on_medium_instances(seed: int, per_wish: int) -> None:
    wishes, members = medium_district(seed)
    table = rank(wishes, members, now=NOW, weights=Weights(), per_wish=per_wish)
    result = assign(wishes, members, table)
    check_assignment(result, table, wishes, members)
    filled, score = milp_optimum(table, wishes, members)
    assert result.slots_filled == filled
    assert result.total_score == pytest.approx(score, abs=1e-4)
    baseline = greedy(wishes, members, table)
    check_assignment(baseline, table, wishes, members)
    assert (result.slots_filled, result.total_score) >= (
        baseline.slots_filled,
        baseline.total_score,
    )


def test_assign_in_parallel_jobs_is_the_same_optimum(monkeypatch: pytest.MonkeyPatch) -> None:
    """One job per component (threads) gives the same optimum as grouped components."""
    wishes, members = medium_district(21)
    table = rank(wishes, members, now=NOW, weights=Weights(), per_wish=6)
    grouped = assign(wishes, members, table)
    monkeypatch.setattr(engine, "_JOB_ARCS", 1)
    apart = assign(wishes, members, table)
    check_assignment(apart, table, wishes, members)
    assert (apart.slots_filled, apart.total_score) == (grouped.slots_filled, grouped.total_score)
    assert assign(wishes, members, table) == apart, "deterministic"


def test_assign_takes_a_repeated_row_once() -> None:
    wishes, members = medium_district(31, n_wishes=60, n_members=40)
    table = rank(wishes, members, now=NOW, weights=Weights(), per_wish=5)
    doubled = CandidateTable(
        *(
            np.concatenate((column, column))
            for column in (
                table.wish_ids,
                table.member_ids,
                table.scores,
                table.components,
                table.locality_levels,
                table.general_help,
            )
        )
    )
    result = assign(wishes, members, doubled)
    check_assignment(result, table, wishes, members)
    assert (result.slots_filled, result.total_score) == (
        assign(wishes, members, table).slots_filled,
        assign(wishes, members, table).total_score,
    )


# --- the components by hand ---------------------------------------------------------------


def wish(**overrides: object) -> WishInput:
    fields: dict[str, object] = {
        "id": 1,
        "category": "repair",
        "text": "修理水龙头",
        "place": GRID_1000,
        "slots_open": 1,
        "created_at": NOW,
        "deadline": None,
    }
    fields.update(overrides)
    return WishInput(**fields)  # type: ignore[arg-type]


def member(member_id: int, **overrides: object) -> MemberInput:
    fields: dict[str, object] = {
        "id": member_id,
        "home": COMMUNITY_110,  # another street: reached only through service regions
        "capacity": 3,
        "active_claims": 0,
        "roster": (RosterEntry("repair", "水电维修"),),
    }
    fields.update(overrides)
    return MemberInput(**fields)  # type: ignore[arg-type]


def test_locality_grid_beats_community_beats_street_beats_district() -> None:
    members = [
        member(1, service_places=(DISTRICT,)),
        member(2, service_places=(STREET_10,)),
        member(3, service_places=(COMMUNITY_100,)),
        member(4, service_places=(GRID_1000,)),
        member(5, service_places=(GRID_1001,)),  # the neighbouring grid: out of area
        member(6, home=COMMUNITY_100, service_places=(GRID_1000,)),  # the deepest counts
    ]
    candidates = rank([wish()], members, now=NOW, weights=Weights()).rows()
    level = {c.member_id: c.locality_level for c in candidates}
    assert level == {1: "district", 2: "street", 3: "community", 4: "grid", 6: "grid"}
    assert [c.member_id for c in candidates] == [4, 6, 3, 2, 1]  # ties to the lower id
    assert {c.member_id: c.components["locality"] for c in candidates} == {
        1: 0.2,
        2: 0.45,
        3: 0.75,
        4: 1.0,
        6: 1.0,
    }


def test_general_help_counts_less_than_the_category() -> None:
    members = [
        member(1, service_places=(GRID_1000,), roster=(RosterEntry("repair", "修水管"),)),
        member(2, service_places=(GRID_1000,), roster=(RosterEntry("other", "修水管"),)),
        member(3, service_places=(GRID_1000,), roster=(RosterEntry("tutoring", "修水管"),)),
    ]
    candidates = rank([wish()], members, now=NOW, weights=Weights()).rows()
    assert [c.member_id for c in candidates] == [1, 2]
    exact, general = candidates
    assert (exact.components["category"], exact.general_help) == (1.0, False)
    assert (general.components["category"], general.general_help) == (0.4, True)
    assert exact.score - general.score == pytest.approx(Weights().category * 0.6, abs=1e-6)


def test_text_is_the_dice_coefficient_of_the_characters() -> None:
    # 修理水龙头 against 水电维修 ∪ 管道疏通 (the member's repair entries; 的 is a stop
    # character): {修, 水} shared by 5 and 8 characters -> 2·2 / 13.
    member_ = member(
        1,
        service_places=(GRID_1000,),
        roster=(
            RosterEntry("repair", "水电维修的"),
            RosterEntry("repair", "管道疏通"),
            RosterEntry("tutoring", "修理水龙头"),  # another category: not counted
        ),
    )
    (candidate,) = rank([wish()], [member_], now=NOW, weights=Weights()).rows()
    assert candidate.components["text"] == round(4 / 13, 6)
    assert characters("水电维修的") == frozenset("水电维修")
    (nothing,) = rank(
        [wish(text="的了")],
        [replace(member_, roster=(RosterEntry("repair", ""),))],
        now=NOW,
        weights=Weights(),
    ).rows()
    assert nothing.components["text"] == 0.0


def test_urgency_counts_waiting_and_deadlines() -> None:
    assert urgency(wish(created_at=NOW), NOW) == 0.0
    assert urgency(wish(created_at=NOW - timedelta(days=15)), NOW) == 0.5
    assert urgency(wish(created_at=NOW - timedelta(days=90)), NOW) == 1.0
    assert urgency(wish(created_at=NOW + timedelta(days=1)), NOW) == 0.0
    assert urgency(wish(deadline=NOW + timedelta(days=1)), NOW) == 1.0
    assert urgency(wish(deadline=NOW - timedelta(days=1)), NOW) == 1.0
    assert urgency(wish(deadline=NOW + timedelta(days=8)), NOW) == pytest.approx(0.5)
    assert urgency(wish(deadline=NOW + timedelta(days=30)), NOW) == 0.0
    both = wish(created_at=NOW - timedelta(days=24), deadline=NOW + timedelta(days=8))
    assert urgency(both, NOW) == pytest.approx(0.8)


def test_fairness_and_capacity() -> None:
    assert fairness(member(1)) == 1.0
    assert fairness(member(1, active_claims=2, recent_matches=1)) == pytest.approx(0.7)
    assert fairness(member(1, capacity=20, active_claims=8, recent_matches=5)) == 0.0
    (candidate,) = rank(
        [wish()],
        [member(1, service_places=(GRID_1000,), active_claims=2, recent_matches=1)],
        now=NOW,
        weights=Weights(),
    ).rows()
    assert candidate.components["capacity"] == round(1 / 3, 6)
    assert candidate.components["fairness"] == 0.7


def test_never_claimed_full_or_inactive() -> None:
    reachable = {"service_places": (GRID_1000,)}
    members = [
        member(1, **reachable),
        member(2, **reachable, claimed_wish_ids=frozenset({1})),
        member(3, **reachable, active_claims=3),
        member(4, **reachable, active=False),
        member(5, **reachable, capacity=2, active_claims=5),
    ]
    table = rank([wish()], members, now=NOW, weights=Weights())
    assert [c.member_id for c in table.rows()] == [1]
    result = assign([wish(slots_open=5)], members, table)
    assert [p.member_id for p in result.pairs] == [1]


def test_load_spread() -> None:
    members = [member(n) for n in range(1, 5)] + [member(9, active_claims=3)]
    pairs = tuple(
        Candidate(w, m, 0.5, dict.fromkeys(COMPONENTS, 0.5), "grid", False)
        for w, m in ((1, 1), (2, 1), (3, 1), (4, 2))
    )
    result = Assignment(pairs, slots_open=4, slots_filled=4, total_score=2.0, filled_by_wish={})
    spread = load_spread(result, members)
    # Loads 3, 1, 0, 0 over the four members with room (member 9 has none).
    assert (spread.members, spread.max_load, spread.mean_load) == (4, 3, 1.0)
    assert spread.gini == pytest.approx(0.625)


def test_empty_inputs() -> None:
    assert len(rank([], [member(1)], now=NOW, weights=Weights())) == 0
    assert len(rank([wish()], [], now=NOW, weights=Weights())) == 0
    assert len(rank([wish()], [member(1)], now=NOW, weights=Weights(), per_wish=0)) == 0
    table = rank([wish()], [member(1)], now=NOW, weights=Weights())  # out of area
    result = assign([wish()], [member(1)], table)
    assert (result.pairs, result.slots_open, result.slots_filled) == ((), 1, 0)
