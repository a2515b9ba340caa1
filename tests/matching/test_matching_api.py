from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Api
from tests.invariants import violations
from tests.locks import lock_row, other_transaction, until_someone_waits
from tests.world import World, build_world

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(api: Api) -> World:
    return await build_world(api)


async def roster(world: World, headers: dict[str, str], *entries: dict[str, Any]) -> None:
    response = await world.api.client.put(
        "/v1/members/me/resources", json=list(entries), headers=headers
    )
    assert response.status_code == 200, response.text


async def test_candidates_are_ranked_and_explained(world: World) -> None:
    api = world.api
    wish = await world.wish(category="repair", title="修理漏水的水龙头")
    plumber, plumber_id = await world.member(name="水电工")
    await roster(world, plumber, {"category": "repair", "title": "水电维修 修理水龙头"})
    helper, helper_id = await world.member(name="热心人")
    await roster(world, helper, {"category": "other", "title": "跑腿"})
    tutor, _ = await world.member(name="老师")
    await roster(world, tutor, {"category": "tutoring", "title": "数学辅导"})
    far, _ = await world.member("C3", name="远方")
    await roster(world, far, {"category": "repair", "title": "维修"})

    response = await api.client.get(
        f"/v1/wishes/{wish['id']}/candidates",
        headers={**world.organizer, "Accept-Language": "en"},
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [c["member_id"] for c in items] == [plumber_id, helper_id]
    best = items[0]["breakdown"]
    assert best["locality_level"] == "community"
    parts = {part["name"]: part for part in best["components"]}
    assert set(parts) == {"category", "text", "locality", "capacity", "urgency", "fairness"}
    assert parts["category"]["value"] == 1.0
    assert parts["category"]["reason"] == "Roster offers Repair"
    assert parts["text"]["value"] > 0
    assert abs(sum(p["contribution"] for p in parts.values()) - best["score"]) < 1e-4
    general = {p["name"]: p for p in items[1]["breakdown"]["components"]}
    assert general["category"]["value"] == 0.4

    zh = await api.client.get(f"/v1/wishes/{wish['id']}/candidates", headers=world.organizer)
    zh_parts = {p["name"]: p for p in zh.json()["items"][0]["breakdown"]["components"]}
    assert zh_parts["category"]["reason"] == "资源清单提供「维修」"
    assert zh_parts["locality"]["reason"] == "同一社区"

    # A member who already claims the wish is no longer a candidate.
    await world.claim(wish["id"], plumber)
    wish2 = await world.wish(category="repair", slots=2)
    claimed = await world.claim(wish2["id"], plumber)
    assert claimed.status_code == 201
    again = await api.client.get(f"/v1/wishes/{wish2['id']}/candidates", headers=world.organizer)
    assert plumber_id not in [c["member_id"] for c in again.json()["items"]]


async def test_candidates_need_an_organizer_in_scope(world: World) -> None:
    api = world.api
    wish = await world.wish("C3")
    outside = await api.client.get(f"/v1/wishes/{wish['id']}/candidates", headers=world.organizer)
    assert outside.status_code == 403
    resident = await api.client.get(f"/v1/wishes/{wish['id']}/candidates", headers=world.resident)
    assert resident.status_code == 403
    admin = await api.client.get(f"/v1/wishes/{wish['id']}/candidates", headers=world.admin)
    assert admin.status_code == 200
    too_many = await api.client.get(
        f"/v1/wishes/{wish['id']}/candidates", params={"limit": 101}, headers=world.admin
    )
    assert too_many.status_code == 422


async def test_recommendations_for_a_member(world: World) -> None:
    api = world.api
    repair = await world.wish(category="repair", title="修门")
    await world.wish(category="tutoring", title="数学作业")
    await world.wish("C3", category="repair")  # outside the member's area
    member, _ = await world.member()
    await roster(world, member, {"category": "repair", "title": "修门窗"})
    response = await api.client.get("/v1/me/recommendations", headers=member)
    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["wish"]["id"] for item in items] == [repair["id"]]
    assert items[0]["breakdown"]["score"] > 0
    pending, _ = await world.member(approve=False)
    assert (await api.client.get("/v1/me/recommendations", headers=pending)).status_code == 403
    stranger, _ = await world.user()
    not_member = await api.client.get("/v1/me/recommendations", headers=stranger)
    assert not_member.status_code == 403
    assert not_member.json()["code"] == "not_a_member"


async def test_matching_leaves_out_own_wishes_and_wishes_in_a_live_event(world: World) -> None:
    """A member's own wish, and a wish pooled in a live claim event, are not claimable
    directly: never recommended, never a candidate, never proposed by a run."""
    api = world.api
    publisher, publisher_id = await world.member()
    await roster(world, publisher, {"category": "repair", "title": "修门窗"})
    own = await world.wish(category="repair", title="修门", by=publisher)
    pooled = await world.wish("C2", category="repair", title="修门锁")
    helper, _ = await world.member("C2")
    await roster(world, helper, {"category": "repair", "title": "修门窗"})
    event = await api.client.post(
        "/v1/claim-events",
        json={
            "title": "集中认领",
            "community_ids": [world.regions["C2"]],
            "mode": "rush",
            "per_member_quota": 1,
            "wish_ids": [pooled["id"]],
        },
        headers=world.organizer,
    )
    assert event.status_code == 201, event.text
    opened = await api.client.post(
        f"/v1/claim-events/{event.json()['id']}/open", headers=world.organizer
    )
    assert opened.status_code == 200, opened.text

    recommended = (await api.client.get("/v1/me/recommendations", headers=publisher)).json()
    assert own["id"] not in {item["wish"]["id"] for item in recommended["items"]}
    candidates = (
        await api.client.get(f"/v1/wishes/{own['id']}/candidates", headers=world.organizer)
    ).json()
    assert publisher_id not in {c["member_id"] for c in candidates["items"]}
    helper_sees = (await api.client.get("/v1/me/recommendations", headers=helper)).json()
    assert pooled["id"] not in {item["wish"]["id"] for item in helper_sees["items"]}
    in_event = await api.client.get(
        f"/v1/wishes/{pooled['id']}/candidates", headers=world.organizer
    )
    assert in_event.json()["items"] == []

    run = await api.client.post(
        "/v1/matching/runs", json={"region_id": world.regions["S1"]}, headers=world.organizer
    )
    assert run.status_code == 201, run.text
    pairs = {(a["wish_id"], a["member_id"]) for a in run.json()["assignments"]}
    assert (own["id"], publisher_id) not in pairs
    assert pooled["id"] not in {wish_id for wish_id, _ in pairs}
    assert pooled["id"] not in run.json()["inputs"]["wish_ids"]
    assert all(isinstance(i, str) for i in run.json()["inputs"]["member_ids"])
    assert run.json()["inputs"]["computed_at"].endswith("Z")
    chosen = await api.client.post(
        "/v1/matching/runs",
        json={"region_id": world.regions["S1"], "wish_ids": [pooled["id"]]},
        headers=world.organizer,
    )
    assert chosen.status_code == 422
    assert chosen.json()["code"] == "wishes_not_matchable"


async def prepare_run(world: World) -> dict[str, Any]:
    wishes = [
        await world.wish(category="repair", title="修水龙头", slots=2),
        await world.wish(category="companionship", title="陪老人聊天"),
        await world.wish(category="tutoring", title="作业辅导"),
    ]
    members = []
    for category, title in (
        ("repair", "水电维修"),
        ("companionship", "陪伴聊天"),
        ("repair", "修理"),
    ):
        headers, member_id = await world.member()
        await roster(world, headers, {"category": category, "title": title})
        members.append((headers, member_id))
    return {"wishes": wishes, "members": members}


async def test_run_then_apply(world: World) -> None:
    api = world.api
    setup = await prepare_run(world)
    created = await api.client.post(
        "/v1/matching/runs", json={"region_id": world.regions["S1"]}, headers=world.organizer
    )
    assert created.status_code == 201, created.text
    run = created.json()
    assert run["status"] == "computed"
    assert run["optimal"]["slots_open"] == 4
    assert run["optimal"]["slots_filled"] == 3  # nobody offers tutoring
    assert run["optimal"]["slots_filled"] >= run["greedy"]["slots_filled"]
    assert {u["wish_id"] for u in run["unfilled"]} == {setup["wishes"][2]["id"]}
    assert run["load"]["max"] == 1
    assert run["inputs"]["weights"]["category"] == 0.3
    assert all(a["status"] == "proposed" for a in run["assignments"])

    same = await api.client.get(f"/v1/matching/runs/{run['id']}", headers=world.organizer)
    assert same.json()["assignments"] == run["assignments"]

    applied = await api.client.post(f"/v1/matching/runs/{run['id']}/apply", headers=world.organizer)
    assert applied.status_code == 200, applied.text
    body = applied.json()
    assert body["status"] == "applied"
    assert body["applied"] == 3
    assert body["skipped"] == 0
    member_headers = setup["members"][1][0]
    claims = (await api.client.get("/v1/me/claims", headers=member_headers)).json()["items"]
    assert [c["source"] for c in claims] == ["match"]
    again = await api.client.post(f"/v1/matching/runs/{run['id']}/apply", headers=world.organizer)
    assert again.status_code == 409
    assert again.json()["current_state"] == "applied"
    assert await violations(api.settings.database_url) == {}


async def test_stale_assignments_are_skipped_not_half_applied(world: World) -> None:
    api = world.api
    setup = await prepare_run(world)
    run = (
        await api.client.post(
            "/v1/matching/runs", json={"region_id": world.regions["C1"]}, headers=world.organizer
        )
    ).json()
    companionship = setup["wishes"][1]
    # Between run and apply: someone else takes the companionship wish, and one repairer
    # is suspended.
    other, _ = await world.member()
    assert (await world.claim(companionship["id"], other)).status_code == 201
    _, suspended_id = setup["members"][2]
    await api.client.post(f"/v1/members/{suspended_id}/suspend", headers=world.organizer)

    applied = (
        await api.client.post(f"/v1/matching/runs/{run['id']}/apply", headers=world.organizer)
    ).json()
    reasons = {(a["wish_id"], a["member_id"]): a["skip_reason"] for a in applied["assignments"]}
    assert reasons[(companionship["id"], setup["members"][1][1])] == "wish_full"
    assert reasons[(setup["wishes"][0]["id"], suspended_id)] == "member_not_active"
    assert reasons[(setup["wishes"][0]["id"], setup["members"][0][1])] is None
    assert applied["applied"] == 1
    assert applied["skipped"] == 2
    assert await violations(api.settings.database_url) == {}


async def test_apply_queues_behind_a_claim_instead_of_deadlocking(world: World) -> None:
    """A claim transaction locks its wish, then its member. One holding a wish of the run and
    then wanting a member the run claims for must make the apply wait, not deadlock it."""
    api = world.api
    await prepare_run(world)
    run = (
        await api.client.post(
            "/v1/matching/runs", json={"region_id": world.regions["S1"]}, headers=world.organizer
        )
    ).json()
    first, last = run["assignments"][0], run["assignments"][-1]
    assert first["wish_id"] != last["wish_id"]
    assert first["member_id"] != last["member_id"]
    async with other_transaction(api.settings.async_database_url) as claim:
        await lock_row(claim, "wishes", "id", last["wish_id"])
        apply = asyncio.create_task(
            api.client.post(f"/v1/matching/runs/{run['id']}/apply", headers=world.organizer)
        )
        await until_someone_waits(claim, apply)
        await lock_row(claim, "members", "user_id", first["member_id"])
    applied = await apply
    assert applied.status_code == 200, applied.text
    assert applied.json()["applied"] == 3
    assert await violations(api.settings.database_url) == {}


async def test_runs_are_scoped(world: World) -> None:
    api = world.api
    outside = await api.client.post(
        "/v1/matching/runs", json={"region_id": world.regions["C3"]}, headers=world.organizer
    )
    assert outside.status_code == 403
    resident = await api.client.post(
        "/v1/matching/runs", json={"region_id": world.regions["C1"]}, headers=world.resident
    )
    assert resident.status_code == 403
    run = (
        await api.client.post(
            "/v1/matching/runs", json={"region_id": world.regions["C3"]}, headers=world.admin
        )
    ).json()
    read = await api.client.get(f"/v1/matching/runs/{run['id']}", headers=world.organizer)
    assert read.status_code == 403
    foreign_wish = await world.wish("C3")
    bad = await api.client.post(
        "/v1/matching/runs",
        json={"region_id": world.regions["C1"], "wish_ids": [foreign_wish["id"]]},
        headers=world.organizer,
    )
    assert bad.status_code == 422
    assert bad.json()["code"] == "wishes_not_matchable"
    assert (await api.client.get("/v1/matching/runs/999", headers=world.admin)).status_code == 404
