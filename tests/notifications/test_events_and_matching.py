"""Notifications from claim events and matching: the opening reminder (once), allocation
results (given or not), rush claims, and matching proposals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.core.db import create_database
from app.notifications.service import remind_event_openings
from tests.conftest import Api
from tests.world import World, build_world

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(api: Api) -> World:
    return await build_world(api)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def inbox(world: World, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await world.api.client.get("/v1/me/notifications", headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def create_event(world: World, **fields: Any) -> dict[str, Any]:
    body = {
        "title": "七里站街道集中认领",
        "community_ids": [world.regions["C1"], world.regions["C2"]],
        "mode": "rush",
        "per_member_quota": 2,
        **fields,
    }
    response = await world.api.client.post("/v1/claim-events", json=body, headers=world.organizer)
    assert response.status_code == 201, response.text
    event: dict[str, Any] = response.json()
    return event


async def test_members_are_reminded_once_before_an_event_opens(world: World) -> None:
    api = world.api
    c1_member, _ = await world.member("C1")
    c2_member, _ = await world.member("C2")
    outsider, _ = await world.member("C3")  # another street: not pooled
    pending, _ = await world.member("C1", approve=False)
    starts = datetime.now(UTC) + timedelta(minutes=20)
    event = await create_event(world, starts_at=iso(starts))
    later = await create_event(world, title="下周的活动", starts_at=iso(starts + timedelta(days=7)))
    await create_event(world, title="草稿")  # a draft has no time to remind of

    database = create_database(api.settings)
    try:
        lead = timedelta(minutes=30)
        # (The app's own clock may tick meanwhile: what counts is who was told, and once.)
        await remind_event_openings(database, lead=lead)
        assert await remind_event_openings(database, lead=lead) == 0  # once
        for headers in (c1_member, c2_member):
            [told] = await inbox(world, headers)
            assert told["kind"] == "event_opening_soon"
            starts_at = told["data"].pop("starts_at")
            assert datetime.fromisoformat(starts_at) == starts
            assert told["data"] == {
                "event_id": event["id"],
                "event_title": "七里站街道集中认领",
                "mode": "rush",
            }
            assert told["title"] == "集中认领「七里站街道集中认领」即将开始"
        assert await inbox(world, outsider) == []
        assert await inbox(world, pending) == []

        # Moved: a new reminder for the new time (when it comes near), none for the old.
        moved_to = starts + timedelta(minutes=5)
        etag = (
            await api.client.get(f"/v1/claim-events/{event['id']}", headers=world.organizer)
        ).headers.get("ETag")
        moved = await api.client.patch(
            f"/v1/claim-events/{event['id']}",
            json={"starts_at": iso(moved_to)},
            headers={**world.organizer, **({"If-Match": etag} if etag else {})},
        )
        assert moved.status_code == 200, moved.text
        await remind_event_openings(database, lead=lead)
        assert await remind_event_openings(database, lead=lead) == 0
        assert len(await inbox(world, c1_member)) == 2
        assert len(await inbox(world, c2_member)) == 2
        assert later["id"] not in {n["data"]["event_id"] for n in await inbox(world, c1_member)}
    finally:
        await database.dispose()


async def test_allocation_results_for_everyone_who_ranked(world: World) -> None:
    api = world.api
    popular = await world.wish("C1", title="陪老人下棋")
    other = await world.wish("C2", title="修自行车")
    event = await create_event(world, mode="allocate", per_member_quota=1)
    await api.client.post(f"/v1/claim-events/{event['id']}/open", headers=world.organizer)
    a, _ = await world.member("C3")
    b, _ = await world.member("C3")
    c, _ = await world.member("C3")
    url = f"/v1/claim-events/{event['id']}/preferences"
    # Two want only the popular wish; one of them gets it. The third gets the other one.
    assert (await api.client.put(url, json=[popular["id"]], headers=a)).status_code == 200
    assert (await api.client.put(url, json=[popular["id"]], headers=b)).status_code == 200
    assert (await api.client.put(url, json=[other["id"]], headers=c)).status_code == 200
    closed = await api.client.post(f"/v1/claim-events/{event['id']}/close", headers=world.organizer)
    assert closed.status_code == 200, closed.text

    results = {}
    for name, headers in (("a", a), ("b", b), ("c", c)):
        [told] = await inbox(world, headers)
        assert told["kind"] == "allocation_result"
        assert told["data"]["event_id"] == event["id"]
        results[name] = told
    got = [results[n]["data"]["wishes"] for n in ("a", "b")]
    assert sorted(len(w) for w in got) == [0, 1]
    winner = next(r for r in results.values() if r["data"]["wishes"] and r is not results["c"])
    [given] = winner["data"]["wishes"]
    assert given["wish_id"] == popular["id"]
    assert given["wish_title"] == "陪老人下棋"
    assert given["claim_id"]
    assert winner["title"] == "集中认领「七里站街道集中认领」：您分配到了心愿「陪老人下棋」"
    loser = next(r for r in (results["a"], results["b"]) if not r["data"]["wishes"])
    assert loser["title"] == "集中认领「七里站街道集中认领」：本次未分配到心愿"
    assert [w["wish_id"] for w in results["c"]["data"]["wishes"]] == [other["id"]]
    # The residents heard of the claims made for them.
    residents = [n for n in await inbox(world, world.resident) if n["kind"] == "wish_claimed"]
    assert {n["data"]["wish_id"] for n in residents} == {popular["id"], other["id"]}
    assert {n["data"]["source"] for n in residents} == {"event"}
    assert {n["data"]["event_id"] for n in residents} == {event["id"]}


async def test_a_rush_claim_tells_the_resident(world: World) -> None:
    api = world.api
    wish = await world.wish("C1")
    event = await create_event(world)
    await api.client.post(f"/v1/claim-events/{event['id']}/open", headers=world.organizer)
    member, _ = await world.member("C3")
    claimed = await api.client.post(
        f"/v1/claim-events/{event['id']}/claims", json={"wish_id": wish["id"]}, headers=member
    )
    assert claimed.status_code == 201, claimed.text
    told = (await inbox(world, world.resident))[0]
    assert told["kind"] == "wish_claimed"
    assert told["data"]["source"] == "event"
    assert told["data"]["event_id"] == event["id"]


async def test_matching_proposals_reach_the_members(world: World) -> None:
    api = world.api
    wish = await world.wish("C1", category="repair", title="修水龙头")
    member, member_id = await world.member("C1")
    roster = await api.client.put(
        "/v1/members/me/resources",
        json=[{"category": "repair", "title": "水电维修"}],
        headers=member,
    )
    assert roster.status_code == 200, roster.text
    run = await api.client.post(
        "/v1/matching/runs", json={"region_id": world.regions["C1"]}, headers=world.organizer
    )
    assert run.status_code == 201, run.text
    applied = await api.client.post(
        f"/v1/matching/runs/{run.json()['id']}/apply", headers=world.organizer
    )
    assert applied.status_code == 200, applied.text
    [assignment] = applied.json()["assignments"]
    assert assignment["member_id"] == member_id
    [told] = await inbox(world, member)
    assert told["kind"] == "match_proposed"
    assert told["data"] == {
        "wish_id": wish["id"],
        "wish_title": "修水龙头",
        "run_id": run.json()["id"],
        "claim_id": assignment["claim_id"],
    }
    assert told["title"] == "您已被匹配到心愿「修水龙头」"
    resident_told = (await inbox(world, world.resident))[0]
    assert resident_told["kind"] == "wish_claimed"
    assert resident_told["data"]["source"] == "match"
