"""Claim deadlines on SQLite and PostgreSQL: set by category when the claim is made (the
wish's own deadline is the last moment to claim it, not to fulfil it); one reminder before
it; released at it (as a withdrawal would end it, with notifications), never twice however
many clocks run; one extension. And what a wish's deadline does to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from app.claims import deadlines
from app.claims.models import Claim
from app.claims.service import release_overdue, remind_before_deadlines
from app.core.db import Database, create_database
from app.main import create_app, pass_deadlines
from app.members.models import Member
from app.wishes.models import Wish
from tests.conftest import Api, make_settings
from tests.invariants import event_violations, violations
from tests.world import World, build_world

pytestmark = pytest.mark.anyio

DEFAULT_DAYS = 14
CATEGORY_DAYS = {"repair": 7, "companionship": 30}


@pytest.fixture
async def api(clean_database: str) -> AsyncIterator[Api]:
    """The usual ASGI client, with per-category claim periods configured."""
    settings = make_settings(
        clean_database,
        claim_deadline_days=DEFAULT_DAYS,
        claim_deadline_days_by_category=CATEGORY_DAYS,
        claim_reminder_hours=24,
        # The tests run the deadline jobs themselves, at the moments they choose.
        deadline_clock_interval_seconds=3600,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(client=client, settings=settings)


@pytest.fixture
async def world(api: Api) -> World:
    return await build_world(api)


@dataclass
class Clock:
    """What another server process's clock would use: its own engine and sessions."""

    database: Database

    async def run(self, job: Any, **options: Any) -> int:
        async with self.database.transaction(write=True) as session:
            done: int = await job(session, **options)
            return done

    async def set_deadline(self, claim_id: str, moment: datetime) -> None:
        async with self.database.transaction(write=True) as session:
            await session.execute(
                update(Claim).where(Claim.id == int(claim_id)).values(deadline=moment)
            )

    async def claim(self, claim_id: str) -> Claim:
        async with self.database.transaction(write=False) as session:
            claim = await session.scalar(select(Claim).where(Claim.id == int(claim_id)))
            assert claim is not None
            return claim

    async def active_claims(self, member_id: str) -> int:
        async with self.database.transaction(write=False) as session:
            count = await session.scalar(
                select(Member.active_claims).where(Member.user_id == int(member_id))
            )
            return int(count or 0)


async def open_clock(api: Api) -> Clock:
    database = create_database(api.settings)
    deadlines.install(database, api.settings)
    return Clock(database)


@pytest.fixture
async def clock(api: Api) -> AsyncIterator[Clock]:
    made = await open_clock(api)
    yield made
    await made.database.dispose()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def claimed(world: World, wish_id: str, headers: dict[str, str]) -> dict[str, Any]:
    response = await world.claim(wish_id, headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def inbox(world: World, headers: dict[str, str], kind: str) -> list[dict[str, Any]]:
    response = await world.api.client.get("/v1/me/notifications", headers=headers)
    assert response.status_code == 200, response.text
    return [item for item in response.json()["items"] if item["kind"] == kind]


async def test_deadline_by_category_whatever_the_wish_deadline(world: World) -> None:
    api = world.api
    member, _ = await world.member("C1", capacity=5)
    soon = datetime.now(UTC) + timedelta(days=10)
    wishes = {
        "repair": await world.wish(category="repair"),
        "companionship": await world.wish(category="companionship"),
        "default": await world.wish(category="disability_support"),
        # Due in 10 days: claimed before that, the helper still has the category's 30.
        "due_soon": await world.wish(category="companionship", deadline=iso(soon)),
    }
    expected_days = {"repair": 7, "companionship": 30, "default": DEFAULT_DAYS, "due_soon": 30}
    for name, wish in wishes.items():
        before = datetime.now(UTC)
        claim = await claimed(world, wish["id"], member)
        after = datetime.now(UTC)
        deadline = parse(claim["deadline"])
        assert claim["extended_at"] is None
        period = timedelta(days=expected_days[name])
        assert before + period <= deadline <= after + period, (name, claim)
        read = await api.client.get(f"/v1/claims/{claim['id']}", headers=member)
        assert read.json()["deadline"] == claim["deadline"]
    mine = (await api.client.get("/v1/me/claims", headers=member)).json()["items"]
    assert all(item["deadline"] is not None for item in mine)
    assert "reminded_at" not in mine[0]


async def test_event_claims_get_a_deadline_and_give_their_quota_back(
    world: World, clock: Clock
) -> None:
    api = world.api
    first = await world.wish("C1", category="repair")
    second = await world.wish("C2")
    created = await api.client.post(
        "/v1/claim-events",
        json={
            "title": "七里站街道集中认领",
            "community_ids": [world.regions["C1"], world.regions["C2"]],
            "mode": "rush",
            "per_member_quota": 1,
        },
        headers=world.organizer,
    )
    event = created.json()
    opened = await api.client.post(f"/v1/claim-events/{event['id']}/open", headers=world.organizer)
    assert opened.status_code == 200, opened.text
    member, _ = await world.member("C3")

    async def event_claim(wish_id: str) -> httpx.Response:
        return await api.client.post(
            f"/v1/claim-events/{event['id']}/claims",
            json={"wish_id": wish_id, "slots": 1},
            headers=member,
        )

    made = await event_claim(first["id"])
    assert made.status_code == 201, made.text
    deadline = parse(made.json()["deadline"])
    assert timedelta(days=6) < deadline - datetime.now(UTC) <= timedelta(days=7)
    assert (await event_claim(second["id"])).json()["code"] == "quota_reached"

    await clock.set_deadline(made.json()["id"], datetime.now(UTC) - timedelta(minutes=1))
    assert await clock.run(release_overdue) == 1
    assert (await event_claim(second["id"])).status_code == 201  # the quota came back
    assert await violations(api.settings.database_url) == {}
    assert await event_violations(api.settings.database_url) == {}


async def test_released_at_the_deadline_like_a_withdrawal(world: World, clock: Clock) -> None:
    api = world.api
    wish = await world.wish(slots=2, title="修理楼道灯", category="repair")
    late, late_id = await world.member("C1", capacity=1)
    punctual, _ = await world.member("C1")
    late_claim = await claimed(world, wish["id"], late)
    punctual_claim = await claimed(world, wish["id"], punctual)
    full = await api.client.get(f"/v1/wishes/{wish['id']}", headers=world.resident)
    assert full.json()["status"] == "claimed"
    assert await clock.active_claims(late_id) == 1

    assert await clock.run(release_overdue) == 0  # nothing due yet
    await clock.set_deadline(late_claim["id"], datetime.now(UTC) - timedelta(seconds=1))
    assert await clock.run(release_overdue) == 1
    assert await clock.run(release_overdue) == 0  # released once

    read = await api.client.get(f"/v1/claims/{late_claim['id']}", headers=late)
    assert read.json()["status"] == "released"
    assert read.json()["ended_at"] is not None
    other = await api.client.get(f"/v1/claims/{punctual_claim['id']}", headers=punctual)
    assert other.json()["status"] == "active"
    reopened = (await api.client.get(f"/v1/wishes/{wish['id']}", headers=world.resident)).json()
    assert reopened["status"] == "open"
    assert reopened["slots_claimed"] == 1
    assert await clock.active_claims(late_id) == 0
    assert await violations(api.settings.database_url) == {}

    # The claimer and the resident are told, each in their own words.
    told = await inbox(world, late, "claim_released")
    assert len(told) == 1
    assert told[0]["data"]["claim_id"] == late_claim["id"]
    assert told[0]["data"]["wish_id"] == wish["id"]
    assert "修理楼道灯" in told[0]["title"]
    resident_told = await inbox(world, world.resident, "claim_released")
    assert len(resident_told) == 1
    assert resident_told[0]["data"]["claim_id"] == late_claim["id"]
    assert resident_told[0]["title"] != told[0]["title"]
    assert await inbox(world, punctual, "claim_released") == []

    # Its capacity is free again: the member can claim (the same wish, even) once more.
    again = await world.claim(wish["id"], late)
    assert again.status_code == 201, again.text
    # A released claim is over: it can be neither withdrawn nor extended.
    for verb in ("withdraw", "extend"):
        ended = await api.client.post(f"/v1/claims/{late_claim['id']}/{verb}", headers=late)
        assert ended.status_code == 409
        assert ended.json()["code"] == "invalid_state"
        assert ended.json()["current_state"] == "released"


async def test_reminded_once_before_the_deadline(world: World, clock: Clock) -> None:
    api = world.api
    member, _ = await world.member("C1")
    due_soon = await claimed(world, (await world.wish(title="陪老人聊天"))["id"], member)
    later = await claimed(world, (await world.wish())["id"], member)
    await clock.set_deadline(due_soon["id"], datetime.now(UTC) + timedelta(hours=5))

    runs = await asyncio.gather(*(clock.run(remind_before_deadlines) for _ in range(3)))
    assert sum(runs) == 1
    assert await clock.run(remind_before_deadlines) == 0
    reminders = await inbox(world, member, "claim_deadline_soon")
    assert len(reminders) == 1
    assert reminders[0]["data"]["claim_id"] == due_soon["id"]
    assert parse(reminders[0]["data"]["deadline"]) == (await clock.claim(due_soon["id"])).deadline
    assert "陪老人聊天" in reminders[0]["title"]
    assert (await clock.claim(later["id"])).reminded_at is None

    # An extension moves the deadline out of the window: a reminder comes before the new one.
    extended = await api.client.post(f"/v1/claims/{due_soon['id']}/extend", headers=member)
    assert extended.status_code == 200, extended.text
    assert (await clock.claim(due_soon["id"])).reminded_at is None
    assert await clock.run(remind_before_deadlines) == 0


async def test_extend_once(world: World, clock: Clock) -> None:
    api = world.api
    member, _ = await world.member("C1", capacity=5)
    stranger, _ = await world.member("C1")
    claim = await claimed(world, (await world.wish(category="repair"))["id"], member)

    refused = await api.client.post(f"/v1/claims/{claim['id']}/extend", headers=stranger)
    assert refused.status_code == 403
    extended = await api.client.post(f"/v1/claims/{claim['id']}/extend", headers=member)
    assert extended.status_code == 200, extended.text
    body = extended.json()
    assert parse(body["deadline"]) == parse(claim["deadline"]) + timedelta(days=7)
    assert body["extended_at"] is not None
    assert body["status"] == "active"
    again = await api.client.post(f"/v1/claims/{claim['id']}/extend", headers=member)
    assert again.status_code == 409
    assert again.json()["code"] == "already_extended"
    assert parse(again.json()["deadline"]) == parse(body["deadline"])

    # Past the deadline (the release job has not run yet) it is too late.
    overdue = await claimed(world, (await world.wish())["id"], member)
    await clock.set_deadline(overdue["id"], datetime.now(UTC) - timedelta(minutes=1))
    late = await api.client.post(f"/v1/claims/{overdue['id']}/extend", headers=member)
    assert late.status_code == 409
    assert late.json()["code"] == "invalid_state"
    assert late.json()["current_state"] == "overdue"

    withdrawn = await claimed(world, (await world.wish())["id"], stranger)
    await api.client.post(f"/v1/claims/{withdrawn['id']}/withdraw", headers=stranger)
    gone = await api.client.post(f"/v1/claims/{withdrawn['id']}/extend", headers=stranger)
    assert gone.status_code == 409
    assert gone.json()["current_state"] == "withdrawn"
    assert await violations(api.settings.database_url) == {}


async def test_concurrent_clocks_and_withdrawals_never_end_a_claim_twice(world: World) -> None:
    """Two server processes run the release job at once (small batches, so they interleave)
    while members withdraw some of the same overdue claims."""
    api = world.api
    wishes = [await world.wish(slots=4) for _ in range(4)]
    members = [await world.member("C1") for _ in range(6)]
    claims: list[tuple[dict[str, str], dict[str, Any]]] = []
    for index, (headers, _) in enumerate(members):
        for wish in (wishes[index % 4], wishes[(index + 1) % 4]):
            claims.append((headers, await claimed(world, wish["id"], headers)))
    assert len(claims) == 12
    clocks = [await open_clock(api) for _ in range(2)]
    try:
        past = datetime.now(UTC) - timedelta(seconds=1)
        for _, claim in claims:
            await clocks[0].set_deadline(claim["id"], past)

        async def drain(clock: Clock) -> int:
            total = 0
            while released := await clock.run(release_overdue, batch=3):
                total += released
            return total

        async def withdraw(headers: dict[str, str], claim_id: str) -> int:
            response = await api.client.post(f"/v1/claims/{claim_id}/withdraw", headers=headers)
            assert response.status_code in (200, 409), response.text
            return 1 if response.status_code == 200 else 0

        results = await asyncio.gather(
            drain(clocks[0]),
            drain(clocks[1]),
            *(withdraw(headers, claim["id"]) for headers, claim in claims[::2]),
        )
        released, withdrawn = results[0] + results[1], sum(results[2:])
        assert released + withdrawn == len(claims)
        assert released >= len(claims) - len(claims[::2])  # only half were withdrawn
        statuses = [(await clocks[0].claim(claim["id"])).status for _, claim in claims]
        assert statuses.count("released") == released
        assert statuses.count("withdrawn") == withdrawn
        for headers, _ in members:
            assert len(await inbox(world, headers, "claim_released")) == sum(
                1
                for claim_headers, claim in claims
                if claim_headers is headers
                and statuses[claims.index((claim_headers, claim))] == "released"
            )
        assert len(await inbox(world, world.resident, "claim_released")) == released
        for _, member_id in members:
            assert await clocks[0].active_claims(member_id) == 0
        assert await violations(api.settings.database_url) == {}
    finally:
        for made in clocks:
            await made.database.dispose()


async def test_deadline_clock_releases_then_settles_the_wish(world: World, clock: Clock) -> None:
    """The deadline clock's tick releases overdue claims first, then settles wishes past
    their own deadline: a wish whose only claim ran out expires in the same tick."""
    api = world.api
    member, _ = await world.member("C1")
    wish = await world.wish(deadline=iso(datetime.now(UTC) + timedelta(days=2)))
    claim = await claimed(world, wish["id"], member)
    past = datetime.now(UTC) - timedelta(minutes=1)
    await clock.set_deadline(claim["id"], past)
    async with clock.database.transaction(write=True) as session:
        await session.execute(update(Wish).where(Wish.id == int(wish["id"])).values(deadline=past))
    await pass_deadlines(clock.database)
    assert (await clock.claim(claim["id"])).status == "released"
    expired = (await api.client.get(f"/v1/wishes/{wish['id']}", headers=world.resident)).json()
    assert expired["status"] == "expired"
    assert await violations(api.settings.database_url) == {}


async def test_a_wish_deadline_ends_only_what_nobody_holds(world: World, clock: Clock) -> None:
    """A wish's deadline is the last moment to claim it. Past it: unclaimed, it expires;
    claimed, it stays with its helpers (they keep their claims' own deadlines); shared and
    only partly taken, it ends fulfilled as far as it got once every claim is done."""
    api = world.api
    soon = iso(datetime.now(UTC) + timedelta(days=2))
    unclaimed = await world.wish(deadline=soon)
    taken = await world.wish(deadline=soon)
    shared = await world.wish(slots=3, deadline=soon)
    helper, _ = await world.member("C1")
    other, _ = await world.member("C1")
    taken_claim = await claimed(world, taken["id"], helper)
    done = await claimed(world, shared["id"], helper)
    pending = await claimed(world, shared["id"], other)
    fulfilled = await api.client.post(f"/v1/claims/{done['id']}/fulfil", json={}, headers=helper)
    assert fulfilled.status_code == 200, fulfilled.text
    async with clock.database.transaction(write=True) as session:
        await session.execute(
            update(Wish)
            .where(Wish.id.in_([int(w["id"]) for w in (unclaimed, taken, shared)]))
            .values(deadline=datetime.now(UTC) - timedelta(seconds=1))
        )

    async def status(wish: dict[str, Any]) -> str:
        read = await api.client.get(f"/v1/wishes/{wish['id']}", headers=world.resident)
        value: str = read.json()["status"]
        return value

    # Past the deadline nobody new may claim, whatever the clock has done yet.
    late, _ = await world.member("C1")
    refused = await world.claim(shared["id"], late)
    assert refused.json()["code"] == "not_claimable"
    assert refused.json()["reason"] == "deadline_passed"
    await pass_deadlines(clock.database)
    assert await status(unclaimed) == "expired"
    assert await status(taken) == "claimed"
    assert (await clock.claim(taken_claim["id"])).status == "active"
    assert await status(shared) == "open"  # one helper is still at it
    before = len(await inbox(world, world.resident, "claim_fulfilled"))
    finished = await api.client.post(f"/v1/claims/{pending['id']}/fulfil", json={}, headers=other)
    assert finished.status_code == 200, finished.text
    # The last fulfilment settles it at once: two of three slots, as far as it got.
    assert finished.json()["wish"]["status"] == "fulfilled"
    await pass_deadlines(clock.database)
    assert await status(shared) == "fulfilled"
    # Its resident is asked to confirm now, once (not also told "all done").
    told = await inbox(world, world.resident, "claim_fulfilled")
    assert len(told) == before + 1
    assert told[0]["data"]["cause"] == "deadline"
    assert "已到截止时间" in told[0]["title"]
    assert "2/3" in told[0]["title"]
    confirmed = await api.client.post(
        f"/v1/wishes/{shared['id']}/confirm", json={"rating": 5}, headers=world.resident
    )
    assert confirmed.status_code == 200, confirmed.text
    assert await violations(api.settings.database_url) == {}


async def test_default_period_without_category_overrides(clean_database: str) -> None:
    """With no per-category periods every claim gets the default one (the claim statement
    without a category CASE)."""
    settings = make_settings(clean_database, claim_deadline_days=5)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            world = await build_world(Api(client=client, settings=settings))
            member, _ = await world.member("C1")
            before = datetime.now(UTC)
            claim = await claimed(world, (await world.wish(category="repair"))["id"], member)
            after = datetime.now(UTC)
    period = timedelta(days=5)
    assert before + period <= parse(claim["deadline"]) <= after + period


def test_policy_from_settings() -> None:
    policy = deadlines.DeadlinePolicy.of(
        default_days=14, days_by_category={"repair": 7, "other": 14, "companionship": 30}
    )
    # Categories with the default period need no CASE branch.
    assert policy.days_by_category == (("companionship", 30), ("repair", 7))
    now = datetime(2026, 12, 1, tzinfo=UTC)
    periods = policy.periods(now)
    assert periods.categories == ("companionship", "repair")
    assert periods.params() == {
        "deadline_default": now + timedelta(days=14),
        "deadline_0": now + timedelta(days=30),
        "deadline_1": now + timedelta(days=7),
    }
    assert periods.deadline_for("repair") == now + timedelta(days=7)
    assert periods.deadline_for("companionship") == now + timedelta(days=30)
    assert periods.deadline_for("tutoring") == now + timedelta(days=14)
    assert policy.extended(now, category="repair") == now + timedelta(days=7)
    assert policy.extended(now, category="other") == now + timedelta(days=14)
