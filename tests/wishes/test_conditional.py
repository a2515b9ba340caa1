"""Strong ETags, 304, and If-Match on wish edits (412 / 428)."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import Api
from tests.world import World, build_world

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(api: Api) -> World:
    return await build_world(api)


async def test_etag_and_not_modified(world: World) -> None:
    api = world.api
    wish = await world.wish()
    url = f"/v1/wishes/{wish['id']}"
    first = await api.client.get(url, headers=world.resident)
    tag = first.headers["etag"]
    assert tag.startswith('"')  # strong
    assert not tag.startswith("W/")
    cached = await api.client.get(url, headers={**world.resident, "If-None-Match": tag})
    assert cached.status_code == 304
    assert cached.headers["etag"] == tag
    assert cached.content == b""
    # Another viewer reads the masked representation: a different tag.
    member, _ = await world.member()
    masked = await api.client.get(url, headers={**member, "If-None-Match": tag})
    assert masked.status_code == 200
    assert masked.headers["etag"] != tag
    # A change makes the old tag stale.
    await world.claim(wish["id"], member)
    after = await api.client.get(url, headers={**world.resident, "If-None-Match": tag})
    assert after.status_code == 200
    assert after.headers["etag"] != tag


async def test_edit_needs_the_current_etag(world: World) -> None:
    api = world.api
    wish = await world.wish(approve=False)
    url = f"/v1/wishes/{wish['id']}"
    tag = (await api.client.get(url, headers=world.resident)).headers["etag"]
    missing = await api.client.patch(url, json={"title": "新标题"}, headers=world.resident)
    assert missing.status_code == 428
    assert missing.json()["code"] == "precondition_required"
    edited = await api.client.patch(
        url, json={"title": "新标题", "slots_total": 2}, headers={**world.resident, "If-Match": tag}
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["title"] == "新标题"
    assert edited.json()["slots_total"] == 2
    assert edited.headers["etag"] != tag
    stale = await api.client.patch(
        url, json={"title": "又改了"}, headers={**world.resident, "If-Match": tag}
    )
    assert stale.status_code == 412
    assert stale.json()["code"] == "precondition_failed"
    current = (await api.client.get(url, headers=world.resident)).json()
    assert current["title"] == "新标题"
    # Not the owner: forbidden; bad input: 422.
    member, _ = await world.member()
    other = await api.client.patch(
        url, json={"title": "x"}, headers={**member, "If-Match": edited.headers["etag"]}
    )
    assert other.status_code in (403, 404)
    for body in ({"title": ""}, {"slots_total": 0}, {"status": "open"}, {"title": None}):
        bad = await api.client.patch(
            url, json=body, headers={**world.resident, "If-Match": edited.headers["etag"]}
        )
        assert bad.status_code == 422, body


async def test_two_phones_editing_at_once(world: World) -> None:
    api = world.api
    wish = await world.wish()
    url = f"/v1/wishes/{wish['id']}"
    tag = (await api.client.get(url, headers=world.resident)).headers["etag"]
    results = await asyncio.gather(
        *(
            api.client.patch(
                url, json={"description": f"版本{n}"}, headers={**world.resident, "If-Match": tag}
            )
            for n in range(5)
        )
    )
    assert sorted(r.status_code for r in results) == [200, 412, 412, 412, 412]


async def test_edits_stop_once_claimed_and_slots_stay_above_claimed(world: World) -> None:
    api = world.api
    wish = await world.wish(slots=3)
    url = f"/v1/wishes/{wish['id']}"
    first, _ = await world.member()
    second, _ = await world.member()
    await world.claim(wish["id"], first)
    await world.claim(wish["id"], second)
    tag = (await api.client.get(url, headers=world.resident)).headers["etag"]
    below = await api.client.patch(
        url, json={"slots_total": 1}, headers={**world.resident, "If-Match": tag}
    )
    assert below.status_code == 409
    assert below.json()["code"] == "slots_below_claimed"
    full = await api.client.patch(
        url, json={"slots_total": 2}, headers={**world.resident, "If-Match": tag}
    )
    assert full.status_code == 200
    assert full.json()["status"] == "claimed"
    closed = await api.client.patch(
        url, json={"title": "x"}, headers={**world.resident, "If-Match": full.headers["etag"]}
    )
    assert closed.status_code == 409
    assert closed.json()["current_state"] == "claimed"


async def test_lowering_slots_to_what_is_fulfilled_fulfils_the_wish(world: World) -> None:
    """Two of three helpers came and did it; the resident drops the third slot: the wish is
    fulfilled and can be confirmed (not left claimed with nothing left to do)."""
    api = world.api
    wish = await world.wish(slots=3)
    url = f"/v1/wishes/{wish['id']}"
    for _ in range(2):
        member, _ = await world.member()
        claim = (await world.claim(wish["id"], member)).json()
        fulfilled = await api.client.post(
            f"/v1/claims/{claim['id']}/fulfil", json={"note": "已完成"}, headers=member
        )
        assert fulfilled.status_code == 200, fulfilled.text
    tag = (await api.client.get(url, headers=world.resident)).headers["etag"]
    lowered = await api.client.patch(
        url, json={"slots_total": 2}, headers={**world.resident, "If-Match": tag}
    )
    assert lowered.status_code == 200, lowered.text
    assert lowered.json()["status"] == "fulfilled"
    confirmed = await api.client.post(
        f"/v1/wishes/{wish['id']}/confirm", json={"rating": 5}, headers=world.resident
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "confirmed"


async def test_an_empty_or_null_edit(world: World) -> None:
    api = world.api
    wish = await world.wish()
    url = f"/v1/wishes/{wish['id']}"
    tag = (await api.client.get(url, headers=world.resident)).headers["etag"]
    nothing = await api.client.patch(url, json={}, headers={**world.resident, "If-Match": tag})
    assert nothing.status_code == 200
    assert nothing.headers["etag"] == tag  # no new version for the app to sync
    null = await api.client.patch(
        url, json={"title": None, "slots_total": None}, headers={**world.resident, "If-Match": tag}
    )
    assert null.status_code == 422
    assert null.json()["code"] == "field_not_nullable"
    assert "title, slots_total" in null.json()["detail"]


async def test_actions_answer_with_the_etag_they_left(world: World) -> None:
    """No GET needed between an action and the next conditional request."""
    api = world.api
    wish = await world.wish(approve=False)
    approved = await api.client.post(f"/v1/wishes/{wish['id']}/approve", headers=world.organizer)
    read = await api.client.get(f"/v1/wishes/{wish['id']}", headers=world.organizer)
    assert approved.headers["etag"] == read.headers["etag"]
    # The owner edits straight from the tag the wish's own action gave back.
    member, _ = await world.member()
    claim = (await world.claim(wish["id"], member)).json()
    withdrawn = await api.client.post(f"/v1/claims/{claim['id']}/withdraw", headers=member)
    claim_read = await api.client.get(f"/v1/claims/{claim['id']}", headers=member)
    assert withdrawn.headers["etag"] == claim_read.headers["etag"]
    owner_read = await api.client.get(f"/v1/wishes/{wish['id']}", headers=world.resident)
    cancelled = await api.client.post(f"/v1/wishes/{wish['id']}/cancel", headers=world.resident)
    assert cancelled.headers["etag"] != owner_read.headers["etag"]
    assert (
        await api.client.get(
            f"/v1/wishes/{wish['id']}",
            headers={**world.resident, "If-None-Match": cancelled.headers["etag"]},
        )
    ).status_code == 304
