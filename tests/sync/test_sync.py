"""Delta sync through the API: snapshots, deltas, tombstones, masking, pages, expiry."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.clock import run_jobs_once
from app.core.db import create_database, utcnow
from app.sync import tokens
from app.wishes.service import expire_overdue
from tests.conftest import Api
from tests.sync.replica import Replica, ServerState, assert_same, server_state
from tests.world import World, build_world

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(api: Api) -> World:
    return await build_world(api)


async def check(
    world: World, replica: Replica, headers: dict[str, str], communities: set[str]
) -> ServerState:
    """The replica holds exactly what the ordinary endpoints show this user."""
    me = (await world.api.client.get("/v1/me", headers=headers)).json()
    state = await server_state(world.api.client, headers, user_id=me["id"], communities=communities)
    assert_same(replica, state)
    return state


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


async def test_full_snapshot_then_deltas(world: World) -> None:
    api = world.api
    member, _ = await world.member("C1")
    open_wish = await world.wish("C1", slots=2)
    pending = await world.wish("C1", approve=False)
    elsewhere = await world.wish("C3")

    replica = Replica()
    full = await replica.pull(api.client, member)
    (first,) = full.pages
    assert first["reset"] is True
    assert first["has_more"] is False
    # The open wish of the member's community; not the pending one, not another community's.
    assert ids(first["wishes"]) == [open_wish["id"]]
    assert first["claims"] == first["notifications"] == first["tombstones"] == []
    assert first["wishes"][0]["contact"]["masked"] is True
    await check(world, replica, member, {world.regions["C1"]})

    # Nothing changed: nothing new (on PostgreSQL a delta may repeat what the copy holds).
    quiet = await replica.pull(api.client, member)
    assert quiet.pages[0]["reset"] is False
    assert quiet.none

    # The member claims: the wish comes again, now unmasked, with the claim.
    claimed = await world.claim(open_wish["id"], member)
    assert claimed.status_code == 201, claimed.text
    delta = await replica.pull(api.client, member)
    assert delta.changed == {
        "wishes": [open_wish["id"]],
        "claims": [claimed.json()["id"]],
        "notifications": [],
    }
    assert replica.wishes[open_wish["id"]]["contact"]["masked"] is False
    assert replica.claims[claimed.json()["id"]]["wish"]["status"] == "open"
    await check(world, replica, member, {world.regions["C1"]})

    # The resident: their own wishes in every state, and their notifications.
    resident = Replica()
    await resident.pull(api.client, world.resident)
    assert set(resident.wishes) == {open_wish["id"], pending["id"], elsewhere["id"]}
    assert {n["kind"] for n in resident.notifications.values()} >= {"wish_claimed"}
    # Resident communities are those of their wishes: C1 and C3.
    await check(world, resident, world.resident, {world.regions["C1"], world.regions["C3"]})

    # The organizer approves the pending wish: it enters the member's feed; the resident
    # gets it again and a notification.
    approved = await api.client.post(f"/v1/wishes/{pending['id']}/approve", headers=world.admin)
    assert approved.status_code == 200
    delta = await replica.pull(api.client, member)
    assert delta.changed["wishes"] == [pending["id"]]
    resident_delta = await resident.pull(api.client, world.resident)
    assert resident_delta.changed["wishes"] == [pending["id"]]
    (note,) = resident_delta.changed["notifications"]
    assert resident.notifications[note]["kind"] == "wish_approved"
    await check(world, replica, member, {world.regions["C1"]})
    await check(world, resident, world.resident, {world.regions["C1"], world.regions["C3"]})

    # Marking a notification read is a change too.
    read = await api.client.post(f"/v1/me/notifications/{note}/read", headers=world.resident)
    assert read.status_code == 200
    resident_delta = await resident.pull(api.client, world.resident)
    assert resident_delta.changed["notifications"] == [note]
    assert resident.notifications[note]["read_at"] is not None
    await check(world, resident, world.resident, {world.regions["C1"], world.regions["C3"]})


async def test_tombstones_when_wishes_leave_the_feed_or_become_invisible(world: World) -> None:
    api = world.api
    member, _ = await world.member("C1")
    other, _ = await world.member("C1")
    to_fill = await world.wish("C1", slots=1)
    to_cancel = await world.wish("C1")
    to_expire = await world.wish("C1", deadline=(utcnow() + timedelta(days=1)).isoformat())
    mine = await world.wish("C1", slots=2)
    replica = Replica()
    await replica.pull(api.client, member)
    assert set(replica.wishes) == {to_fill["id"], to_cancel["id"], to_expire["id"], mine["id"]}
    claim = (await world.claim(mine["id"], member)).json()

    # Claimed full by someone else: still visible, but no longer open in the community.
    assert (await world.claim(to_fill["id"], other)).status_code == 201
    # Cancelled: no longer visible to the member at all.
    cancelled = await api.client.post(
        f"/v1/wishes/{to_cancel['id']}/cancel", json={"reason": "不需要了"}, headers=world.resident
    )
    assert cancelled.status_code == 200
    # Expired by the clock.
    await api.sql(
        "UPDATE wishes SET deadline = :past WHERE id = :id",
        past=utcnow() - timedelta(minutes=1),
        id=int(to_expire["id"]),
    )
    database = create_database(api.settings)
    try:
        await run_jobs_once(database, [expire_overdue])
    finally:
        await database.dispose()

    delta = await replica.pull(api.client, member)
    assert sorted(delta.removed["wishes"]) == sorted(
        [to_fill["id"], to_cancel["id"], to_expire["id"]]
    )
    tombstones = [t for page in delta.pages for t in page["tombstones"]]
    assert {"type": "wish", "id": to_cancel["id"]} in tombstones
    assert set(replica.wishes) == {mine["id"]}
    await check(world, replica, member, {world.regions["C1"]})

    # The other member's view: the wish they hold stays (claimed, unmasked).
    other_replica = Replica()
    await other_replica.pull(api.client, other)
    assert other_replica.wishes[to_fill["id"]]["status"] == "claimed"
    assert other_replica.wishes[to_fill["id"]]["contact"]["masked"] is False

    # A wish the member holds a claim on stays while the claim lives, whatever its state;
    # once the claim ends and the wish is not open, it goes.
    assert (await world.claim(mine["id"], other)).status_code == 201  # now full
    delta = await replica.pull(api.client, member)
    assert delta.changed["wishes"] == [mine["id"]]
    assert replica.wishes[mine["id"]]["status"] == "claimed"
    revoked = await api.client.post(
        f"/v1/claims/{claim['id']}/revoke", json={"reason": "联系不上"}, headers=world.organizer
    )
    assert revoked.status_code == 200, revoked.text
    delta = await replica.pull(api.client, member)
    # Revoking gave the slot back: the wish is open again, so it stays, masked now.
    assert delta.changed["wishes"] == [mine["id"]]
    assert replica.wishes[mine["id"]]["contact"]["masked"] is True
    assert delta.changed["claims"] == [claim["id"]]
    assert replica.claims[claim["id"]]["status"] == "revoked"
    await check(world, replica, member, {world.regions["C1"]})
    # And the one remaining slot goes to a third member: out of the feed, a tombstone.
    third, _ = await world.member("C1")
    assert (await world.claim(mine["id"], third)).status_code == 201
    delta = await replica.pull(api.client, member)
    assert delta.removed["wishes"] == [mine["id"]]
    await check(world, replica, member, {world.regions["C1"]})


async def test_sync_shows_what_get_shows_to_each_viewer(world: World) -> None:
    """Masking and visibility are those of GET /v1/wishes/{id}, viewer by viewer."""
    api = world.api
    member, _ = await world.member("C1")
    published = await api.client.post(
        "/v1/wishes",
        json={
            "title": "帮忙买菜",
            "category": "daily_necessities",
            "region_id": world.regions["C2"],
            "contact": {"name": "李奶奶", "phone": "13700001111", "address": "新安社区1栋"},
            "on_behalf_of": {"name": "李奶奶"},
        },
        headers=world.organizer,
    )
    assert published.status_code == 201, published.text
    wish = await world.wish("C1", slots=2)  # stays open after one claim
    assert (await world.claim(wish["id"], member)).status_code == 201

    organizer = Replica()
    await organizer.pull(api.client, world.organizer)
    # The organizer published for someone without the app: theirs, unmasked.
    assert set(organizer.wishes) == {published.json()["id"]}
    assert organizer.wishes[published.json()["id"]]["contact"]["phone"] == "+8613700001111"
    await check(world, organizer, world.organizer, set())

    replica = Replica()
    await replica.pull(api.client, member)
    assert replica.wishes[wish["id"]]["contact"]["masked"] is False  # an active claimer
    await check(world, replica, member, {world.regions["C1"]})

    # Another member of C1 sees it masked, the phone as 139****5678.
    onlooker, _ = await world.member("C1")
    watcher = Replica()
    await watcher.pull(api.client, onlooker)
    seen = watcher.wishes[wish["id"]]["contact"]
    assert seen["masked"] is True
    assert seen["phone"] == "139****5678"
    await check(world, watcher, onlooker, {world.regions["C1"]})

    # Unmasked reads by a claimer are audited, as on GET.
    audited = await api.sql(
        "SELECT count(*) FROM contact_access_log WHERE wish_id = :id AND reason = 'claimer'",
        id=int(wish["id"]),
    )
    (count,) = audited[0]
    assert isinstance(count, int)
    assert count >= 1


async def test_pages_resume_and_end_with_the_first_pages_read_point(world: World) -> None:
    api = world.api
    member, _ = await world.member("C1", capacity=10)
    wishes = [await world.wish("C1", slots=2) for _ in range(7)]
    for wish in wishes[:4]:
        assert (await world.claim(wish["id"], member)).status_code == 201

    whole = Replica()
    await whole.pull(api.client, member)
    paged = Replica()
    pages = (await paged.pull(api.client, member, limit=2)).pages
    # 7 wishes + 4 claims, 2 a page (a full snapshot has no repeats).
    assert len(pages) == 6
    assert [p["reset"] for p in pages] == [True] + [False] * 5
    assert all(p["has_more"] for p in pages[:-1])
    assert sum(len(p["wishes"]) + len(p["claims"]) for p in pages) == 11
    assert paged.wishes == whole.wishes
    assert paged.claims == whole.claims

    # A change made between two pages comes (again) with the next pass.
    first = (await api.client.get("/v1/sync", params={"limit": 3}, headers=member)).json()
    paged = Replica()
    paged.apply(first)
    cancelled = await api.client.post(
        f"/v1/wishes/{wishes[0]['id']}/cancel", json={"reason": "已解决"}, headers=world.resident
    )
    assert cancelled.status_code == 200
    await paged.pull(api.client, member, limit=3)
    await paged.pull(api.client, member, limit=3)
    await check(world, paged, member, {world.regions["C1"]})

    # Deltas page the same way.
    await whole.pull(api.client, member)
    for wish in wishes[4:]:
        assert (await world.claim(wish["id"], member)).status_code == 201
    delta = await whole.pull(api.client, member, limit=1)
    assert len(delta.pages) >= 6  # 3 wishes and 3 claims, one a page (and any repeats)
    assert all(len(p["wishes"]) + len(p["claims"]) + len(p["tombstones"]) <= 1 for p in delta.pages)
    assert sorted(delta.changed["claims"], key=int) == sorted(
        (c["id"] for c in whole.claims.values() if c["wish_id"] in ids(wishes[4:])), key=int
    )
    await check(world, whole, member, {world.regions["C1"]})


async def test_a_change_of_what_the_sync_covers_resets_it(world: World) -> None:
    api = world.api
    user, user_id = await world.user("新干部")
    replica = Replica()
    await replica.pull(api.client, user)
    wish = await world.wish("C1")
    delta = await replica.pull(api.client, user)
    assert delta.pages[0]["reset"] is False
    assert delta.none
    # Made organizer of C1: the same wishes now show unmasked, though none changed.
    granted = await api.client.post(
        f"/v1/regions/{world.regions['C1']}/organizers",
        json={"user_id": user_id},
        headers=world.admin,
    )
    assert granted.status_code == 201
    # Becoming a member of C1 brings its open wishes into the sync.
    joined = await api.client.post(
        "/v1/members", json={"community_id": world.regions["C1"]}, headers=user
    )
    assert joined.status_code == 201
    delta = await replica.pull(api.client, user)
    assert delta.pages[0]["reset"] is True
    assert delta.changed["wishes"] == [wish["id"]]
    assert replica.wishes[wish["id"]]["contact"]["masked"] is False
    await check(world, replica, user, {world.regions["C1"]})


async def test_any_write_is_seen_even_one_the_app_did_not_make(world: World) -> None:
    """The triggers stamp every write, whatever statement made it."""
    api = world.api
    member, _ = await world.member("C1")
    wish = await world.wish("C1")
    replica = Replica()
    await replica.pull(api.client, member)
    await api.sql("UPDATE wishes SET title = '修好的轮椅' WHERE id = :id", id=int(wish["id"]))
    delta = await replica.pull(api.client, member)
    assert delta.changed["wishes"] == [wish["id"]]
    assert replica.wishes[wish["id"]]["title"] == "修好的轮椅"
    for table in ("wishes", "claims", "notifications"):
        zero = await api.sql(f"SELECT count(*) FROM {table} WHERE sync_version = 0")
        assert zero[0][0] == 0, table


async def test_old_foreign_and_bad_tokens(world: World) -> None:
    api = world.api
    member, _ = await world.member("C1")
    replica = Replica()
    await replica.pull(api.client, member)
    assert replica.token is not None
    token = tokens.decode(replica.token)

    def problem(response: Any, status: int, code: str) -> None:
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == code

    async def sync(**params: Any) -> Any:
        return await api.client.get("/v1/sync", params=params, headers=member)

    assert token.base_at is not None
    old = dataclasses.replace(token, base_at=token.base_at - 31 * 24 * 3600)
    problem(await sync(since=tokens.encode(old)), 410, "sync_token_expired")
    recent = dataclasses.replace(token, base_at=token.base_at - 29 * 24 * 3600)
    assert (await sync(since=tokens.encode(recent))).status_code == 200
    # A token of another database (or of this one before it was rebuilt).
    foreign = dataclasses.replace(token, epoch="0" * 32)
    problem(await sync(since=tokens.encode(foreign)), 410, "sync_token_expired")
    # Another user's token, garbage, a tampered one.
    other, _ = await world.member("C1")
    theirs = (await api.client.get("/v1/sync", headers=other)).json()["next_token"]
    problem(await sync(since=theirs), 422, "invalid_sync_token")
    for bad in ("x", "!!!", "eyJmIjoyfQ", replica.token[:-3], tokens.encode(token)[:20]):
        problem(await sync(since=bad), 422, "invalid_sync_token")
    problem(await sync(since="a" * 513), 422, "invalid_sync_token")  # the code to resync on
    problem(await sync(since=""), 422, "invalid_sync_token")
    problem(await sync(limit=101), 422, "validation_failed")
    problem(await sync(limit=0), 422, "validation_failed")
    assert (await api.client.get("/v1/sync")).status_code == 401
    # The English texts exist.
    english = await api.client.get(
        "/v1/sync", params={"since": "x"}, headers={**member, "Accept-Language": "en"}
    )
    assert english.json()["title"] == "Invalid sync token"


async def test_triggers_exist_on_every_synced_table(world: World) -> None:
    """A later SQLite batch migration that rebuilds a table would drop its triggers."""
    api = world.api
    engine = create_async_engine(api.settings.async_database_url)
    try:
        async with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                rows = await connection.execute(
                    text(
                        "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                        "WHERE t.tgname = c.relname || '_sync_stamp' AND t.tgenabled = 'O'"
                    )
                )
                assert {row[0] for row in rows} == {"wishes", "claims", "notifications"}
            else:
                rows = await connection.execute(
                    text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                )
                names = {row[0] for row in rows}
                for table in ("wishes", "claims", "notifications"):
                    assert {f"{table}_sync_insert", f"{table}_sync_update"} <= names
    finally:
        await engine.dispose()
