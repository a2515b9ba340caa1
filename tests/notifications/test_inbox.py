"""The in-app inbox: what each step of a wish's life tells whom, reading and marking, pages.
Without a push gateway configured, nothing is written to the outbox."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Api
from tests.world import World, build_world

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(api: Api) -> World:
    return await build_world(api)


async def inbox(
    world: World, headers: dict[str, str], query: str = "", lang: str | None = None
) -> list[dict[str, Any]]:
    extra = {"Accept-Language": lang} if lang else {}
    response = await world.api.client.get(
        f"/v1/me/notifications{query}", headers={**headers, **extra}
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def unread(world: World, headers: dict[str, str]) -> int:
    response = await world.api.client.get("/v1/me/notifications/unread-count", headers=headers)
    assert response.status_code == 200, response.text
    count: int = response.json()["unread"]
    return count


def assert_no_contact_details(items: list[dict[str, Any]]) -> None:
    text = json.dumps(items, ensure_ascii=False)
    assert "13912345678" not in text  # the wish's contact phone (tests.world)
    assert "3栋201" not in text  # and its address


async def test_a_wish_from_review_to_thanks(world: World) -> None:
    api = world.api
    wish = await world.wish("C1", approve=False, title="修理漏水的水龙头", category="repair")
    assert await inbox(world, world.resident) == []
    approved = await api.client.post(f"/v1/wishes/{wish['id']}/approve", headers=world.organizer)
    assert approved.status_code == 200

    [told] = await inbox(world, world.resident)
    assert told["kind"] == "wish_approved"
    assert told["title"] == "心愿「修理漏水的水龙头」已通过审核"
    assert told["data"] == {"wish_id": wish["id"], "wish_title": "修理漏水的水龙头"}
    assert told["read_at"] is None
    [in_english] = await inbox(world, world.resident, lang="en-US,en;q=0.9")
    assert in_english["title"] == "Your wish “修理漏水的水龙头” was approved"

    member, member_id = await world.member("C1")
    claim = (await world.claim(wish["id"], member)).json()
    newest = (await inbox(world, world.resident))[0]
    assert newest["kind"] == "wish_claimed"
    assert newest["data"] == {
        "wish_id": wish["id"],
        "wish_title": "修理漏水的水龙头",
        "wish_status": "claimed",
        "claim_id": claim["id"],
        "slots": 1,
        "source": "direct",
        "event_id": None,
    }
    assert newest["title"] == "心愿「修理漏水的水龙头」有人认领了"

    fulfilled = await api.client.post(
        f"/v1/claims/{claim['id']}/fulfil", json={"note": "修好了"}, headers=member
    )
    assert fulfilled.status_code == 200
    newest = (await inbox(world, world.resident))[0]
    assert newest["kind"] == "claim_fulfilled"
    assert newest["data"]["wish_status"] == "fulfilled"
    assert newest["data"]["claim_id"] == claim["id"]
    assert newest["title"] == "心愿「修理漏水的水龙头」已全部完成，请确认"

    assert await inbox(world, member) == []  # nothing for the member so far
    confirmed = await api.client.post(
        f"/v1/wishes/{wish['id']}/confirm",
        json={"rating": 5, "thanks": "谢谢小李，水龙头不漏了！"},
        headers=world.resident,
    )
    assert confirmed.status_code == 200
    [thanked] = await inbox(world, member)
    assert thanked["kind"] == "wish_confirmed"
    assert thanked["data"]["thanks"] == "谢谢小李，水龙头不漏了！"
    assert thanked["data"]["rating"] == 5
    assert thanked["title"] == "居民确认了心愿「修理漏水的水龙头」并致谢"

    kinds = [n["kind"] for n in await inbox(world, world.resident)]
    assert kinds == ["claim_fulfilled", "wish_claimed", "wish_approved"]  # newest first
    assert await unread(world, world.resident) == 3
    assert await unread(world, member) == 1
    assert_no_contact_details(await inbox(world, world.resident) + await inbox(world, member))
    # No push gateway configured: nothing waits in the outbox.
    assert await api.sql("SELECT count(*) FROM notification_deliveries") == [(0,)]
    assert member_id  # (used for the claim)


async def test_several_claimers_hear_the_thanks(world: World) -> None:
    api = world.api
    wish = await world.wish("C1", slots=2)
    first, _ = await world.member("C1")
    second, _ = await world.member("C1")
    claims = [(await world.claim(wish["id"], h)).json() for h in (first, second)]
    partial = (await inbox(world, world.resident))[0]
    assert partial["kind"] == "wish_claimed"
    assert partial["data"]["wish_status"] == "claimed"
    statuses = [n["data"]["wish_status"] for n in (await inbox(world, world.resident))[:2]]
    assert statuses == ["claimed", "open"]  # the first claim left a slot open
    for claim, headers in zip(claims, (first, second), strict=True):
        await api.client.post(f"/v1/claims/{claim['id']}/fulfil", json={}, headers=headers)
    kinds = [n["kind"] for n in await inbox(world, world.resident)][:2]
    assert kinds == ["claim_fulfilled", "claim_fulfilled"]
    first_done = (await inbox(world, world.resident))[1]
    assert first_done["data"]["wish_status"] == "claimed"  # one slot still to do
    assert first_done["title"] == "志愿者已完成心愿「需要一台轮椅」"
    await api.client.post(f"/v1/wishes/{wish['id']}/confirm", json={}, headers=world.resident)
    for headers in (first, second):
        [thanked] = await inbox(world, headers)
        assert thanked["kind"] == "wish_confirmed"
        assert thanked["data"]["thanks"] is None


async def test_rejection_revocation_and_cancellation(world: World) -> None:
    api = world.api
    pending = await world.wish("C1", approve=False)
    rejected = await api.client.post(
        f"/v1/wishes/{pending['id']}/reject",
        json={"reason": "请补充具体需求"},
        headers=world.organizer,
    )
    assert rejected.status_code == 200
    [told] = await inbox(world, world.resident)
    assert told["kind"] == "wish_rejected"
    assert told["data"]["reason"] == "请补充具体需求"

    wish = await world.wish("C1")
    member, _ = await world.member("C1")
    claim = (await world.claim(wish["id"], member)).json()
    revoked = await api.client.post(
        f"/v1/claims/{claim['id']}/revoke",
        json={"reason": "长期未联系居民"},
        headers=world.organizer,
    )
    assert revoked.status_code == 200
    [told] = await inbox(world, member)
    assert told["kind"] == "claim_revoked"
    assert told["data"] == {
        "claim_id": claim["id"],
        "wish_id": wish["id"],
        "wish_title": "需要一台轮椅",
        "cause": "organizer",
        "reason": "长期未联系居民",
    }

    again = (await world.claim(wish["id"], member)).json()
    cancelled = await api.client.post(
        f"/v1/wishes/{wish['id']}/cancel", json={"reason": "已自行解决"}, headers=world.resident
    )
    assert cancelled.status_code == 200
    told = (await inbox(world, member))[0]
    assert told["kind"] == "claim_revoked"
    assert told["data"] == {
        "claim_id": again["id"],
        "wish_id": wish["id"],
        "wish_title": "需要一台轮椅",
        "cause": "wish_cancelled",
        "reason": "已自行解决",
    }
    assert told["title"] == "心愿「需要一台轮椅」已取消，您的认领随之结束"


async def test_a_refused_claim_tells_nobody(world: World) -> None:
    wish = await world.wish("C1")
    member, _ = await world.member("C1")
    other, _ = await world.member("C1")
    assert (await world.claim(wish["id"], member)).status_code == 201
    assert (await world.claim(wish["id"], other)).status_code == 409  # wish_full
    kinds = [n["kind"] for n in await inbox(world, world.resident)]
    assert kinds == ["wish_claimed", "wish_approved"]


async def test_reading_marking_and_pages(world: World) -> None:
    api = world.api
    wishes = [await world.wish("C1", approve=False, title=f"心愿{i}") for i in range(5)]
    for wish in wishes:
        await api.client.post(f"/v1/wishes/{wish['id']}/approve", headers=world.organizer)
    assert await unread(world, world.resident) == 5

    seen: list[str] = []
    cursor = None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await api.client.get(f"/v1/me/notifications{query}", headers=world.resident)).json()
        seen += [n["data"]["wish_title"] for n in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"心愿{i}" for i in reversed(range(5))]

    newest = (await inbox(world, world.resident))[0]
    read = await api.client.post(
        f"/v1/me/notifications/{newest['id']}/read", headers=world.resident
    )
    assert read.status_code == 200
    read_at = read.json()["read_at"]
    assert read_at is not None
    assert read.json()["title"] == "心愿「心愿4」已通过审核"
    again = await api.client.post(
        f"/v1/me/notifications/{newest['id']}/read", headers=world.resident
    )
    assert again.json()["read_at"] == read_at  # idempotent: the first read counts
    assert await unread(world, world.resident) == 4
    unread_items = await inbox(world, world.resident, "?unread=true")
    assert [n["data"]["wish_title"] for n in unread_items] == ["心愿3", "心愿2", "心愿1", "心愿0"]

    # Someone else's notification is not found, whatever its id.
    stranger, _ = await world.user()
    foreign = await api.client.post(f"/v1/me/notifications/{newest['id']}/read", headers=stranger)
    assert foreign.status_code == 404
    assert foreign.json()["code"] == "not_found"
    missing = await api.client.post("/v1/me/notifications/999999/read", headers=world.resident)
    assert missing.status_code == 404

    # Up to what the app has shown: a newer one stays unread.
    shown = unread_items[1]["id"]  # 心愿2
    partial = await api.client.post(
        "/v1/me/notifications/read-all", json={"up_to_id": shown}, headers=world.resident
    )
    assert partial.status_code == 200, partial.text
    assert partial.json() == {"marked": 3, "unread": 1}
    everything = await api.client.post("/v1/me/notifications/read-all", headers=world.resident)
    assert everything.json() == {"marked": 1, "unread": 0}
    assert await inbox(world, world.resident, "?unread=true") == []
    assert len(await inbox(world, world.resident)) == 5


async def test_bad_input(world: World) -> None:
    api = world.api
    too_many = await api.client.get("/v1/me/notifications?limit=101", headers=world.resident)
    assert too_many.status_code == 422
    bad_cursor = await api.client.get("/v1/me/notifications?cursor=nope", headers=world.resident)
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["code"] == "invalid_cursor"
    bad_id = await api.client.post("/v1/me/notifications/abc/read", headers=world.resident)
    assert bad_id.status_code == 422
    extra = await api.client.post(
        "/v1/me/notifications/read-all", json={"all": True}, headers=world.resident
    )
    assert extra.status_code == 422
    anonymous = await api.client.get("/v1/me/notifications")
    assert anonymous.status_code == 401
