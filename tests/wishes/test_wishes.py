from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.core.clock import run_jobs_once
from app.core.db import create_database, utcnow
from app.wishes.service import expire_overdue
from tests.conftest import Api
from tests.problems import assert_problem
from tests.world import World, build_world

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(api: Api) -> World:
    return await build_world(api)


async def test_resident_publishes_for_review_and_organizer_approves(world: World) -> None:
    api = world.api
    wish = await world.wish(approve=False)
    assert wish["status"] == "pending_review"
    assert wish["resident_id"] == world.resident_id
    assert wish["creator_id"] == world.resident_id
    assert wish["published_on_behalf"] is False
    assert wish["contact"] == {
        "name": "王阿姨",
        "phone": "+8613912345678",
        "address": "东七社区3栋201",
        "masked": False,
    }
    approved = await api.client.post(f"/v1/wishes/{wish['id']}/approve", headers=world.organizer)
    assert approved.status_code == 200
    assert approved.json()["status"] == "open"
    again = await api.client.post(f"/v1/wishes/{wish['id']}/approve", headers=world.organizer)
    assert again.status_code == 409
    assert again.json()["code"] == "invalid_state"
    assert again.json()["current_state"] == "open"


async def test_reject_needs_a_reason_and_a_pending_wish(world: World) -> None:
    api = world.api
    wish = await world.wish(approve=False)
    url = f"/v1/wishes/{wish['id']}/reject"
    assert (await api.client.post(url, json={}, headers=world.organizer)).status_code == 422
    assert (
        await api.client.post(url, json={"reason": " "}, headers=world.organizer)
    ).status_code == 422
    rejected = await api.client.post(url, json={"reason": "信息不完整"}, headers=world.organizer)
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["review_note"] == "信息不完整"
    # The resident still sees it, with the reason.
    mine = await api.client.get(f"/v1/wishes/{wish['id']}", headers=world.resident)
    assert mine.json()["review_note"] == "信息不完整"
    assert (
        await api.client.post(url, json={"reason": "x"}, headers=world.organizer)
    ).status_code == 409


async def test_review_is_scoped_to_the_organizers_subtree(world: World) -> None:
    api = world.api
    wish = await world.wish("C3", approve=False)  # street S2: outside the organizer's S1
    outside = await api.client.post(f"/v1/wishes/{wish['id']}/approve", headers=world.organizer)
    assert_problem(outside, 403, "forbidden")  # acting on it: not yours to review
    assert outside.json()["reason"] == "out_of_scope"
    own = await api.client.post(f"/v1/wishes/{wish['id']}/approve", headers=world.resident)
    assert own.status_code == 403
    by_admin = await api.client.post(f"/v1/wishes/{wish['id']}/approve", headers=world.admin)
    assert by_admin.status_code == 200
    grid_wish = await world.wish("G1", approve=False)
    assert (
        await api.client.post(f"/v1/wishes/{grid_wish['id']}/approve", headers=world.organizer)
    ).status_code == 200


async def test_organizer_publishes_on_behalf(world: World) -> None:
    api = world.api
    wish = await world.wish(
        by=world.organizer, on_behalf_of={"name": "张奶奶"}, contact={"address": "新安路8号"}
    )
    assert wish["status"] == "open"
    assert wish["resident_id"] is None
    assert wish["beneficiary_name"] == "张奶奶"
    assert wish["published_on_behalf"] is True
    for_user = await world.wish(by=world.organizer, on_behalf_of={"user_id": world.resident_id})
    assert for_user["resident_id"] == world.resident_id
    assert for_user["beneficiary_name"] == "王阿姨"
    bare = await world.wish(by=world.organizer, on_behalf_of=world.resident_id)  # a bare id
    assert bare["resident_id"] == world.resident_id
    # The resident sees it as theirs.
    mine = await api.client.get("/v1/wishes", params={"mine": "true"}, headers=world.resident)
    assert for_user["id"] in [w["id"] for w in mine.json()["items"]]

    not_organizer = await api.client.post(
        "/v1/wishes",
        json={
            "title": "x",
            "category": "other",
            "region_id": world.regions["C1"],
            "on_behalf_of": {"name": "某人"},
        },
        headers=world.resident,
    )
    assert not_organizer.status_code == 403
    both = await api.client.post(
        "/v1/wishes",
        json={
            "title": "x",
            "category": "other",
            "region_id": world.regions["C1"],
            "on_behalf_of": {"name": "某人", "user_id": world.resident_id},
        },
        headers=world.organizer,
    )
    assert both.status_code == 422
    # Outside their scope an organizer is a resident like any other.
    outside = await world.wish("C3", by=world.organizer, approve=False)
    assert outside["status"] == "pending_review"


async def test_bad_wishes_are_refused_and_change_nothing(world: World) -> None:
    api = world.api
    base = {"title": "轮椅", "category": "repair", "region_id": world.regions["C1"]}
    past = (utcnow() - timedelta(hours=1)).isoformat()
    far = (utcnow() + timedelta(days=400)).isoformat()
    cases = [
        ({**base, "region_id": world.regions["S1"]}, 422, "region_too_broad"),
        ({**base, "region_id": "99999"}, 404, "not_found"),
        ({**base, "category": "astrology"}, 422, "unknown_category"),
        ({**base, "deadline": past}, 422, "deadline_out_of_range"),
        ({**base, "deadline": far}, 422, "deadline_out_of_range"),
        ({**base, "deadline": "2026-12-01T09:00:00"}, 422, "validation_failed"),
        # Before year 1 or after 9999 once in UTC; Unix times are not RFC 3339.
        ({**base, "deadline": "0001-01-01T00:00:00+01:00"}, 422, "validation_failed"),
        ({**base, "deadline": "9999-12-31T23:59:59-01:00"}, 422, "validation_failed"),
        ({**base, "deadline": 1798000000}, 422, "validation_failed"),
        ({**base, "deadline": "1798000000"}, 422, "validation_failed"),
        ({**base, "region_id": "9" * 5000}, 422, "validation_failed"),
        ({**base, "slots_total": 0}, 422, "validation_failed"),
        ({**base, "slots_total": 101}, 422, "validation_failed"),
        ({**base, "title": ""}, 422, "validation_failed"),
        ({**base, "title": "长" * 61}, 422, "validation_failed"),
        ({**base, "description": "长" * 2001}, 422, "validation_failed"),
        ({**base, "contact": {"phone": "12345"}}, 422, "validation_failed"),
        ({**base, "contact": {"address": "长" * 201}}, 422, "validation_failed"),
        ({**base, "status": "open"}, 422, "validation_failed"),
        ({**base, "slots_claimed": 5}, 422, "validation_failed"),
    ]
    for body, status, code in cases:
        response = await api.client.post("/v1/wishes", json=body, headers=world.resident)
        assert response.status_code == status, (body, response.text)
        assert response.json()["code"] == code
    assert await api.sql("SELECT count(*) FROM wishes") == [(0,)]


async def test_visibility_and_filters(world: World) -> None:
    api = world.api
    stranger, _ = await world.user("路人")
    pending = await world.wish(approve=False)
    opened = await world.wish("G1", category="tutoring")
    other_street = await world.wish("C3", approve=False)
    await api.client.post(f"/v1/wishes/{other_street['id']}/approve", headers=world.admin)

    seen = await api.client.get("/v1/wishes", headers=stranger)
    assert [w["id"] for w in seen.json()["items"]] == [other_street["id"], opened["id"]]
    for slug in ("bogus", ""):  # as when publishing: not a silent empty list
        unknown = await api.client.get("/v1/wishes", params={"category": slug}, headers=stranger)
        assert_problem(unknown, 422, "unknown_category")
    assert (
        await api.client.get(f"/v1/wishes/{pending['id']}", headers=stranger)
    ).status_code == 404
    own = await api.client.get("/v1/wishes", params={"mine": "true"}, headers=world.resident)
    assert {w["id"] for w in own.json()["items"]} == {
        pending["id"],
        opened["id"],
        other_street["id"],
    }
    organizer = await api.client.get(
        "/v1/wishes", params={"status": "pending_review"}, headers=world.organizer
    )
    assert [w["id"] for w in organizer.json()["items"]] == [pending["id"]]

    street = await api.client.get(
        "/v1/wishes", params={"region_id": world.regions["S1"]}, headers=stranger
    )
    assert [w["id"] for w in street.json()["items"]] == [opened["id"]]
    category = await api.client.get("/v1/wishes", params={"category": "tutoring"}, headers=stranger)
    assert [w["id"] for w in category.json()["items"]] == [opened["id"]]
    several = await api.client.get(
        "/v1/wishes",
        params=[("status", "open"), ("status", "pending_review")],
        headers=world.organizer,
    )
    assert {w["id"] for w in several.json()["items"]} == {
        pending["id"],
        opened["id"],
        other_street["id"],
    }
    assert (
        await api.client.get("/v1/wishes", params={"status": "bogus"}, headers=stranger)
    ).status_code == 422
    assert (
        await api.client.get("/v1/wishes", params={"limit": 101}, headers=stranger)
    ).status_code == 422
    assert (await api.client.get("/v1/wishes")).status_code == 401


async def test_the_listing_shows_what_a_single_read_shows(world: World) -> None:
    """Whoever sees a wish in the listing can read it, with the same masking, and a wish
    nobody may read is never listed: a claimer whose claim was fulfilled still sees the
    fulfilled wish (contact masked); one who withdrew does not; an organizer sees
    everything under the grant, unmasked, and nothing outside it; an admin sees all."""
    api = world.api
    wish = await world.wish(slots=2)
    outside = await world.wish("C3", approve=False)  # street S2: not the organizer's
    done, _ = await world.member()
    gone, _ = await world.member()
    stranger, _ = await world.user("路人")
    other, _ = await world.member()
    kept = (await world.claim(wish["id"], done)).json()
    left = (await world.claim(wish["id"], gone)).json()
    await api.client.post(f"/v1/claims/{left['id']}/withdraw", headers=gone)
    last = (await world.claim(wish["id"], other)).json()
    for claim, headers in ((kept, done), (last, other)):
        fulfilled = await api.client.post(
            f"/v1/claims/{claim['id']}/fulfil", json={"note": "送到了"}, headers=headers
        )
        assert fulfilled.status_code == 200, fulfilled.text
    state = (await api.client.get(f"/v1/wishes/{wish['id']}", headers=world.resident)).json()
    assert state["status"] == "fulfilled"

    async def listed(headers: dict[str, str]) -> dict[str, dict[str, Any]]:
        page = (await api.client.get("/v1/wishes", params={"limit": 100}, headers=headers)).json()
        return {item["id"]: item for item in page["items"]}

    async def read(headers: dict[str, str], wish_id: str) -> dict[str, Any] | None:
        response = await api.client.get(f"/v1/wishes/{wish_id}", headers=headers)
        return response.json() if response.status_code == 200 else None

    everyone = {"done": done, "gone": gone, "stranger": stranger, "organizer": world.organizer}
    everyone |= {"admin": world.admin, "resident": world.resident}
    for name, headers in everyone.items():
        page = await listed(headers)
        for wish_id in (wish["id"], outside["id"]):
            single = await read(headers, wish_id)
            if single is None:
                assert wish_id not in page, name
            else:
                assert page[wish_id]["contact"] == single["contact"], name

    assert wish["id"] not in await listed(stranger)
    assert wish["id"] not in await listed(gone)
    assert (await listed(done))[wish["id"]]["contact"]["masked"] is True
    assert (await listed(world.organizer))[wish["id"]]["contact"]["masked"] is False
    organizer = await listed(world.organizer)
    assert outside["id"] not in organizer  # pending review, outside the grant
    assert outside["id"] in await listed(world.admin)


async def test_a_page_audits_only_the_wishes_it_shows(world: World) -> None:
    """The listing reads one wish more than the page to know whether another follows; that
    one is not shown, so its unmasked contact is not recorded as read either."""
    api = world.api
    for _ in range(3):
        await world.wish()
    before = await api.sql("SELECT count(*) FROM contact_access_log")
    page = await api.client.get("/v1/wishes", params={"limit": 2}, headers=world.organizer)
    assert len(page.json()["items"]) == 2
    assert page.json()["next_cursor"]
    after = await api.sql("SELECT count(*) FROM contact_access_log")
    assert int(str(after[0][0])) - int(str(before[0][0])) == 2


async def test_keyset_pages_cover_every_wish_once(world: World) -> None:
    api = world.api
    created = [(await world.wish(by=world.organizer))["id"] for _ in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await api.client.get("/v1/wishes", params=params, headers=world.resident)).json()
        seen += [w["id"] for w in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(created))
    bad = await api.client.get("/v1/wishes", params={"cursor": "abc"}, headers=world.resident)
    assert bad.json()["code"] == "invalid_cursor"


async def test_contact_is_masked_except_for_owner_organizer_and_active_claimer(
    world: World,
) -> None:
    api = world.api
    wish = await world.wish()
    stranger, _ = await world.user("路人")
    member, _ = await world.member()

    masked = (await api.client.get(f"/v1/wishes/{wish['id']}", headers=stranger)).json()
    assert masked["contact"] == {
        "name": "王**",
        "phone": "139****5678",
        "address": "东七社区",
        "masked": True,
    }
    assert masked["beneficiary_name"] == "王**"
    listed = (await api.client.get("/v1/wishes", headers=stranger)).json()["items"][0]
    assert listed["contact"]["phone"] == "139****5678"
    assert "13912345678" not in (await api.client.get("/v1/wishes", headers=stranger)).text

    for headers in (world.resident, world.organizer):
        full = (await api.client.get(f"/v1/wishes/{wish['id']}", headers=headers)).json()
        assert full["contact"]["phone"] == "+8613912345678"
        assert full["contact"]["address"] == "东七社区3栋201"

    claim = await world.claim(wish["id"], member)
    assert claim.status_code == 201
    as_claimer = (await api.client.get(f"/v1/wishes/{wish['id']}", headers=member)).json()
    assert as_claimer["contact"]["masked"] is False
    await api.client.post(f"/v1/claims/{claim.json()['id']}/withdraw", headers=member)
    after_withdraw = (await api.client.get(f"/v1/wishes/{wish['id']}", headers=member)).json()
    assert after_withdraw["contact"]["masked"] is True

    audit = await api.sql("SELECT reason FROM contact_access_log ORDER BY id")
    # Reads by organizers (the approval's answer, then the GET) and by the active claimer
    # are audited; the owner's own reads and masked reads are not.
    assert audit == [("organizer",), ("organizer",), ("claimer",)]


async def test_owner_cancels_and_active_claims_end(world: World) -> None:
    api = world.api
    wish = await world.wish(slots=2)
    member, member_id = await world.member()
    claim = (await world.claim(wish["id"], member)).json()
    stranger, _ = await world.user()
    assert (
        await api.client.post(f"/v1/wishes/{wish['id']}/cancel", headers=stranger)
    ).status_code == 403

    cancelled = await api.client.post(
        f"/v1/wishes/{wish['id']}/cancel", json={"reason": "已解决"}, headers=world.resident
    )
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["slots_claimed"] == 0
    ended = (await api.client.get(f"/v1/claims/{claim['id']}", headers=member)).json()
    assert ended["status"] == "revoked"
    assert ended["end_reason"] == "wish_cancelled"
    profile = (await api.client.get(f"/v1/members/{member_id}", headers=member)).json()
    assert profile["active_claims"] == 0
    again = await api.client.post(f"/v1/wishes/{wish['id']}/cancel", headers=world.resident)
    assert again.status_code == 409


async def test_cannot_cancel_once_something_is_fulfilled(world: World) -> None:
    api = world.api
    wish = await world.wish(slots=2)
    member, _ = await world.member()
    claim = (await world.claim(wish["id"], member)).json()
    await api.client.post(
        f"/v1/claims/{claim['id']}/fulfil", json={"note": "送到了"}, headers=member
    )
    refused = await api.client.post(f"/v1/wishes/{wish['id']}/cancel", headers=world.resident)
    assert refused.status_code == 409
    assert refused.json()["code"] == "invalid_state"


async def test_confirm_after_fulfilment(world: World) -> None:
    api = world.api
    wish = await world.wish()
    member, _ = await world.member()
    url = f"/v1/wishes/{wish['id']}/confirm"
    early = await api.client.post(url, json={"rating": 5}, headers=world.resident)
    assert early.status_code == 409
    assert early.json()["current_state"] == "open"
    claim = (await world.claim(wish["id"], member)).json()
    await api.client.post(
        f"/v1/claims/{claim['id']}/fulfil", json={"note": "修好了"}, headers=member
    )
    assert (
        await api.client.post(url, json={"rating": 6}, headers=world.resident)
    ).status_code == 422
    assert (await api.client.post(url, json={"rating": 5}, headers=member)).status_code == 403
    confirmed = await api.client.post(
        url, json={"rating": 5, "thanks": "谢谢！"}, headers=world.resident
    )
    assert confirmed.status_code == 200
    body = confirmed.json()
    assert body["status"] == "confirmed"
    assert body["rating"] == 5
    assert body["thanks"] == "谢谢！"
    assert (await api.client.post(url, headers=world.resident)).status_code == 409


async def test_deadline_expires_unclaimed_wishes(world: World) -> None:
    api = world.api
    soon = (utcnow() + timedelta(hours=1)).isoformat()
    unclaimed = await world.wish(deadline=soon)
    partly = await world.wish(slots=2, deadline=soon)
    dropped = await world.wish(slots=2, deadline=soon)
    pending = await world.wish(approve=False, deadline=soon)
    member, _ = await world.member()
    held = (await world.claim(partly["id"], member)).json()
    let_go = (await world.claim(dropped["id"], member)).json()
    await api.sql("UPDATE wishes SET deadline = :past", past=utcnow() - timedelta(seconds=1))

    # Until the clock runs, the deadline alone already stops new claims.
    late = await world.claim(unclaimed["id"], member)
    assert late.status_code == 409
    assert late.json()["code"] == "not_claimable"

    database = create_database(api.settings)
    try:
        await run_jobs_once(database, [expire_overdue])
    finally:
        await database.dispose()
    statuses = {
        w: (await api.client.get(f"/v1/wishes/{w}", headers=world.resident)).json()["status"]
        for w in (unclaimed["id"], partly["id"], pending["id"])
    }
    assert statuses == {unclaimed["id"]: "expired", partly["id"]: "open", pending["id"]: "expired"}

    # Its claims settle such a wish at once, as the clock would: fulfilled as far as it got,
    # or expired when the last claim is let go.
    fulfilled = await api.client.post(
        f"/v1/claims/{held['id']}/fulfil", json={"note": "送到了"}, headers=member
    )
    assert fulfilled.status_code == 200, fulfilled.text
    assert fulfilled.json()["wish"]["status"] == "fulfilled"
    withdrawn = await api.client.post(f"/v1/claims/{let_go['id']}/withdraw", headers=member)
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["wish"]["status"] == "expired"


async def test_text_with_nul_is_refused_alike_on_both_databases(world: World) -> None:
    api = world.api
    body = {"title": "a\u0000b", "category": "repair", "region_id": world.regions["C1"]}
    response = await api.client.post("/v1/wishes", json=body, headers=world.resident)
    # PostgreSQL cannot store NUL in text, SQLite could: both refuse it alike.
    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"
    nested = {**body, "title": "ab", "contact": {"address": "x\u0000"}}
    response = await api.client.post("/v1/wishes", json=nested, headers=world.resident)
    assert response.status_code == 422
    assert await api.sql("SELECT count(*) FROM wishes") == [(0,)]
    listing = await api.client.get(
        "/v1/wishes", params={"category": "re\u0000pair"}, headers=world.resident
    )
    assert listing.status_code in (200, 422)
