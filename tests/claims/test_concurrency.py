"""Claim rushes against a real server process, on each database, then every invariant
checked in SQL. Bounded: a few hundred requests, each with a timeout."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import httpx
import pytest

from tests.invariants import violations
from tests.live import Population, seed

pytestmark = [pytest.mark.anyio, pytest.mark.server]

TIMEOUT = httpx.Timeout(30.0)


def client(base_url: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=TIMEOUT)


async def claim(
    http: httpx.AsyncClient, people: Population, member_id: int, wish_id: int, slots: int = 1
) -> httpx.Response:
    return await http.post(
        f"/v1/wishes/{wish_id}/claims", json={"slots": slots}, headers=people.headers(member_id)
    )


def outcome(response: httpx.Response) -> str:
    if response.status_code == 201:
        return "created"
    return str(response.json().get("code", response.status_code))


async def test_fifty_members_rush_one_wish_of_five_slots(server: str, clean_database: str) -> None:
    people = await seed(clean_database, member_capacities=[3] * 50, wish_slots=[5])
    wish_id = people.wish_ids[0]
    async with client(server, 50) as http:
        responses = await asyncio.gather(
            *(claim(http, people, member_id, wish_id) for member_id in people.member_ids)
        )
        outcomes = Counter(outcome(r) for r in responses)
        assert outcomes == {"created": 5, "wish_full": 45}, outcomes
        wish = (
            await http.get(f"/v1/wishes/{wish_id}", headers=people.headers(people.resident_id))
        ).json()
    assert (wish["status"], wish["slots_claimed"]) == ("claimed", 5)
    assert await violations(clean_database) == {}


async def test_one_member_of_capacity_three_claims_twenty_wishes(
    server: str, clean_database: str
) -> None:
    people = await seed(clean_database, member_capacities=[3], wish_slots=[1] * 20)
    member_id = people.member_ids[0]
    async with client(server, 20) as http:
        responses = await asyncio.gather(
            *(claim(http, people, member_id, wish_id) for wish_id in people.wish_ids)
        )
    outcomes = Counter(outcome(r) for r in responses)
    assert outcomes == {"created": 3, "capacity_reached": 17}, outcomes
    assert await violations(clean_database) == {}


async def test_same_member_same_wish_at_once_claims_once(server: str, clean_database: str) -> None:
    people = await seed(clean_database, member_capacities=[5], wish_slots=[10])
    member_id, wish_id = people.member_ids[0], people.wish_ids[0]
    async with client(server, 10) as http:
        responses = await asyncio.gather(
            *(claim(http, people, member_id, wish_id) for _ in range(10))
        )
    outcomes = Counter(outcome(r) for r in responses)
    assert outcomes == {"created": 1, "already_claimed": 9}, outcomes
    assert await violations(clean_database) == {}


async def test_mixed_claim_withdraw_fulfil_storm(server: str, clean_database: str) -> None:
    """Many members, many small wishes, claims racing withdrawals and fulfilments."""
    rng = random.Random(20261127)
    people = await seed(
        clean_database,
        member_capacities=[rng.randint(1, 3) for _ in range(30)],
        wish_slots=[rng.randint(1, 3) for _ in range(20)],
    )
    held: dict[int, list[str]] = {member_id: [] for member_id in people.member_ids}
    statuses: Counter[int] = Counter()

    async def worker(http: httpx.AsyncClient, seed_value: int) -> None:
        local = random.Random(seed_value)
        for _ in range(15):
            member_id = local.choice(people.member_ids)
            headers = people.headers(member_id)
            action = local.random()
            if held[member_id] and action < 0.35:
                claim_id = held[member_id].pop(local.randrange(len(held[member_id])))
                verb = "withdraw" if action < 0.25 else "fulfil"
                response = await http.post(f"/v1/claims/{claim_id}/{verb}", headers=headers)
            else:
                response = await claim(
                    http, people, member_id, local.choice(people.wish_ids), local.randint(1, 2)
                )
                if response.status_code == 201:
                    held[member_id].append(response.json()["id"])
            statuses[response.status_code] += 1

    async with client(server, 32) as http:
        await asyncio.gather(*(worker(http, n) for n in range(32)))
    assert sum(statuses.values()) == 32 * 15
    assert set(statuses) <= {200, 201, 409}, statuses
    assert statuses[201] > 0
    assert await violations(clean_database) == {}
