from __future__ import annotations

import httpx
import pytest

from app.main import create_app
from tests.conftest import Api, make_settings
from tests.invariants import violations
from tests.problems import assert_problem
from tests.world import World, build_world

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(api: Api) -> World:
    return await build_world(api)


async def wish_of(world: World, wish_id: str) -> dict[str, object]:
    response = await world.api.client.get(f"/v1/wishes/{wish_id}", headers=world.resident)
    body: dict[str, object] = response.json()
    return body


async def test_one_to_one(world: World) -> None:
    api = world.api
    wish = await world.wish()
    first, first_id = await world.member()
    second, _ = await world.member()
    claimed = await world.claim(wish["id"], first)
    assert claimed.status_code == 201
    claim = claimed.json()
    assert claim["status"] == "active"
    assert claim["source"] == "direct"
    assert claim["member_id"] == first_id
    assert claim["slots"] == 1
    assert (await wish_of(world, wish["id"]))["status"] == "claimed"

    late = await world.claim(wish["id"], second)
    assert late.status_code == 409
    assert late.headers["content-type"] == "application/problem+json"
    assert late.json()["code"] == "wish_full"
    again = await world.claim(wish["id"], first)
    assert again.status_code == 409
    assert again.json()["code"] == "already_claimed"  # theirs already, full or not
    assert await violations(api.settings.database_url) == {}


async def test_many_to_one(world: World) -> None:
    wish = await world.wish(slots=3)
    members = [await world.member() for _ in range(3)]
    a = await world.claim(wish["id"], members[0][0], slots=2)
    assert a.status_code == 201
    assert (await wish_of(world, wish["id"]))["status"] == "open"
    too_many = await world.claim(wish["id"], members[1][0], slots=2)
    assert too_many.status_code == 409
    assert too_many.json()["code"] == "wish_full"
    assert too_many.json()["slots_remaining"] == 1
    b = await world.claim(wish["id"], members[1][0], slots=1)
    assert b.status_code == 201
    state = await wish_of(world, wish["id"])
    assert (state["status"], state["slots_claimed"], state["slots_remaining"]) == ("claimed", 3, 0)
    again = await world.claim(wish["id"], members[0][0])
    assert again.json()["code"] == "already_claimed"


async def test_already_claimed_on_a_shared_wish(world: World) -> None:
    wish = await world.wish(slots=3)
    member, _ = await world.member()
    assert (await world.claim(wish["id"], member)).status_code == 201
    again = await world.claim(wish["id"], member)
    assert again.status_code == 409
    assert again.json()["code"] == "already_claimed"
    assert (await wish_of(world, wish["id"]))["slots_claimed"] == 1


async def test_already_claimed_whatever_else_stands_in_the_way(world: World) -> None:
    # At capacity because of this very wish: still "already claimed", not "capacity".
    wish = await world.wish(slots=3)
    member, _ = await world.member(capacity=1)
    assert (await world.claim(wish["id"], member)).status_code == 201
    again = await world.claim(wish["id"], member)
    assert again.json()["code"] == "already_claimed"
    # Fulfilled is a live claim too.
    claim_id = (await world.api.client.get("/v1/me/claims", headers=member)).json()["items"][0][
        "id"
    ]
    done = await world.api.client.post(f"/v1/claims/{claim_id}/fulfil", json={}, headers=member)
    assert done.status_code == 200
    assert (await world.claim(wish["id"], member)).json()["code"] == "already_claimed"


async def test_one_to_many_up_to_capacity(world: World) -> None:
    api = world.api
    wishes = [await world.wish() for _ in range(3)]
    member, member_id = await world.member(capacity=2)
    assert (await world.claim(wishes[0]["id"], member)).status_code == 201
    assert (await world.claim(wishes[1]["id"], member)).status_code == 201
    third = await world.claim(wishes[2]["id"], member)
    assert third.status_code == 409
    assert third.json()["code"] == "capacity_reached"
    assert third.json()["capacity"] == 2
    assert (await wish_of(world, wishes[2]["id"]))["slots_claimed"] == 0

    # Fulfilling one frees a place.
    mine = (await api.client.get("/v1/me/claims", headers=member)).json()["items"]
    assert [c["wish"]["id"] for c in mine] == [wishes[1]["id"], wishes[0]["id"]]
    await api.client.post(f"/v1/claims/{mine[0]['id']}/fulfil", json={"note": "ok"}, headers=member)
    assert (await world.claim(wishes[2]["id"], member)).status_code == 201
    profile = (await api.client.get(f"/v1/members/{member_id}", headers=member)).json()
    assert profile["active_claims"] == 2


async def test_lowering_capacity_keeps_claims_and_blocks_new_ones(world: World) -> None:
    api = world.api
    wishes = [await world.wish() for _ in range(3)]
    member, member_id = await world.member(capacity=3)
    for wish in wishes[:2]:
        assert (await world.claim(wish["id"], member)).status_code == 201
    lowered = await api.client.patch(
        f"/v1/members/{member_id}",
        json={"capacity": 1},
        headers={**world.organizer, "If-Match": "*"},
    )
    assert lowered.json()["active_claims"] == 2
    assert lowered.json()["capacity_remaining"] == 0
    assert (await world.claim(wishes[2]["id"], member)).json()["code"] == "capacity_reached"
    mine = (await api.client.get("/v1/me/claims", headers=member)).json()["items"]
    assert [c["status"] for c in mine] == ["active", "active"]
    # Still at the new capacity after one ends: 1 active of 1.
    await api.client.post(f"/v1/claims/{mine[0]['id']}/withdraw", headers=member)
    assert (await world.claim(wishes[2]["id"], member)).json()["code"] == "capacity_reached"
    await api.client.post(f"/v1/claims/{mine[1]['id']}/withdraw", headers=member)
    assert (await world.claim(wishes[2]["id"], member)).status_code == 201


async def test_only_active_members_claim(world: World) -> None:
    api = world.api
    wish = await world.wish()
    resident, _ = await world.user()
    not_member = await world.claim(wish["id"], resident)
    assert not_member.status_code == 403
    assert not_member.json()["code"] == "not_a_member"
    pending, _ = await world.member(approve=False)
    refused = await world.claim(wish["id"], pending)
    assert refused.status_code == 403
    assert refused.json()["code"] == "member_not_active"
    suspended, suspended_id = await world.member()
    await api.client.post(f"/v1/members/{suspended_id}/suspend", headers=world.organizer)
    assert (await world.claim(wish["id"], suspended)).json()["code"] == "member_not_active"
    state = await wish_of(world, wish["id"])
    assert (state["status"], state["slots_claimed"]) == ("open", 0)


async def test_direct_claims_stay_in_the_members_area(world: World) -> None:
    api = world.api
    wish = await world.wish("C2")
    grid_wish = await world.wish("G1")
    member, _ = await world.member("C1")
    outside = await world.claim(wish["id"], member)
    assert outside.status_code == 403
    assert outside.json()["code"] == "out_of_area"
    assert (await world.claim(grid_wish["id"], member)).status_code == 201  # a grid of C1

    roster = [{"category": "repair", "title": "维修", "service_region_ids": [world.regions["C2"]]}]
    await api.client.put("/v1/members/me/resources", json=roster, headers=member)
    assert (await world.claim(wish["id"], member)).status_code == 201


async def test_district_wide_setting_lifts_the_area_rule(api: Api, clean_database: str) -> None:
    world = await build_world(api)
    wish = await world.wish("C3")
    member, _ = await world.member("C1")
    assert (await world.claim(wish["id"], member)).json()["code"] == "out_of_area"
    app = create_app(make_settings(clean_database, direct_claim_scope="district"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post(
                f"/v1/wishes/{wish['id']}/claims", json={"slots": 1}, headers=member
            )
    assert response.status_code == 201


async def test_claims_only_on_open_wishes(world: World) -> None:
    api = world.api
    member, _ = await world.member()
    pending = await world.wish(approve=False)
    unreviewed = await world.claim(pending["id"], member)
    assert_problem(unreviewed, 409, "not_claimable")
    assert unreviewed.json()["current_state"] == "pending_review"
    done = await world.wish()
    claim = (await world.claim(done["id"], member)).json()
    await api.client.post(f"/v1/claims/{claim['id']}/fulfil", json={"note": "ok"}, headers=member)
    refused = await world.claim(done["id"], member)
    assert refused.status_code == 409
    assert refused.json()["code"] == "not_claimable"
    assert refused.json()["current_state"] == "fulfilled"
    assert (await world.claim("99999", member)).status_code == 404
    own = await world.wish(by=world.organizer, on_behalf_of={"user_id": world.resident_id})
    await api.client.post(
        "/v1/members", json={"community_id": world.regions["C1"]}, headers=world.resident
    )
    await api.client.post(f"/v1/members/{world.resident_id}/approve", headers=world.organizer)
    mine = await world.claim(own["id"], world.resident)
    assert mine.status_code == 409
    assert mine.json()["code"] == "own_wish"
    # Nor whoever published it for someone without the app (they confirm it for them).
    await api.client.post(
        "/v1/members", json={"community_id": world.regions["C1"]}, headers=world.organizer
    )
    organizer_id = (await api.client.get("/v1/me", headers=world.organizer)).json()["id"]
    await api.client.post(f"/v1/members/{organizer_id}/approve", headers=world.admin)
    for_name = await world.wish(by=world.organizer, on_behalf_of={"name": "王奶奶"})
    published = await world.claim(for_name["id"], world.organizer)
    assert published.status_code == 409
    assert published.json()["code"] == "own_wish"
    for body in (
        {"slots": 0},
        {"slots": 101},
        {"slots": "two"},
        {"slots": "1"},
        {"slots": True},
        {"slots": 1.0},
        {"member_id": "1"},
    ):
        bad = await api.client.post(f"/v1/wishes/{own['id']}/claims", json=body, headers=member)
        assert bad.status_code == 422, body


async def test_withdraw_returns_slots_and_reopens(world: World) -> None:
    api = world.api
    wish = await world.wish()
    member, member_id = await world.member()
    other, _ = await world.member()
    claim = (await world.claim(wish["id"], member)).json()
    not_theirs = await api.client.post(f"/v1/claims/{claim['id']}/withdraw", headers=other)
    assert_problem(not_theirs, 403, "forbidden")
    assert not_theirs.json()["reason"] == "not_your_claim"
    withdrawn = await api.client.post(f"/v1/claims/{claim['id']}/withdraw", headers=member)
    assert withdrawn.status_code == 200
    assert withdrawn.json()["status"] == "withdrawn"
    # The answer carries the wish as the withdrawal left it, for the app to show at once.
    assert withdrawn.json()["wish"]["status"] == "open"
    assert withdrawn.json()["wish"]["id"] == wish["id"]
    state = await wish_of(world, wish["id"])
    assert (state["status"], state["slots_claimed"]) == ("open", 0)
    twice = await api.client.post(f"/v1/claims/{claim['id']}/withdraw", headers=member)
    assert twice.status_code == 409
    assert twice.json()["code"] == "invalid_state"
    assert twice.json()["current_state"] == "withdrawn"
    # The member may claim it again, and someone else may too.
    assert (await world.claim(wish["id"], member)).status_code == 201
    profile = (await api.client.get(f"/v1/members/{member_id}", headers=member)).json()
    assert profile["active_claims"] == 1
    assert await violations(api.settings.database_url) == {}


async def test_fulfilment_completes_the_wish_when_every_slot_is_done(world: World) -> None:
    api = world.api
    wish = await world.wish(slots=2)
    a, _ = await world.member()
    b, _ = await world.member()
    claim_a = (await world.claim(wish["id"], a)).json()
    done = await api.client.post(
        f"/v1/claims/{claim_a['id']}/fulfil", json={"note": "送到了"}, headers=a
    )
    assert done.status_code == 200
    assert done.json()["status"] == "fulfilled"
    assert done.json()["fulfil_note"] == "送到了"
    assert (await wish_of(world, wish["id"]))["status"] == "open"  # one slot still free
    claim_b = (await world.claim(wish["id"], b)).json()
    assert (await wish_of(world, wish["id"]))["status"] == "claimed"
    await api.client.post(f"/v1/claims/{claim_b['id']}/fulfil", json={"note": "陪聊了"}, headers=b)
    state = await wish_of(world, wish["id"])
    assert (state["status"], state["slots_fulfilled"]) == ("fulfilled", 2)
    assert state["fulfilled_at"] is not None
    again = await api.client.post(f"/v1/claims/{claim_b['id']}/fulfil", headers=b)
    assert again.status_code == 409
    assert (
        await api.client.post(f"/v1/claims/{claim_b['id']}/withdraw", headers=b)
    ).status_code == 409
    bad_note = await api.client.post(
        f"/v1/claims/{claim_b['id']}/fulfil", json={"note": "x" * 501}, headers=b
    )
    assert bad_note.status_code == 422
    assert await violations(api.settings.database_url) == {}


async def test_organizer_revokes_with_a_reason(world: World) -> None:
    api = world.api
    wish = await world.wish()
    member, member_id = await world.member()
    claim = (await world.claim(wish["id"], member)).json()
    url = f"/v1/claims/{claim['id']}/revoke"
    assert (await api.client.post(url, json={"reason": "x"}, headers=member)).status_code == 403
    assert (await api.client.post(url, json={}, headers=world.organizer)).status_code == 422
    revoked = await api.client.post(url, json={"reason": "长期未联系"}, headers=world.organizer)
    assert revoked.status_code == 200
    assert (revoked.json()["status"], revoked.json()["end_reason"]) == ("revoked", "长期未联系")
    assert (await wish_of(world, wish["id"]))["status"] == "open"
    profile = (await api.client.get(f"/v1/members/{member_id}", headers=member)).json()
    assert profile["active_claims"] == 0
    again = await api.client.post(url, json={"reason": "x"}, headers=world.organizer)
    assert again.status_code == 409


async def test_who_reads_claims(world: World) -> None:
    api = world.api
    wish = await world.wish(slots=2)
    member, _ = await world.member(name="小张")
    stranger, _ = await world.user()
    claim = (await world.claim(wish["id"], member)).json()
    for headers in (member, world.resident, world.organizer):
        assert (
            await api.client.get(f"/v1/claims/{claim['id']}", headers=headers)
        ).status_code == 200
        listed = await api.client.get(f"/v1/wishes/{wish['id']}/claims", headers=headers)
        assert [c["member_name"] for c in listed.json()["items"]] == ["小张"]
    assert (await api.client.get(f"/v1/claims/{claim['id']}", headers=stranger)).status_code == 404
    assert (
        await api.client.get(f"/v1/wishes/{wish['id']}/claims", headers=stranger)
    ).status_code == 403
    mine = (
        await api.client.get("/v1/me/claims", params={"status": "active"}, headers=member)
    ).json()
    assert mine["items"][0]["wish"]["title"] == "需要一台轮椅"
    none = (
        await api.client.get("/v1/me/claims", params={"status": "fulfilled"}, headers=member)
    ).json()
    assert none == {"items": [], "next_cursor": None}


async def test_claims_are_rate_limited_per_member(world: World) -> None:
    api = world.api
    wishes = [await world.wish() for _ in range(3)]
    member, _ = await world.member()
    limited = create_app(make_settings(api.settings.database_url, claim_rate_limit="2/minute"))
    async with limited.router.lifespan_context(limited):
        transport = httpx.ASGITransport(app=limited)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for wish in wishes[:2]:
                ok = await client.post(f"/v1/wishes/{wish['id']}/claims", json={}, headers=member)
                assert ok.status_code == 201
            refused = await client.post(
                f"/v1/wishes/{wishes[2]['id']}/claims", json={}, headers=member
            )
            assert refused.status_code == 429
            assert refused.json()["code"] == "rate_limited"
            assert int(refused.headers["Retry-After"]) >= 1
    assert (await api.sql("SELECT count(*) FROM claims"))[0][0] == 2
