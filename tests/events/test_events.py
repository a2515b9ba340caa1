"""The claim event life cycle through the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.main import create_app
from tests.conftest import Api, make_settings
from tests.invariants import violations
from tests.locks import lock_row, other_transaction, until_someone_waits
from tests.problems import assert_problem
from tests.world import World, build_world

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(api: Api) -> World:
    return await build_world(api)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def soon(seconds: float) -> str:
    return iso(datetime.now(UTC) + timedelta(seconds=seconds))


async def create_event(world: World, **fields: Any) -> httpx.Response:
    body = {
        "title": "七里站街道集中认领",
        "community_ids": [world.regions["C1"], world.regions["C2"]],
        "mode": "rush",
        "per_member_quota": 2,
        **fields,
    }
    return await world.api.client.post("/v1/claim-events", json=body, headers=world.organizer)


async def event_claim(
    world: World, event_id: str, wish_id: str, headers: dict[str, str], slots: int = 1
) -> httpx.Response:
    return await world.api.client.post(
        f"/v1/claim-events/{event_id}/claims",
        json={"wish_id": wish_id, "slots": slots},
        headers=headers,
    )


async def test_create_refusals(world: World) -> None:
    api = world.api
    not_community = await create_event(world, community_ids=[world.regions["S1"]])
    assert not_community.status_code == 422
    assert not_community.json()["code"] == "not_a_community"
    out_of_scope = await create_event(
        world, community_ids=[world.regions["C1"], world.regions["C3"]]
    )
    assert out_of_scope.status_code == 403
    assert out_of_scope.json()["code"] == "forbidden"
    assert out_of_scope.json()["reason"] == "out_of_scope"
    resident = await api.client.post(
        "/v1/claim-events",
        json={"title": "x", "community_ids": [world.regions["C1"]]},
        headers=world.resident,
    )
    assert resident.status_code == 403
    backwards = await create_event(world, starts_at=soon(3600), ends_at=soon(60))
    assert backwards.status_code == 422
    assert backwards.json()["code"] == "invalid_event_window"
    past = await create_event(world, ends_at=soon(-60))
    assert past.status_code == 422
    # A start in the past would open the event at once: refused beyond a clock's skew.
    for starts_at in (soon(-6 * 60), "0001-01-01T00:00:00Z"):
        late_start = await create_event(world, starts_at=starts_at, ends_at=soon(3600))
        assert_problem(late_start, 422, "invalid_event_window")
    bad_mode = await create_event(world, mode="lottery")
    assert bad_mode.status_code == 422
    assert bad_mode.json()["code"] == "validation_failed"
    zero_quota = await create_event(world, per_member_quota=0)
    assert zero_quota.status_code == 422
    unknown = await create_event(world, community_ids=["999999"])
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "unknown_region"
    listed = await api.client.get("/v1/claim-events", headers=world.organizer)
    assert listed.json()["items"] == []  # nothing was created


async def test_rush_lifecycle(world: World) -> None:
    api = world.api
    c1_wish = await world.wish("C1", slots=2)
    c2_wish = await world.wish("C2")
    g1_wish = await world.wish("G1")  # a grid of C1: pooled with its community
    c3_wish = await world.wish("C3")  # another street: not pooled
    pending = await world.wish("C1", approve=False)

    created = await create_event(world)
    assert created.status_code == 201, created.text
    event = created.json()
    assert event["status"] == "draft"
    assert event["mode"] == "rush"
    assert {c["id"] for c in event["communities"]} == {world.regions["C1"], world.regions["C2"]}
    assert event["board_url"].endswith(
        f"/board/events/{event['id']}?token=" + event["board_url"].split("token=")[1]
    )
    event_id = event["id"]

    # A draft is the organizers' business only.
    member, _ = await world.member("C3")  # from another street: reaches C1 only here
    hidden = await api.client.get(f"/v1/claim-events/{event_id}", headers=member)
    assert hidden.status_code == 404
    early = await event_claim(world, event_id, c1_wish["id"], member)
    assert early.status_code == 404

    opened = await api.client.post(f"/v1/claim-events/{event_id}/open", headers=world.organizer)
    assert opened.status_code == 200, opened.text
    assert opened.json()["status"] == "live"
    assert opened.json()["wishes_pooled"] == 3
    assert opened.json()["slots_pooled"] == 4
    again = await api.client.post(f"/v1/claim-events/{event_id}/open", headers=world.organizer)
    assert again.status_code == 409
    assert again.json()["code"] == "invalid_state"
    assert again.json()["current_state"] == "live"

    pool = await api.client.get(f"/v1/claim-events/{event_id}/wishes", headers=member)
    assert pool.status_code == 200
    assert {w["wish_id"] for w in pool.json()["items"]} == {
        c1_wish["id"],
        c2_wish["id"],
        g1_wish["id"],
    }
    assert all(w["in_pool_now"] for w in pool.json()["items"])

    # In the event, a pooled wish is claimable only through it.
    local, _ = await world.member("C1")
    direct = await world.claim(c1_wish["id"], local)
    assert direct.status_code == 409
    assert direct.json()["code"] == "in_event"
    assert direct.json()["event_id"] == event_id

    # Through the event, from another street.
    claimed = await event_claim(world, event_id, c1_wish["id"], member)
    assert claimed.status_code == 201, claimed.text
    assert claimed.json()["source"] == "event"
    assert claimed.json()["event_id"] == event_id
    twice = await event_claim(world, event_id, c1_wish["id"], member)
    assert twice.status_code == 409
    assert twice.json()["code"] == "already_claimed"
    second = await event_claim(world, event_id, c2_wish["id"], member)
    assert second.status_code == 201
    over_quota = await event_claim(world, event_id, g1_wish["id"], member)
    assert over_quota.status_code == 409
    assert over_quota.json()["code"] == "quota_reached"
    assert over_quota.json()["per_member_quota"] == 2
    # Withdrawing gives the quota back.
    withdrawn = await api.client.post(f"/v1/claims/{second.json()['id']}/withdraw", headers=member)
    assert withdrawn.status_code == 200
    third = await event_claim(world, event_id, g1_wish["id"], member)
    assert third.status_code == 201

    not_pooled = await event_claim(world, event_id, c3_wish["id"], local)
    assert not_pooled.status_code == 409
    assert not_pooled.json()["code"] == "not_in_event"
    # A wish still in review exists: claiming it is a conflict, not a 404 (as direct claims).
    unreviewed = await event_claim(world, event_id, pending["id"], local)
    assert_problem(unreviewed, 409, "not_claimable")
    missing = await event_claim(world, event_id, "99999", local)
    assert missing.status_code == 404
    own = await event_claim(world, event_id, c2_wish["id"], world.resident)
    assert own.status_code in (403, 409)
    unknown_event = await event_claim(world, "99999", c2_wish["id"], local)
    assert unknown_event.status_code == 404

    detail = (await api.client.get(f"/v1/claim-events/{event_id}", headers=member)).json()
    assert detail["my_claims"] == 2
    assert detail["slots_claimed"] == 2
    assert detail["board_url"] is None  # not for members

    closed = await api.client.post(f"/v1/claim-events/{event_id}/close", headers=world.organizer)
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    late = await event_claim(world, event_id, c2_wish["id"], local)
    assert late.status_code == 409
    assert late.json()["current_state"] == "closed"

    # Back home: what was not taken is directly claimable again.
    home = await world.claim(c1_wish["id"], local)
    assert home.status_code == 201, home.text
    home_c2 = await world.claim(c2_wish["id"], (await world.member("C2"))[0])
    assert home_c2.status_code == 201

    report = await api.client.get(f"/v1/claim-events/{event_id}/report", headers=world.organizer)
    assert report.status_code == 200
    body = report.json()
    assert body["totals"]["wishes_pooled"] == 3
    assert body["totals"]["slots_pooled"] == 4
    assert body["totals"]["slots_claimed"] == 2
    assert body["totals"]["members"] == 1
    by_community = {c["community_id"]: c for c in body["communities"]}
    assert by_community[world.regions["C1"]]["wishes_pooled"] == 2
    assert by_community[world.regions["C1"]]["wishes_filled"] == 1  # the grid wish
    assert by_community[world.regions["C2"]]["slots_claimed"] == 0
    assert {w["wish_id"] for w in body["unclaimed"]} == {c1_wish["id"], c2_wish["id"]}

    as_csv = await api.client.get(
        f"/v1/claim-events/{event_id}/report",
        headers={**world.organizer, "Accept": "text/csv"},
    )
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "report.csv" in as_csv.headers["content-disposition"]
    # One plain table a CSV reader takes as it is: the JSON's fields, a row per community
    # and the totals; no BOM.
    assert not as_csv.text.startswith("\ufeff")
    table = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert list(table[0]) == list(body["totals"])
    assert [row["community_id"] for row in table] == [
        c["community_id"] for c in body["communities"]
    ] + [""]
    assert table[-1]["name"] == "合计"
    assert table[-1]["slots_claimed"] == "2"
    unclaimed_csv = await api.client.get(
        f"/v1/claim-events/{event_id}/report",
        params={"part": "unclaimed"},
        headers={**world.organizer, "Accept": "text/csv"},
    )
    assert "unclaimed.csv" in unclaimed_csv.headers["content-disposition"]
    assert unclaimed_csv.text.splitlines()[0] == ",".join(body["unclaimed"][0])
    unclaimed = list(csv.DictReader(io.StringIO(unclaimed_csv.text)))
    assert unclaimed == [
        {key: str(value) for key, value in wish.items()} for wish in body["unclaimed"]
    ]
    assert await violations(api.settings.database_url) == {}
    assert await event_violations(api) == {}


async def event_violations(api: Api) -> dict[str, list[tuple[object, ...]]]:
    from tests.invariants import event_violations as check

    return await check(api.settings.database_url)


async def test_a_slot_given_back_during_the_event_joins_its_pool(world: World) -> None:
    """A wish half taken before the event is pooled with one free slot; its earlier helper
    withdraws while the event is live and two members claim both slots through it: the
    event offered two, and never shows more claimed than pooled."""
    api = world.api
    shared = await world.wish("C1", slots=2)
    before, _ = await world.member("C1")
    earlier = (await world.claim(shared["id"], before)).json()
    event = (await create_event(world, per_member_quota=1)).json()
    await api.client.post(f"/v1/claim-events/{event['id']}/open", headers=world.organizer)
    withdrawn = await api.client.post(f"/v1/claims/{earlier['id']}/withdraw", headers=before)
    assert withdrawn.status_code == 200
    for _ in range(2):
        member, _ = await world.member("C3")
        assert (await event_claim(world, event["id"], shared["id"], member)).status_code == 201
    detail = (
        await api.client.get(f"/v1/claim-events/{event['id']}", headers=world.organizer)
    ).json()
    report = (
        await api.client.get(f"/v1/claim-events/{event['id']}/report", headers=world.organizer)
    ).json()
    for shown in (detail, report["totals"]):
        assert (shown["slots_pooled"], shown["slots_claimed"]) == (2, 2), shown
    assert report["totals"]["wishes_filled"] == 1
    assert report["unclaimed"] == []


async def test_a_closed_event_reports_what_was_claimed_at_its_close(world: World) -> None:
    """The ceremony's numbers stay as they were at the close: a claim withdrawn afterwards
    still counts as claimed in the event; a fulfilment afterwards counts as fulfilled."""
    api = world.api
    first = await world.wish("C1")
    second = await world.wish("C2")
    event = (await create_event(world)).json()
    await api.client.post(f"/v1/claim-events/{event['id']}/open", headers=world.organizer)
    member, _ = await world.member("C3")
    other, _ = await world.member("C3")
    quitting = (await event_claim(world, event["id"], first["id"], member)).json()
    keeping = (await event_claim(world, event["id"], second["id"], other)).json()
    closed = await api.client.post(f"/v1/claim-events/{event['id']}/close", headers=world.organizer)
    assert closed.status_code == 200, closed.text
    url = f"/v1/claim-events/{event['id']}/report"

    async def numbers() -> tuple[dict[str, Any], dict[str, Any], str]:
        report = (await api.client.get(url, headers=world.organizer)).json()
        detail = (
            await api.client.get(f"/v1/claim-events/{event['id']}", headers=world.organizer)
        ).json()
        as_csv = await api.client.get(url, headers={**world.organizer, "Accept": "text/csv"})
        return report, detail, as_csv.text

    at_close, detail_at_close, csv_at_close = await numbers()
    assert at_close["totals"]["slots_claimed"] == 2
    assert at_close["totals"]["wishes_filled"] == 2
    assert at_close["unclaimed"] == []
    withdrawn = await api.client.post(f"/v1/claims/{quitting['id']}/withdraw", headers=member)
    assert withdrawn.status_code == 200, withdrawn.text
    assert await numbers() == (at_close, detail_at_close, csv_at_close)
    # Back home, the wish is claimed directly: no claim of the event's.
    assert (await world.claim(first["id"], (await world.member("C1"))[0])).status_code == 201
    assert await numbers() == (at_close, detail_at_close, csv_at_close)
    fulfilled = await api.client.post(
        f"/v1/claims/{keeping['id']}/fulfil", json={"note": "送到了"}, headers=other
    )
    assert fulfilled.status_code == 200, fulfilled.text
    later, _, _ = await numbers()
    assert later["totals"]["slots_fulfilled"] == 1
    assert later["totals"] | {"slots_fulfilled": 0} == at_close["totals"]
    assert await event_violations(api) == {}


async def test_chosen_wishes_and_updates(world: World) -> None:
    api = world.api
    chosen = await world.wish("C1")
    other = await world.wish("C1")
    taken_meanwhile = await world.wish("C2")
    created = await create_event(world, wish_ids=[chosen["id"], taken_meanwhile["id"]])
    event_id = created.json()["id"]
    outside = await api.client.post(
        f"/v1/claim-events/{event_id}/wishes",
        json={"wish_ids": [(await world.wish("C3"))["id"]]},
        headers=world.organizer,
    )
    assert outside.status_code == 422
    assert outside.json()["code"] == "wishes_not_in_event_communities"
    added = await api.client.post(
        f"/v1/claim-events/{event_id}/wishes",
        json={"wish_ids": [other["id"]]},
        headers=world.organizer,
    )
    assert added.status_code == 200
    removed = await api.client.delete(
        f"/v1/claim-events/{event_id}/wishes/{other['id']}", headers=world.organizer
    )
    assert removed.status_code == 200
    unconditional = await api.client.patch(
        f"/v1/claim-events/{event_id}", json={"per_member_quota": 1}, headers=world.organizer
    )
    assert unconditional.status_code == 428
    read = await api.client.get(f"/v1/claim-events/{event_id}", headers=world.organizer)
    cached = await api.client.get(
        f"/v1/claim-events/{event_id}",
        headers={**world.organizer, "If-None-Match": read.headers["etag"]},
    )
    assert cached.status_code == 304
    scheduled = await api.client.patch(
        f"/v1/claim-events/{event_id}",
        json={"starts_at": soon(3600), "ends_at": soon(7200), "per_member_quota": 1},
        headers={**world.organizer, "If-Match": read.headers["etag"]},
    )
    stale = await api.client.patch(
        f"/v1/claim-events/{event_id}",
        json={"title": "x"},
        headers={**world.organizer, "If-Match": read.headers["etag"]},
    )
    assert stale.status_code == 412
    assert scheduled.status_code == 200, scheduled.text
    assert scheduled.json()["status"] == "scheduled"
    assert scheduled.json()["per_member_quota"] == 1
    # Visible to members once scheduled.
    member, _ = await world.member("C2")
    listed = await api.client.get("/v1/claim-events?status=scheduled", headers=member)
    assert [e["id"] for e in listed.json()["items"]] == [event_id]
    # Claimed directly before the opening: skipped at opening.
    assert (await world.claim(taken_meanwhile["id"], member)).status_code == 201
    opened = await api.client.post(f"/v1/claim-events/{event_id}/open", headers=world.organizer)
    assert opened.json()["wishes_pooled"] == 1
    pool = (await api.client.get(f"/v1/claim-events/{event_id}/wishes", headers=member)).json()
    states = {w["wish_id"]: w["state"] for w in pool["items"]}
    assert states == {
        chosen["id"]: "pooled",
        taken_meanwhile["id"]: "skipped",
        other["id"]: "removed",
    }
    late_change = await api.client.patch(
        f"/v1/claim-events/{event_id}",
        json={"title": "改名"},
        headers={**world.organizer, "If-Match": "*"},
    )
    assert late_change.status_code == 409
    # A member still claims the un-pooled wish directly.
    assert (await world.claim(other["id"], (await world.member("C1"))[0])).status_code == 201


async def test_an_event_that_chose_nothing_previews_its_pool_and_leaves_wishes_out(
    world: World,
) -> None:
    api = world.api
    first = await world.wish("C1")
    second = await world.wish("C2")
    elsewhere = await world.wish("C3")  # another street's: never in this event
    pending = await world.wish("C1", approve=False)
    event_id = (await create_event(world)).json()["id"]
    url = f"/v1/claim-events/{event_id}/wishes"

    async def states() -> dict[str, str]:
        pool = (await api.client.get(url, headers=world.organizer)).json()
        return {w["wish_id"]: w["state"] for w in pool["items"]}

    assert await states() == {first["id"]: "selected", second["id"]: "selected"}
    paged = (await api.client.get(url, params={"limit": 1}, headers=world.organizer)).json()
    assert [w["wish_id"] for w in paged["items"]] == [first["id"]]
    rest = await api.client.get(
        url, params={"limit": 1, "cursor": paged["next_cursor"]}, headers=world.organizer
    )
    assert [w["wish_id"] for w in rest.json()["items"]] == [second["id"]]

    removed = await api.client.delete(f"{url}/{first['id']}", headers=world.organizer)
    assert removed.status_code == 200, removed.text
    assert await states() == {first["id"]: "removed", second["id"]: "selected"}
    again = await api.client.delete(f"{url}/{first['id']}", headers=world.organizer)
    assert_problem(again, 404, "not_found")
    for outside in (elsewhere["id"], "987654"):  # not a wish of its communities
        refused = await api.client.delete(f"{url}/{outside}", headers=world.organizer)
        assert_problem(refused, 404, "not_found")
    # One not open now may be kept out all the same (it could reopen before the event).
    assert (await api.client.delete(f"{url}/{pending['id']}", headers=world.organizer)).is_success

    opened = await api.client.post(f"/v1/claim-events/{event_id}/open", headers=world.organizer)
    assert opened.status_code == 200, opened.text
    assert await states() == {
        first["id"]: "removed",
        second["id"]: "pooled",
        pending["id"]: "removed",
    }
    member, _ = await world.member("C3")
    assert (await event_claim(world, event_id, first["id"], member)).status_code == 409
    assert (await event_claim(world, event_id, second["id"], member)).status_code == 201


async def test_adding_back_a_wish_left_out_keeps_pooling_the_communities(world: World) -> None:
    """Leaving a wish out of an event that pools its communities and adding it back undoes
    the leave-out: the event still pools every open wish, not just that one. Adding any
    other wish chooses: from then on only the chosen ones. The page says which."""
    api = world.api
    wishes = [await world.wish("C1"), await world.wish("C2"), await world.wish("C1")]
    event_id = (await create_event(world)).json()["id"]
    url = f"/v1/claim-events/{event_id}/wishes"

    async def pool() -> tuple[str | None, dict[str, str]]:
        page = (await api.client.get(url, headers=world.organizer)).json()
        return page["pool_mode"], {w["wish_id"]: w["state"] for w in page["items"]}

    every = {w["id"]: "selected" for w in wishes}
    assert await pool() == ("communities", every)
    left_out = await api.client.delete(f"{url}/{wishes[0]['id']}", headers=world.organizer)
    assert left_out.status_code == 200, left_out.text
    assert await pool() == ("communities", every | {wishes[0]["id"]: "removed"})
    back = await api.client.post(url, json={"wish_ids": [wishes[0]["id"]]}, headers=world.organizer)
    assert back.status_code == 200, back.text
    assert await pool() == ("communities", every)
    opened = await api.client.post(f"/v1/claim-events/{event_id}/open", headers=world.organizer)
    assert opened.json()["wishes_pooled"] == 3
    assert await pool() == (None, {w["id"]: "pooled" for w in wishes})

    # Adding a wish that was not left out is choosing it: only the chosen are pooled.
    later = await world.wish("C2")
    chosen_event = (await create_event(world)).json()["id"]
    chosen_url = f"/v1/claim-events/{chosen_event}/wishes"
    await api.client.delete(f"{chosen_url}/{later['id']}", headers=world.organizer)
    chose = await api.client.post(
        chosen_url, json={"wish_ids": [later["id"], wishes[1]["id"]]}, headers=world.organizer
    )
    assert chose.status_code == 200, chose.text
    page = (await api.client.get(chosen_url, headers=world.organizer)).json()
    assert page["pool_mode"] == "chosen"
    assert {w["wish_id"]: w["state"] for w in page["items"]} == {
        later["id"]: "selected",
        wishes[1]["id"]: "selected",
    }


async def test_a_pool_shows_unpublished_wishes_to_its_organizers_only(world: World) -> None:
    api = world.api
    published = await world.wish("C1")
    pending = await world.wish("C1", approve=False)
    for chosen in ([], [published["id"], pending["id"]]):
        event = (
            await create_event(world, starts_at=soon(600), ends_at=soon(1200), wish_ids=chosen)
        ).json()
        url = f"/v1/claim-events/{event['id']}/wishes"
        if not chosen:  # pools its communities' wishes: the organizer keeps the pending one out
            left_out = await api.client.delete(f"{url}/{pending['id']}", headers=world.organizer)
            assert left_out.status_code == 200, left_out.text
        member, _ = await world.member("C3")
        seen = (await api.client.get(url, headers=member)).json()["items"]
        assert [w["wish_id"] for w in seen] == [published["id"]]
        managed = (await api.client.get(url, headers=world.organizer)).json()["items"]
        assert {w["wish_id"] for w in managed} == {published["id"], pending["id"]}


async def test_taking_out_every_chosen_wish_pools_the_rest(world: World) -> None:
    """With no chosen wish left the event pools its communities' open wishes, except the
    ones taken out; opening it never fails (and never stops the clock for other events)."""
    api = world.api
    taken_out = await world.wish("C1")
    stays = await world.wish("C2")
    event_id = (await create_event(world, wish_ids=[taken_out["id"]])).json()["id"]
    removed = await api.client.delete(
        f"/v1/claim-events/{event_id}/wishes/{taken_out['id']}", headers=world.organizer
    )
    assert removed.status_code == 200
    opened = await api.client.post(f"/v1/claim-events/{event_id}/open", headers=world.organizer)
    assert opened.status_code == 200, opened.text
    pool = (
        await api.client.get(f"/v1/claim-events/{event_id}/wishes", headers=world.organizer)
    ).json()
    states = {w["wish_id"]: w["state"] for w in pool["items"]}
    assert states == {taken_out["id"]: "removed", stays["id"]: "pooled"}


async def test_a_start_a_little_in_the_past_is_a_clock_skew(world: World) -> None:
    """A phone a minute behind sends a starts_at just gone: accepted, and the event opens
    at once; further back is refused, on create and on edit alike."""
    api = world.api
    await world.wish("C1")
    skewed = await create_event(world, starts_at=soon(-60), ends_at=soon(3600))
    assert skewed.status_code == 201, skewed.text
    assert skewed.json()["status"] == "scheduled"
    shown = await api.client.get(f"/v1/claim-events/{skewed.json()['id']}", headers=world.organizer)
    assert shown.json()["status"] == "live"  # opened by the read's catch-up, or the clock
    assert shown.json()["wishes_pooled"] == 1
    draft = (await create_event(world)).json()
    url = f"/v1/claim-events/{draft['id']}"
    tag = (await api.client.get(url, headers=world.organizer)).headers["etag"]
    for starts_at in (soon(-6 * 60), "0001-01-01T00:00:00Z"):
        edited = await api.client.patch(
            url, json={"starts_at": starts_at}, headers={**world.organizer, "If-Match": tag}
        )
        assert_problem(edited, 422, "invalid_event_window")
    still = await api.client.get(url, headers=world.organizer)
    assert still.json()["status"] == "draft"
    assert still.json()["starts_at"] is None


async def test_event_edits(world: World) -> None:
    api = world.api
    event_id = (await create_event(world)).json()["id"]
    url = f"/v1/claim-events/{event_id}"
    tag = (await api.client.get(url, headers=world.organizer)).headers["etag"]
    for body in ({"title": None}, {"per_member_quota": None}, {"community_ids": None}):
        null = await api.client.patch(url, json=body, headers={**world.organizer, "If-Match": tag})
        assert null.status_code == 422, null.text
        assert null.json()["code"] == "field_not_nullable"
    moved = await api.client.patch(
        url,
        json={"community_ids": [world.regions["C2"]]},
        headers={**world.organizer, "If-Match": tag},
    )
    assert moved.status_code == 200, moved.text
    assert [c["id"] for c in moved.json()["communities"]] == [world.regions["C2"]]
    # Two edits from one version at once: one wins, the other is told the event moved on.
    tag = moved.headers["etag"]
    edits = await asyncio.gather(
        *(
            api.client.patch(
                url, json={"title": f"活动{n}"}, headers={**world.organizer, "If-Match": tag}
            )
            for n in range(6)
        )
    )
    assert sorted(e.status_code for e in edits) == [200] + [412] * 5


async def test_clock_opens_and_closes_on_time(world: World) -> None:
    api = world.api
    wish = await world.wish("C1")
    created = await create_event(world, starts_at=soon(1), ends_at=soon(3))
    event = created.json()
    assert event["status"] == "scheduled"
    member, _ = await world.member("C3")
    await asyncio.sleep(1.6)
    live = await api.client.get(f"/v1/claim-events/{event['id']}", headers=member)
    assert live.json()["status"] == "live"
    assert (await event_claim(world, event["id"], wish["id"], member)).status_code == 201
    await asyncio.sleep(2.0)
    closed = await api.client.get(f"/v1/claim-events/{event['id']}", headers=member)
    assert closed.json()["status"] == "closed"
    assert await event_violations(api) == {}


async def test_a_claim_at_the_opening_second_opens_the_event(clean_database: str) -> None:
    """With the event clock far from its next tick, the first tap after starts_at opens
    the event itself (the claim route's own catch-up)."""
    settings = make_settings(clean_database, event_clock_interval_seconds=60)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            api = Api(client=client, settings=settings)
            world = await build_world(api)
            wish = await world.wish("C1")
            event = (await create_event(world, starts_at=soon(600), ends_at=soon(1200))).json()
            member, _ = await world.member("C3")
            early = await event_claim(world, event["id"], wish["id"], member)
            assert_problem(early, 409, "invalid_state")
            assert early.json()["current_state"] == "scheduled"
            await api.sql(
                "UPDATE claim_events SET starts_at = :s WHERE id = :id",
                s=datetime.now(UTC) - timedelta(milliseconds=10),
                id=int(event["id"]),
            )
            claimed = await event_claim(world, event["id"], wish["id"], member)
            assert claimed.status_code == 201, claimed.text
            shown = await client.get(f"/v1/claim-events/{event['id']}", headers=member)
            assert shown.json()["status"] == "live"
            assert await event_violations(api) == {}


async def test_restart_while_live_catches_up(world: World) -> None:
    """The server stops while an event is live and comes back after its end: the first tick
    (or access) closes it and every pooled wish returns home."""
    api = world.api
    first = await world.wish("C1")
    second = await world.wish("C2", slots=2)
    event = (await create_event(world, starts_at=soon(600), ends_at=soon(1200))).json()
    opened = await api.client.post(f"/v1/claim-events/{event['id']}/open", headers=world.organizer)
    assert opened.json()["status"] == "live"
    member, _ = await world.member("C3")
    assert (await event_claim(world, event["id"], second["id"], member)).status_code == 201

    # "Downtime": the event's end passes (after that claim) while no server runs.
    await api.sql(
        "UPDATE claim_events SET starts_at = :s, opened_at = :s, ends_at = :e WHERE id = :id",
        s=datetime.now(UTC) - timedelta(seconds=60),
        e=datetime.now(UTC),
        id=int(event["id"]),
    )
    await asyncio.sleep(0.1)
    restarted = create_app(api.settings)
    async with restarted.router.lifespan_context(restarted):
        transport = httpx.ASGITransport(app=restarted)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            await asyncio.sleep(0.3)  # the first tick of the event clock
            detail = await client.get(f"/v1/claim-events/{event['id']}", headers=member)
            assert detail.json()["status"] == "closed"
            # Closed at its end, not whenever the server came back.
            assert detail.json()["closed_at"] == detail.json()["ends_at"]
            rows = await api.sql("SELECT count(*) FROM wishes WHERE event_id IS NOT NULL")
            assert rows[0][0] == 0
            local, _ = await world.member("C1")
            home = await client.post(
                f"/v1/wishes/{first['id']}/claims", json={"slots": 1}, headers=local
            )
            assert home.status_code == 201, home.text
    assert await event_violations(api) == {}


async def test_a_late_allocation_closes_the_event_when_it_is_made(world: World) -> None:
    """An allocate event whose end passed unnoticed: its claims are made when the clock
    (here: a read) catches up, and the event is recorded closed then, not before them."""
    api = world.api
    wish = await world.wish("C1")
    event = (await create_event(world, mode="allocate")).json()
    await api.client.post(f"/v1/claim-events/{event['id']}/open", headers=world.organizer)
    member, _ = await world.member("C3")
    ranked = await api.client.put(
        f"/v1/claim-events/{event['id']}/preferences", json=[wish["id"]], headers=member
    )
    assert ranked.status_code == 200
    await api.sql(
        "UPDATE claim_events SET starts_at = :s, opened_at = :s, ends_at = :e WHERE id = :id",
        s=datetime.now(UTC) - timedelta(seconds=60),
        e=datetime.now(UTC) - timedelta(seconds=30),
        id=int(event["id"]),
    )
    detail = (await api.client.get(f"/v1/claim-events/{event['id']}", headers=member)).json()
    assert detail["status"] == "closed"
    assert detail["closed_at"] > detail["ends_at"]
    claims = (await api.client.get("/v1/me/claims", headers=member)).json()["items"]
    assert [c["wish_id"] for c in claims] == [wish["id"]]
    assert claims[0]["created_at"] <= detail["closed_at"]
    assert await event_violations(api) == {}


async def test_an_event_the_clock_cannot_advance_is_retried_with_backoff(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in one event's opening neither stops the others nor runs every tick."""
    from app.core.db import create_database
    from app.events import service as events_service

    api = world.api
    broken, fine = [
        (await create_event(world, starts_at=soon(600), ends_at=soon(1200))).json()["id"]
        for _ in range(2)
    ]
    await api.sql(
        "UPDATE claim_events SET starts_at = :s", s=datetime.now(UTC) - timedelta(seconds=1)
    )
    real_advance = events_service.advance
    tried: list[int] = []

    async def advance(session: Any, event_id: int, now: datetime) -> str | None:
        tried.append(event_id)
        if event_id == int(broken):
            raise RuntimeError("a bug")
        return await real_advance(session, event_id, now)

    monkeypatch.setattr(events_service, "advance", advance)
    monkeypatch.setattr(events_service, "_failing", {})
    database = create_database(api.settings)
    try:
        await events_service.catch_up_all(database)
        assert tried == [int(broken), int(fine)]
        await events_service.catch_up_all(database)  # a second later: not yet again
        assert tried == [int(broken), int(fine)]
        # A request for it is served as the event stands, without trying again either.
        assert await events_service.catch_up(database, int(broken)) == "scheduled"
        assert tried == [int(broken), int(fine)]
        monkeypatch.setattr(events_service, "_failing", {})
        assert await events_service.catch_up(database, int(broken)) == "scheduled"
        assert tried == [int(broken), int(fine), int(broken)]  # failed again: no 500
    finally:
        await database.dispose()
    statuses = await api.sql("SELECT id, status FROM claim_events ORDER BY id")
    assert statuses == [(int(broken), "scheduled"), (int(fine), "live")]


async def test_restart_after_missing_the_whole_window(world: World) -> None:
    api = world.api
    await world.wish("C1")
    event = (await create_event(world, starts_at=soon(600), ends_at=soon(1200))).json()
    await api.sql(
        "UPDATE claim_events SET starts_at = :s, ends_at = :e WHERE id = :id",
        s=datetime.now(UTC) - timedelta(seconds=20),
        e=datetime.now(UTC) - timedelta(seconds=10),
        id=int(event["id"]),
    )
    detail = await api.client.get(f"/v1/claim-events/{event['id']}", headers=world.organizer)
    assert detail.json()["status"] == "closed"
    assert detail.json()["wishes_pooled"] == 1
    assert detail.json()["opened_at"] == detail.json()["starts_at"]
    assert detail.json()["closed_at"] == detail.json()["ends_at"]
    report = await api.client.get(f"/v1/claim-events/{event['id']}/report", headers=world.organizer)
    assert report.json()["totals"]["community_id"] is None
    rows = await api.sql("SELECT count(*) FROM wishes WHERE event_id IS NOT NULL")
    assert rows[0][0] == 0


async def test_allocate_mode(world: World) -> None:
    api = world.api
    popular = await world.wish("C1")
    pair = await world.wish("C2", slots=2)
    spare = await world.wish("C2")
    event = (await create_event(world, mode="allocate", per_member_quota=1)).json()
    await api.client.post(f"/v1/claim-events/{event['id']}/open", headers=world.organizer)
    a, a_id = await world.member("C3")
    b, b_id = await world.member("C3")
    c, c_id = await world.member("C1")
    rush = await event_claim(world, event["id"], popular["id"], a)
    assert rush.status_code == 409
    assert rush.json()["code"] == "wrong_event_mode"

    async def rank(headers: dict[str, str], body: Any) -> httpx.Response:
        return await api.client.put(
            f"/v1/claim-events/{event['id']}/preferences", json=body, headers=headers
        )

    # Everyone wants the popular wish first; only one can have it, and the optimum still
    # places all three.
    assert (await rank(a, [popular["id"], pair["id"]])).status_code == 200
    assert (await rank(b, {"wish_ids": [popular["id"]]})).status_code == 200
    assert (await rank(c, [popular["id"], spare["id"]])).status_code == 200
    mine = await api.client.get(f"/v1/claim-events/{event['id']}/preferences", headers=a)
    assert mine.json()["wish_ids"] == [popular["id"], pair["id"]]
    # Either form of the body reports a bad id once, where it is, in the API's own terms.
    for body, where in (
        (["abc"], ["body", "wish_ids", 0]),
        ({"wish_ids": [pair["id"], "0"]}, ["body", "wish_ids", 1]),
        ("abc", ["body"]),
    ):
        malformed = await rank(a, body)
        assert_problem(malformed, 422, "validation_failed")
        assert [e["loc"] for e in malformed.json()["errors"]] == [where], malformed.text
        assert "function" not in malformed.text
    duplicate = await rank(a, [pair["id"], pair["id"]])
    assert duplicate.status_code == 422
    elsewhere = await world.wish("C3")
    outside = await rank(a, [elsewhere["id"]])
    # As from a rush claim: a conflict with the pool, not malformed input.
    assert_problem(outside, 409, "not_in_event")
    assert outside.json()["wish_ids"] == [elsewhere["id"]]
    too_many = await rank(a, [str(i) for i in range(1, 30)])
    assert too_many.status_code == 422

    closed = await api.client.post(f"/v1/claim-events/{event['id']}/close", headers=world.organizer)
    assert closed.status_code == 200, closed.text
    allocation = await api.client.get(f"/v1/claim-events/{event['id']}/allocation", headers=a)
    assert allocation.status_code == 200, allocation.text
    body = allocation.json()
    assert body["identical"] is True
    got = {(p["wish_id"], p["member_id"]) for p in body["result"]["pairs"]}
    assert got == {(popular["id"], b_id), (pair["id"], a_id), (spare["id"], c_id)}
    assert all(p["claim_id"] for p in body["result"]["pairs"])
    claims = (await api.client.get("/v1/me/claims", headers=a)).json()["items"]
    assert [(x["wish_id"], x["source"], x["event_id"]) for x in claims] == [
        (pair["id"], "event", event["id"])
    ]
    assert await violations(api.settings.database_url) == {}
    assert await event_violations(api) == {}


async def test_allocation_hands_out_only_what_can_still_be_claimed(world: World) -> None:
    """A wish cancelled while pooled is left out (its rankers get their next choice), and a
    member cannot rank a wish they claimed before the event."""
    api = world.api
    shared = await world.wish("C1", slots=2)
    gone = await world.wish("C1")
    kept = await world.wish("C2")
    holder, _ = await world.member("C1")
    assert (await world.claim(shared["id"], holder)).status_code == 201
    event = (await create_event(world, mode="allocate", per_member_quota=1)).json()
    await api.client.post(f"/v1/claim-events/{event['id']}/open", headers=world.organizer)
    url = f"/v1/claim-events/{event['id']}/preferences"
    held = await api.client.put(url, json=[shared["id"]], headers=holder)
    assert_problem(held, 409, "already_claimed")
    assert held.json()["wish_ids"] == [shared["id"]]
    ranker, ranker_id = await world.member("C3")
    other, other_id = await world.member("C3")
    assert (await api.client.put(url, json=[gone["id"], kept["id"]], headers=ranker)).is_success
    assert (await api.client.put(url, json=[shared["id"]], headers=other)).is_success
    cancelled = await api.client.post(
        f"/v1/wishes/{gone['id']}/cancel", json={"reason": "已解决"}, headers=world.organizer
    )
    assert cancelled.status_code == 200, cancelled.text

    closed = await api.client.post(f"/v1/claim-events/{event['id']}/close", headers=world.organizer)
    assert closed.status_code == 200, closed.text
    body = (
        await api.client.get(f"/v1/claim-events/{event['id']}/allocation", headers=ranker)
    ).json()
    assert gone["id"] not in {w["wish_id"] for w in body["inputs"]["wishes"]}
    pairs = {(p["wish_id"], p["member_id"]): p["claim_id"] for p in body["result"]["pairs"]}
    assert set(pairs) == {(kept["id"], ranker_id), (shared["id"], other_id)}
    assert all(pairs.values())
    assert body["identical"] is True
    assert await violations(api.settings.database_url) == {}
    assert await event_violations(api) == {}


async def test_rankings_sent_at_once_replace_each_other(world: World) -> None:
    api = world.api
    wishes = [await world.wish("C1") for _ in range(3)]
    event = (await create_event(world, mode="allocate")).json()
    await api.client.post(f"/v1/claim-events/{event['id']}/open", headers=world.organizer)
    member, _ = await world.member("C3")
    url = f"/v1/claim-events/{event['id']}/preferences"
    orders = [[w["id"] for w in wishes[n:] + wishes[:n]] for n in range(3)] * 3
    sent = await asyncio.gather(*(api.client.put(url, json=o, headers=member) for o in orders))
    assert [r.status_code for r in sent] == [200] * len(orders), [r.text for r in sent]
    mine = (await api.client.get(url, headers=member)).json()["wish_ids"]
    assert mine in orders


async def test_allocation_queues_behind_a_claim_instead_of_deadlocking(world: World) -> None:
    """A claim transaction locks its wish, then its member. One holding a pooled wish and
    then wanting a member the allocation claims for must make the close wait, not deadlock."""
    api = world.api
    first_wish = await world.wish("C1")
    last_wish = await world.wish("C2")
    event = (await create_event(world, mode="allocate", per_member_quota=1)).json()
    await api.client.post(f"/v1/claim-events/{event['id']}/open", headers=world.organizer)
    first, first_id = await world.member("C3")
    last, _ = await world.member("C3")
    for headers, wish in ((first, first_wish), (last, last_wish)):
        ranked = await api.client.put(
            f"/v1/claim-events/{event['id']}/preferences", json=[wish["id"]], headers=headers
        )
        assert ranked.status_code == 200, ranked.text
    async with other_transaction(api.settings.async_database_url) as claim:
        await lock_row(claim, "wishes", "id", last_wish["id"])
        close = asyncio.create_task(
            api.client.post(f"/v1/claim-events/{event['id']}/close", headers=world.organizer)
        )
        await until_someone_waits(claim, close)
        await lock_row(claim, "members", "user_id", first_id)
    closed = await close
    assert closed.status_code == 200, closed.text
    allocation = await api.client.get(f"/v1/claim-events/{event['id']}/allocation", headers=first)
    assert [bool(p["claim_id"]) for p in allocation.json()["result"]["pairs"]] == [True, True]
    assert await violations(api.settings.database_url) == {}
    assert await event_violations(api) == {}


async def test_claiming_a_held_wish_again_at_the_quota_is_already_claimed(world: World) -> None:
    """A double tap in a rush: the member's quota is spent by this very wish, and both
    databases answer already_claimed (not quota_reached)."""
    api = world.api
    shared = await world.wish("C1", slots=3)
    event = (await create_event(world, per_member_quota=1)).json()
    await api.client.post(f"/v1/claim-events/{event['id']}/open", headers=world.organizer)
    member, _ = await world.member("C3")
    assert (await event_claim(world, event["id"], shared["id"], member)).status_code == 201
    again = await event_claim(world, event["id"], shared["id"], member)
    assert again.status_code == 409
    assert again.json()["code"] == "already_claimed"
    # Once the event is over, that is the answer on both databases, held wish or not.
    await api.client.post(f"/v1/claim-events/{event['id']}/close", headers=world.organizer)
    late = await event_claim(world, event["id"], shared["id"], member)
    assert_problem(late, 409, "invalid_state")
    assert late.json()["current_state"] == "closed"


async def test_a_wish_one_published_cannot_be_ranked(world: World) -> None:
    api = world.api
    for_name = await world.wish("C1", by=world.organizer, on_behalf_of={"name": "王奶奶"})
    event = (await create_event(world, mode="allocate")).json()
    await api.client.post(f"/v1/claim-events/{event['id']}/open", headers=world.organizer)
    await api.client.post(
        "/v1/members", json={"community_id": world.regions["C1"]}, headers=world.organizer
    )
    organizer_id = (await api.client.get("/v1/me", headers=world.organizer)).json()["id"]
    await api.client.post(f"/v1/members/{organizer_id}/approve", headers=world.admin)
    ranked = await api.client.put(
        f"/v1/claim-events/{event['id']}/preferences",
        json=[for_name["id"]],
        headers=world.organizer,
    )
    assert ranked.status_code == 409
    assert ranked.json()["code"] == "own_wish"


async def test_cancelled_wish_gives_the_event_quota_back(world: World) -> None:
    api = world.api
    first = await world.wish("C1")
    second = await world.wish("C2")
    event = (await create_event(world, per_member_quota=1)).json()
    await api.client.post(f"/v1/claim-events/{event['id']}/open", headers=world.organizer)
    member, _ = await world.member("C3")
    assert (await event_claim(world, event["id"], first["id"], member)).status_code == 201
    assert (await event_claim(world, event["id"], second["id"], member)).json()["code"] == (
        "quota_reached"
    )
    cancelled = await api.client.post(
        f"/v1/wishes/{first['id']}/cancel", json={"reason": "已解决"}, headers=world.resident
    )
    assert cancelled.status_code == 200, cancelled.text
    assert (await event_claim(world, event["id"], second["id"], member)).status_code == 201
    assert await violations(api.settings.database_url) == {}
    assert await event_violations(api) == {}


async def test_event_claims_are_rate_limited_per_member(world: World) -> None:
    api = world.api
    wishes = [await world.wish("C1") for _ in range(3)]
    event = (await create_event(world, per_member_quota=3)).json()
    await api.client.post(f"/v1/claim-events/{event['id']}/open", headers=world.organizer)
    member, _ = await world.member("C3")
    other, _ = await world.member("C3")
    limited = create_app(
        make_settings(api.settings.database_url, event_claim_rate_limit="2/minute")
    )
    async with limited.router.lifespan_context(limited):
        transport = httpx.ASGITransport(app=limited)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:

            async def claim(wish: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
                return await client.post(
                    f"/v1/claim-events/{event['id']}/claims",
                    json={"wish_id": wish["id"]},
                    headers=headers,
                )

            assert (await claim(wishes[0], member)).status_code == 201
            assert (await claim(wishes[0], member)).status_code == 409  # counted too
            refused = await claim(wishes[1], member)
            assert refused.status_code == 429
            assert refused.json()["code"] == "rate_limited"
            assert int(refused.headers["Retry-After"]) >= 1
            # Per member: another member is not held back.
            assert (await claim(wishes[1], other)).status_code == 201
    claims = await api.sql("SELECT count(*) FROM claims WHERE event_id IS NOT NULL")
    assert claims[0][0] == 2


async def test_stream_and_board_access(world: World) -> None:
    api = world.api
    event = (await create_event(world)).json()
    stream = f"/v1/claim-events/{event['id']}/stream"
    anonymous = await api.client.get(stream)
    assert anonymous.status_code == 401
    wrong = await api.client.get(stream + "?board_token=nope")
    assert wrong.status_code == 404
    member, _ = await world.member("C3")
    draft = await api.client.get(stream, headers=member)  # a draft is not shown to members
    assert draft.status_code == 404
    board = await api.client.get(f"/board/events/{event['id']}")
    assert board.status_code == 200
    assert board.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in board.headers["content-security-policy"]
    page = board.text
    assert 'lang="zh-CN"' in page
    assert "EventSource" in page
    assert "http://" not in page  # no external assets
    assert "https://" not in page
    # With its token the board opens; an unknown event or a wrong token is a 404.
    token = event["board_url"].split("token=")[1]
    assert (await api.client.get(f"/board/events/{event['id']}?token={token}")).status_code == 200
    assert_problem(
        await api.client.get(f"/board/events/{event['id']}?token=nope"), 404, "not_found"
    )
    assert_problem(await api.client.get("/board/events/987654"), 404, "not_found")


async def test_bad_input_changes_nothing(world: World) -> None:
    api = world.api
    event = (await create_event(world)).json()
    for path, body in [
        ("/v1/claim-events", {"title": "", "community_ids": [world.regions["C1"]]}),
        ("/v1/claim-events", {"title": "x" * 81, "community_ids": [world.regions["C1"]]}),
        ("/v1/claim-events", {"title": "x", "community_ids": []}),
        ("/v1/claim-events", {"title": "x", "community_ids": ["abc"]}),
        ("/v1/claim-events", {"title": "x", "community_ids": [world.regions["C1"]], "x": 1}),
        (
            "/v1/claim-events",
            {
                "title": "x",
                "community_ids": [world.regions["C1"]],
                "starts_at": "2026-12-01T09:00:00",
            },
        ),
        (f"/v1/claim-events/{event['id']}/claims", {"wish_id": "1", "slots": 0}),
        (f"/v1/claim-events/{event['id']}/claims", {"slots": 1}),
        (f"/v1/claim-events/{event['id']}/wishes", {"wish_ids": []}),
    ]:
        response = await api.client.post(path, json=body, headers=world.organizer)
        assert response.status_code == 422, (path, body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    too_long = await api.client.get("/v1/claim-events?limit=101", headers=world.organizer)
    assert too_long.status_code == 422
    unknown = await api.client.get("/v1/claim-events/99999", headers=world.organizer)
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "not_found"
    huge = await api.client.get("/v1/claim-events/99999999999999999999", headers=world.organizer)
    assert huge.status_code == 422
    listed = await api.client.get("/v1/claim-events", headers=world.organizer)
    assert len(listed.json()["items"]) == 1


async def test_a_feed_read_that_fails_announces_its_rows_on_the_next(world: World) -> None:
    """The live feed folds a read's rows into its board only once the read's transaction
    has ended well: a read that fails (here, at its commit) changes nothing, and the next
    read still announces the claims written since the last good one."""
    from contextlib import asynccontextmanager

    from app.core.db import create_database
    from app.events.live import LiveFeeds, _Feed, _state

    api = world.api
    wishes = [await world.wish("C1"), await world.wish("C2")]
    event_id = (await create_event(world)).json()["id"]
    opened = await api.client.post(f"/v1/claim-events/{event_id}/open", headers=world.organizer)
    assert opened.status_code == 200, opened.text

    database = create_database(api.settings)
    feeds = LiveFeeds(database, api.settings)
    try:
        feed = _Feed(int(event_id))
        inbox: asyncio.Queue[str] = asyncio.Queue()
        feed.subscribers.add(inbox)
        fresh = await feeds._snapshot(int(event_id))
        assert fresh is not None
        feed.state = _state(fresh[0].status, fresh[1])
        first = await feeds._read(feed)  # the mirror's full read
        assert first is not None
        feeds._advance(feed, feed.state, *first)
        assert inbox.empty()

        member, _ = await world.member("C1")
        claimed = await event_claim(world, event_id, wishes[0]["id"], member)
        assert claimed.status_code == 201, claimed.text
        mirror = feed.mirror
        assert mirror is not None
        point = mirror.read_point

        working = feeds.reader.transaction

        @asynccontextmanager
        async def failing(*, write: bool) -> Any:
            async with working(write=write) as session:
                yield session
            raise ConnectionError("the read's COMMIT failed")

        feeds.reader.transaction = failing  # type: ignore[method-assign]
        with pytest.raises(ConnectionError):
            await feeds._read(feed)
        feeds.reader.transaction = working  # type: ignore[method-assign]
        assert feed.mirror is mirror
        assert mirror.read_point == point
        assert int(claimed.json()["id"]) not in mirror.board.claims

        read = await feeds._read(feed)
        assert read is not None
        feeds._advance(feed, feed.state, *read)
        told = "".join(inbox.get_nowait() for _ in range(inbox.qsize()))
        assert "event: claim" in told
        assert f'"claim_id":"{claimed.json()["id"]}"' in told
    finally:
        await feeds.close()
        await database.dispose()


@pytest.mark.parametrize(
    ("accept", "csv"),
    [
        ("text/csv", True),
        (None, False),
        ("application/json", False),
        ("text/csv, application/json;q=0.1", True),
        ("application/json;q=0, text/csv", True),
        ("text/csv, application/json", False),  # a tie: JSON
        ("text/csv;q=0", False),
        ("*/*", False),
    ],
)
def test_the_report_follows_accept_q_values(accept: str | None, csv: bool) -> None:
    from app.events.router import _prefers_csv

    assert _prefers_csv(accept) is csv
