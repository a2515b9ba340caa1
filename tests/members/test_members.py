from __future__ import annotations

import asyncio

import pytest

from tests.conftest import Api
from tests.world import World, build_world, next_phone

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(api: Api) -> World:
    return await build_world(api)


async def test_apply_approve_suspend_reinstate(world: World) -> None:
    api = world.api
    headers, user_id = await world.user("小李")
    applied = await api.client.post(
        "/v1/members", json={"community_id": world.regions["C1"]}, headers=headers
    )
    assert applied.status_code == 201
    assert applied.json()["status"] == "pending"
    assert applied.json()["capacity"] == 3
    assert applied.json()["display_name"] == "小李"

    again = await api.client.post(
        "/v1/members", json={"community_id": world.regions["C1"]}, headers=headers
    )
    assert again.status_code == 409
    assert again.json()["code"] == "already_member"

    pending = await api.client.get(
        "/v1/members", params={"status": "pending"}, headers=world.organizer
    )
    assert [m["user_id"] for m in pending.json()["items"]] == [user_id]

    approved = await api.client.post(f"/v1/members/{user_id}/approve", headers=world.organizer)
    assert approved.status_code == 200
    assert approved.json()["status"] == "active"
    twice = await api.client.post(f"/v1/members/{user_id}/approve", headers=world.organizer)
    assert twice.status_code == 409
    assert twice.json()["code"] == "invalid_state"
    assert twice.json()["current_state"] == "active"

    suspended = await api.client.post(f"/v1/members/{user_id}/suspend", headers=world.organizer)
    assert suspended.json()["status"] == "suspended"
    reinstated = await api.client.post(f"/v1/members/{user_id}/approve", headers=world.organizer)
    assert reinstated.json()["status"] == "active"

    me = await api.client.get("/v1/me", headers=headers)
    assert "member" in me.json()["roles"]
    assert me.json()["member"]["status"] == "active"


async def test_review_is_scoped(world: World) -> None:
    api = world.api
    headers, user_id = await world.member("C3", approve=False)  # street S2: outside S1
    out_of_scope = await api.client.post(f"/v1/members/{user_id}/approve", headers=world.organizer)
    assert out_of_scope.status_code == 403
    assert out_of_scope.json()["code"] == "forbidden"
    assert out_of_scope.json()["reason"] == "out_of_scope"
    by_resident = await api.client.post(f"/v1/members/{user_id}/approve", headers=world.resident)
    assert by_resident.status_code == 403
    by_self = await api.client.post(f"/v1/members/{user_id}/approve", headers=headers)
    assert by_self.status_code == 403
    listing = await api.client.get("/v1/members", headers=world.organizer)
    assert user_id not in [m["user_id"] for m in listing.json()["items"]]
    assert (await api.client.get("/v1/members", headers=world.resident)).status_code == 403
    assert (
        await api.client.get(f"/v1/members/{user_id}", headers=world.organizer)
    ).status_code == 403
    assert (await api.client.get(f"/v1/members/{user_id}", headers=headers)).status_code == 200
    missing = await api.client.post("/v1/members/999999/approve", headers=world.admin)
    assert missing.status_code == 404


async def test_apply_needs_a_community(world: World) -> None:
    api = world.api
    headers, _ = await world.user()
    street = await api.client.post(
        "/v1/members", json={"community_id": world.regions["S1"]}, headers=headers
    )
    assert street.status_code == 422
    assert street.json()["code"] == "not_a_community"
    missing = await api.client.post("/v1/members", json={"community_id": "99999"}, headers=headers)
    assert missing.status_code == 404
    for body in ({"community_id": world.regions["C1"], "capacity": 0}, {"community_id": "x"}, {}):
        bad = await api.client.post("/v1/members", json=body, headers=headers)
        assert bad.status_code == 422, body
    assert await api.sql("SELECT count(*) FROM members") == [(0,)]


async def test_capacity_changes_by_organizer(world: World) -> None:
    api = world.api
    member, user_id = await world.member()
    url = f"/v1/members/{user_id}"
    tag = (await api.client.get(url, headers=world.organizer)).headers["etag"]
    # The member's own view of the profile has the same ETag.
    mine = await api.client.get("/v1/members/me", headers={**member, "If-None-Match": tag})
    assert mine.status_code == 304
    unconditional = await api.client.patch(url, json={"capacity": 7}, headers=world.organizer)
    assert unconditional.status_code == 428
    changed = await api.client.patch(
        url, json={"capacity": 7}, headers={**world.organizer, "If-Match": tag}
    )
    assert changed.status_code == 200
    assert changed.json()["capacity"] == 7
    assert changed.json()["capacity_remaining"] == 7
    stale = await api.client.patch(
        url, json={"capacity": 8}, headers={**world.organizer, "If-Match": tag}
    )
    assert stale.status_code == 412
    fresh = {**world.organizer, "If-Match": changed.headers["etag"]}
    for body in ({"capacity": -1}, {"capacity": 51}, {"capacity": 3, "status": "active"}):
        bad = await api.client.patch(url, json=body, headers=fresh)
        assert bad.status_code == 422
    by_resident = await api.client.patch(
        url, json={"capacity": 9}, headers={**world.resident, "If-Match": "*"}
    )
    assert by_resident.status_code == 403
    cached = await api.client.get(
        url, headers={**world.organizer, "If-None-Match": changed.headers["etag"]}
    )
    assert cached.status_code == 304


async def test_roster_replace_and_read(world: World) -> None:
    api = world.api
    headers, user_id = await world.member()
    roster = [
        {
            "category": "repair",
            "title": "水电维修",
            "description": "周末可上门",
            "quantity": 2,
            "service_region_ids": [world.regions["C2"]],
        },
        {"category": "tutoring", "title": "小学数学辅导"},
    ]
    put = await api.client.put("/v1/members/me/resources", json=roster, headers=headers)
    assert put.status_code == 200, put.text
    items = put.json()["items"]
    assert [i["title"] for i in items] == ["水电维修", "小学数学辅导"]
    assert items[0]["service_region_ids"] == [world.regions["C2"]]
    assert items[1]["quantity"] == 1
    got = await api.client.get("/v1/members/me/resources", headers=headers)
    assert got.json() == put.json()
    by_organizer = await api.client.get(f"/v1/members/{user_id}/resources", headers=world.organizer)
    assert by_organizer.status_code == 200
    # "Service regions", as the issue names them, is the same field.
    spelled = [{"category": "repair", "title": "维修", "service_regions": [world.regions["C2"]]}]
    put = await api.client.put("/v1/members/me/resources", json=spelled, headers=headers)
    assert put.status_code == 200, put.text
    assert put.json()["items"][0]["service_region_ids"] == [world.regions["C2"]]

    replaced = await api.client.put("/v1/members/me/resources", json=[], headers=headers)
    assert replaced.json()["items"] == []
    areas = await api.sql("SELECT region_id FROM member_areas")
    assert areas == [(int(world.regions["C1"]),)]


async def test_roster_refuses_bad_entries_and_changes_nothing(world: World) -> None:
    api = world.api
    headers, _ = await world.member()
    good = [{"category": "repair", "title": "维修"}]
    assert (
        await api.client.put("/v1/members/me/resources", json=good, headers=headers)
    ).status_code == 200
    cases = [
        ([{"category": "astrology", "title": "x"}], "unknown_category"),
        ([{"category": "repair", "title": "x", "service_region_ids": ["99999"]}], "unknown_region"),
        ([{"category": "repair", "title": ""}], "validation_failed"),
        ([{"category": "repair", "title": "x" * 61}], "validation_failed"),
        ([{"category": "repair", "title": "x", "quantity": 0}], "validation_failed"),
        ([{"category": "repair", "title": "x", "extra": 1}], "validation_failed"),
        ([{"category": "repair", "title": "x"}] * 21, "validation_failed"),
        ({"category": "repair", "title": "x"}, "validation_failed"),
    ]
    for body, code in cases:
        response = await api.client.put("/v1/members/me/resources", json=body, headers=headers)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["code"] == code
    still = await api.client.get("/v1/members/me/resources", headers=headers)
    assert [i["title"] for i in still.json()["items"]] == ["维修"]


async def test_overlapping_roster_replacements_queue(world: World) -> None:
    """PUT is safe to retry, so the app may send several at once: each replaces the whole
    roster in turn, and the last one stands alone (no merged rosters, no 500)."""
    api = world.api
    headers, _ = await world.member()

    def roster(tag: int) -> list[dict[str, object]]:
        return [
            {
                "category": "repair",
                "title": f"维修{tag}-{n}",
                "service_region_ids": [world.regions["C2"], world.regions["G1"]],
            }
            for n in range(20)
        ]

    responses = await asyncio.gather(
        *(
            api.client.put("/v1/members/me/resources", json=roster(tag), headers=headers)
            for tag in range(8)
        )
    )
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    titles = [
        i["title"]
        for i in (await api.client.get("/v1/members/me/resources", headers=headers)).json()["items"]
    ]
    assert len(titles) == 20
    assert len({title.split("-")[0] for title in titles}) == 1
    areas = await api.sql("SELECT count(*) FROM member_areas")
    assert areas == [(3,)]


async def test_roster_needs_a_member_profile(api: Api) -> None:
    headers = await api.user_headers(next_phone())
    response = await api.client.put("/v1/members/me/resources", json=[], headers=headers)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert (await api.client.get("/v1/members/me", headers=headers)).status_code == 404
    unknown = await api.client.get("/v1/members/999999", headers=headers)
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "not_found"
