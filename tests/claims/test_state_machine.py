"""A stateful property test of the claim state machine: hypothesis drives random sequences of
claims, withdrawals, fulfilments, revocations, cancellations and confirmations through the
real HTTP API (in-process), predicts every answer from a small in-memory model, and after
every step checks the database's counters and invariants against the model.

Every example starts from emptied tables holding the same small district and a fresh app. The
district (admin, organizer, resident, three approved members) is built through the API once
per database and its rows are copied back after each emptying: building it per example would
cost most of the run, and of every shrink step when the test fails. The app runs on an event
loop in a thread (an anyio blocking portal) because hypothesis drives the machine
synchronously.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import Integer, Table, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.core import security
from app.core.config import normalize_database_url
from app.core.db import Base
from app.main import create_app
from tests.conftest import REFERENCE_TABLES, Api, empty_all_tables, make_settings
from tests.world import World, build_world

CHEAP_PASSWORD_HASH = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
MEMBER_COUNT = 3
ENDED_BY = {"withdraw": "withdrawn", "fulfil": "fulfilled", "revoke": "revoked"}
# Wish states in which a claim may be active and the wish may still be cancelled.
LIVE = ("open", "claimed")


@dataclass
class WishModel:
    id: str
    slots_total: int
    status: str = "open"
    slots_claimed: int = 0  # active + fulfilled claims
    slots_fulfilled: int = 0


@dataclass
class MemberModel:
    id: str
    headers: dict[str, str]
    capacity: int
    active_claims: int = 0


@dataclass
class ClaimModel:
    id: str
    wish: str
    member: int  # index into ClaimMachine.members
    slots: int
    status: str = "active"


@dataclass(frozen=True)
class Expected:
    status: int
    code: str | None = None


@dataclass
class Answer:
    status: int
    body: Any = field(repr=False)

    @property
    def code(self) -> str | None:
        if self.status < 400 or not isinstance(self.body, dict):
            return None
        code = self.body.get("code")
        return code if isinstance(code, str) else None


@dataclass(frozen=True)
class District:
    """The people every example starts with, and the database rows that make them."""

    world: World
    members: list[tuple[dict[str, str], str]]  # headers and user id of each member
    rows: dict[str, list[dict[str, Any]]]  # table name -> rows, parents first


def copyable_tables() -> list[Table]:
    return [table for table in Base.metadata.sorted_tables if table.name not in REFERENCE_TABLES]


async def build_district(url: str) -> District:
    await empty_all_tables(url)
    app_settings = make_settings(url)
    app = create_app(app_settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        world = await build_world(Api(client, app_settings))
        members = [await world.member(capacity=3) for _ in range(MEMBER_COUNT)]
    engine = create_async_engine(normalize_database_url(url))
    try:
        async with engine.connect() as connection:
            rows: dict[str, list[dict[str, Any]]] = {}
            for table in copyable_tables():
                query = table.select().order_by(*table.primary_key.columns)
                result = await connection.execute(query)
                rows[table.name] = [dict(row) for row in result.mappings()]
    finally:
        await engine.dispose()
    return District(world=world, members=members, rows=rows)


class ClaimMachine(RuleBasedStateMachine):
    database_url: ClassVar[str] = ""
    district: ClassVar[District]

    active_claims = Bundle("active_claims")
    ended_claims = Bundle("ended_claims")

    def __init__(self) -> None:
        super().__init__()
        assert self.database_url, "run through test_claim_state_machine, which sets it"
        self.exits = ExitStack()
        self.portal: BlockingPortal = self.exits.enter_context(start_blocking_portal())
        try:
            self.engine: AsyncEngine = create_async_engine(
                normalize_database_url(self.database_url)
            )
            self.exits.callback(self._dispose_engine)
        except BaseException:
            self.exits.close()
            raise
        self.client: httpx.AsyncClient | None = None
        self.world = self.district.world
        self.members: list[MemberModel] = []
        self.wishes: dict[str, WishModel] = {}
        self.claim_models: dict[str, ClaimModel] = {}
        self.touched: str | None = None  # the wish the last step changed
        self.plan: tuple[list[int], list[int]] = ([], [])

    @initialize(
        capacities=st.lists(st.integers(1, 3), min_size=MEMBER_COUNT, max_size=MEMBER_COUNT),
        wish_slots=st.lists(st.integers(1, 3), min_size=2, max_size=3),
    )
    def populate(self, capacities: list[int], wish_slots: list[int]) -> None:
        # Only the draw: the example is set up when its first rule runs. Swarm testing often
        # disables every rule that could run first, and hypothesis then discards the example
        # before any rule; setting up here would make each of those cost a full setup.
        self.plan = (capacities, wish_slots)

    def start(self) -> None:
        """Empty tables, the district's rows with the drawn capacities, a fresh app, and
        the drawn wishes, published and approved through the API."""
        if self.client is not None:
            return
        capacities, wish_slots = self.plan
        self.portal.call(empty_all_tables, self.database_url)
        self.portal.call(self._restore_district, capacities)
        app_settings = make_settings(self.database_url)
        app = create_app(app_settings)
        self.exits.enter_context(
            self.portal.wrap_async_context_manager(app.router.lifespan_context(app))
        )
        self.client = self.exits.enter_context(
            self.portal.wrap_async_context_manager(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://testserver"
                )
            )
        )
        self.world = replace(self.district.world, api=Api(self.client, app_settings))
        for (headers, user_id), capacity in zip(self.district.members, capacities, strict=True):
            self.members.append(MemberModel(id=user_id, headers=headers, capacity=capacity))
        for slots in wish_slots:
            wish = self.portal.call(self._publish_wish, slots)
            assert wish["status"] == "open"
            self.wishes[wish["id"]] = WishModel(id=wish["id"], slots_total=slots)

    async def _restore_district(self, capacities: list[int]) -> None:
        rows = dict(self.district.rows)
        member_ids = [user_id for _, user_id in self.district.members]
        capacity_of = dict(zip(member_ids, capacities, strict=True))
        rows["members"] = [
            {**row, "capacity": capacity_of.get(str(row["user_id"]), row["capacity"])}
            for row in rows["members"]
        ]
        async with self.engine.begin() as connection:
            for table in copyable_tables():
                if rows.get(table.name):
                    await connection.execute(table.insert(), rows[table.name])
            if connection.dialect.name == "postgresql":
                # The emptying restarted every id sequence; move them past the copied ids
                # (a key without a sequence makes this a no-op).
                for table in copyable_tables():
                    keys = list(table.primary_key.columns)
                    if (
                        rows.get(table.name)
                        and len(keys) == 1
                        and isinstance(keys[0].type, Integer)
                    ):
                        await connection.execute(
                            text("SELECT setval(pg_get_serial_sequence(:table, :column), :id)"),
                            {
                                "table": table.name,
                                "column": keys[0].name,
                                "id": max(row[keys[0].name] for row in rows[table.name]),
                            },
                        )

    async def _publish_wish(self, slots: int) -> dict[str, Any]:
        return await self.world.wish(slots=slots)

    def _dispose_engine(self) -> None:
        self.portal.call(self.engine.dispose)

    def teardown(self) -> None:
        self.exits.close()

    # -- plumbing ---------------------------------------------------------------------------

    def request(
        self, method: str, path: str, headers: dict[str, str], body: object = None
    ) -> Answer:
        self.start()
        client = self.client
        assert client is not None

        async def send() -> httpx.Response:
            return await client.request(method, path, json=body, headers=headers)

        response = self.portal.call(send)
        return Answer(response.status_code, response.json() if response.content else None)

    def check(self, answer: Answer, expected: Expected, what: str) -> None:
        assert (answer.status, answer.code) == (expected.status, expected.code), (
            f"{what}: expected {expected}, got {answer.status} {answer.body}"
        )

    def wish_id_of(self, index: int) -> str:
        return list(self.wishes)[index % len(self.wishes)]

    def live_claim(self, wish_id: str, member: int) -> ClaimModel | None:
        for claim in self.claim_models.values():
            if (
                claim.wish == wish_id
                and claim.member == member
                and claim.status in ("active", "fulfilled")
            ):
                return claim
        return None

    # -- rules ------------------------------------------------------------------------------

    @rule(
        target=active_claims,
        member=st.integers(0, MEMBER_COUNT - 1),
        wish_index=st.integers(0, 2),
        slots=st.one_of(st.just(1), st.integers(1, 3)),  # mostly 1: fewer wish_full
    )
    def claim(self, member: int, wish_index: int, slots: int) -> str | MultipleResults[str]:
        self.start()  # the first rule of every example: the others need a claim to exist
        wish = self.wishes[self.wish_id_of(wish_index)]
        claimer = self.members[member]
        # The order of the answers: a live wish the member holds already, then the wish's
        # conditional UPDATE, then the member's capacity.
        if wish.status in LIVE and self.live_claim(wish.id, member) is not None:
            expected = Expected(409, "already_claimed")
        elif wish.status != "open" or wish.slots_claimed + slots > wish.slots_total:
            # Every wish here was published, so a closed one gets a reason, not a 404.
            expected = Expected(409, "wish_full" if wish.status in LIVE else "not_claimable")
        elif claimer.active_claims >= claimer.capacity:
            expected = Expected(409, "capacity_reached")
        else:
            expected = Expected(201)
        answer = self.request(
            "POST", f"/v1/wishes/{wish.id}/claims", claimer.headers, {"slots": slots}
        )
        self.check(answer, expected, f"claim {slots} of {wish} by member {member}")
        if answer.status != 201:
            return multiple()
        self.touched = wish.id
        body = answer.body
        assert (body["status"], body["slots"], body["wish_id"], body["member_id"]) == (
            "active",
            slots,
            wish.id,
            claimer.id,
        )
        claim_id: str = body["id"]
        self.claim_models[claim_id] = ClaimModel(
            id=claim_id, wish=wish.id, member=member, slots=slots
        )
        wish.slots_claimed += slots
        if wish.slots_claimed == wish.slots_total:
            wish.status = "claimed"
        claimer.active_claims += 1
        return claim_id

    # A claim drawn from ``active_claims`` was active when last seen (a cancellation may
    # have revoked it since); whatever happens to it, it moves to ``ended_claims``, from
    # which every action must then be refused.

    @rule(target=ended_claims, claim_id=consumes(active_claims))
    def withdraw(self, claim_id: str) -> str:
        self.act_on(claim_id, "withdraw")
        return claim_id

    @rule(target=ended_claims, claim_id=consumes(active_claims))
    def fulfil(self, claim_id: str) -> str:
        self.act_on(claim_id, "fulfil")
        return claim_id

    @rule(target=ended_claims, claim_id=consumes(active_claims))
    def revoke(self, claim_id: str) -> str:
        self.act_on(claim_id, "revoke")
        return claim_id

    @rule(claim_id=ended_claims, action=st.sampled_from(["withdraw", "fulfil", "revoke"]))
    def act_on_ended_claim(self, claim_id: str, action: str) -> None:
        assert self.claim_models[claim_id].status != "active"
        self.act_on(claim_id, action)

    def act_on(self, claim_id: str, action: str) -> None:
        claim = self.claim_models[claim_id]
        if action == "revoke":
            answer = self.request(
                "POST",
                f"/v1/claims/{claim_id}/revoke",
                self.world.organizer,
                {"reason": "长期未联系居民"},
            )
        else:
            answer = self.request(
                "POST",
                f"/v1/claims/{claim_id}/{action}",
                self.members[claim.member].headers,
                {"note": "送到了"} if action == "fulfil" else None,
            )
        active = claim.status == "active"
        self.check(
            answer,
            Expected(200) if active else Expected(409, "invalid_state"),
            f"{action} {claim}",
        )
        if not active:
            assert answer.body["current_state"] == claim.status, answer.body
            return
        self.touched = claim.wish
        wish = self.wishes[claim.wish]
        member = self.members[claim.member]
        claim.status = ENDED_BY[action]
        assert answer.body["status"] == claim.status, answer.body
        member.active_claims -= 1
        if action == "fulfil":
            wish.slots_fulfilled += claim.slots
            if wish.slots_fulfilled == wish.slots_total:
                wish.status = "fulfilled"
        else:  # the slots return and a full wish reopens
            wish.slots_claimed -= claim.slots
            if wish.status == "claimed":
                wish.status = "open"

    # Cancelling and confirming end a wish for good: kept for when they can matter (some
    # claim to revoke, some wish to confirm) so that sequences don't close every wish early.
    # They still pick any wish, so their refusals come up too.
    @precondition(lambda self: any(c.status == "active" for c in self.claim_models.values()))
    @rule(wish_index=st.integers(0, 2))
    def cancel(self, wish_index: int) -> None:
        wish = self.wishes[self.wish_id_of(wish_index)]
        allowed = wish.status in ("pending_review", *LIVE) and wish.slots_fulfilled == 0
        answer = self.request("POST", f"/v1/wishes/{wish.id}/cancel", self.world.resident, {})
        self.check(
            answer,
            Expected(200) if allowed else Expected(409, "invalid_state"),
            f"cancel {wish}",
        )
        if allowed:
            assert (answer.body["status"], answer.body["slots_claimed"]) == ("cancelled", 0)
            wish.status = "cancelled"
            self.touched = wish.id
            wish.slots_claimed = 0
            for claim in self.claim_models.values():
                if claim.wish == wish.id and claim.status == "active":
                    claim.status = "revoked"
                    self.members[claim.member].active_claims -= 1

    @precondition(
        lambda self: any(w.status in ("fulfilled", "confirmed") for w in self.wishes.values())
    )
    @rule(wish_index=st.integers(0, 2))
    def confirm(self, wish_index: int) -> None:
        wish = self.wishes[self.wish_id_of(wish_index)]
        allowed = wish.status == "fulfilled"
        answer = self.request(
            "POST", f"/v1/wishes/{wish.id}/confirm", self.world.resident, {"rating": 5}
        )
        self.check(
            answer,
            Expected(200) if allowed else Expected(409, "invalid_state"),
            f"confirm {wish}",
        )
        if allowed:
            assert answer.body["status"] == "confirmed"
            wish.status = "confirmed"
            self.touched = wish.id

    @precondition(lambda self: bool(self.claim_models))
    @rule(member=st.integers(0, MEMBER_COUNT - 1))
    def my_claims(self, member: int) -> None:
        answer = self.request("GET", "/v1/me/claims?limit=100", self.members[member].headers)
        assert answer.status == 200, answer.body
        seen = {item["id"]: (item["wish_id"], item["status"]) for item in answer.body["items"]}
        expected = {
            claim.id: (claim.wish, claim.status)
            for claim in self.claim_models.values()
            if claim.member == member
        }
        assert seen == expected

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def database_and_api_agree_with_the_model(self) -> None:
        if self.client is None:
            return  # not started: no rule has run yet
        self.portal.call(self._check_database)
        # Every wish is compared in the database above; through the API, the one the last
        # step changed (reading every wish after every step would double the run time).
        if self.touched is not None:
            wish = self.wishes[self.touched]
            self.touched = None
            answer = self.request("GET", f"/v1/wishes/{wish.id}", self.world.resident)
            assert answer.status == 200, answer.body
            body = answer.body
            assert (body["status"], body["slots_claimed"], body["slots_fulfilled"]) == (
                wish.status,
                wish.slots_claimed,
                wish.slots_fulfilled,
            ), f"the API shows {body}, the model {wish}"

    async def _check_database(self) -> None:
        async with self.engine.connect() as connection:
            wishes = (
                await connection.execute(
                    text(
                        """
                        SELECT w.id, w.status, w.slots_total, w.slots_claimed,
                               w.slots_fulfilled,
                               COALESCE(SUM(CASE WHEN c.status IN ('active', 'fulfilled')
                                                 THEN c.slots ELSE 0 END), 0),
                               COALESCE(SUM(CASE WHEN c.status = 'fulfilled'
                                                 THEN c.slots ELSE 0 END), 0)
                        FROM wishes w LEFT JOIN claims c ON c.wish_id = w.id
                        GROUP BY w.id, w.status, w.slots_total, w.slots_claimed,
                                 w.slots_fulfilled
                        """
                    )
                )
            ).all()
            for wish_id, status, total, claimed, fulfilled, live_sum, fulfilled_sum in wishes:
                where = f"wish {wish_id} ({status})"
                assert claimed == live_sum, f"{where}: slots_claimed {claimed} != {live_sum}"
                assert 0 <= claimed <= total, f"{where}: slots_claimed {claimed} of {total}"
                assert fulfilled == fulfilled_sum, f"{where}: slots_fulfilled {fulfilled}"
            assert {str(row[0]): (row[1], row[3], row[4]) for row in wishes} == {
                wish.id: (wish.status, wish.slots_claimed, wish.slots_fulfilled)
                for wish in self.wishes.values()
            }, "the database's wishes differ from the model's"

            members = (
                await connection.execute(
                    text(
                        """
                        SELECT m.user_id, m.capacity, m.active_claims,
                               (SELECT COUNT(*) FROM claims c
                                WHERE c.member_id = m.user_id AND c.status = 'active')
                        FROM members m
                        """
                    )
                )
            ).all()
            by_id = {str(row[0]): row for row in members}
            for index, member in enumerate(self.members):
                _, capacity, active_claims, counted = by_id[member.id]
                where = f"member {index}"
                assert active_claims == counted, f"{where}: active_claims {active_claims}"
                assert active_claims <= capacity, f"{where}: over capacity"
                assert active_claims == member.active_claims, f"{where}: model disagrees"

            duplicates = (
                await connection.execute(
                    text(
                        """
                        SELECT wish_id, member_id, COUNT(*) FROM claims
                        WHERE status IN ('active', 'fulfilled')
                        GROUP BY wish_id, member_id HAVING COUNT(*) > 1
                        """
                    )
                )
            ).all()
            assert duplicates == [], f"more than one live claim per (wish, member): {duplicates}"

            claims = (await connection.execute(text("SELECT id, status FROM claims"))).all()
            assert {str(row[0]): row[1] for row in claims} == {
                claim.id: claim.status for claim in self.claim_models.values()
            }


def test_claim_state_machine(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Building the district registers six users: argon2 at its real cost (a few hundred ms a
    # user on a small machine) is not what this test is about.
    monkeypatch.setattr(security, "_password_hash", CHEAP_PASSWORD_HASH)

    class Machine(ClaimMachine):
        pass

    Machine.database_url = database_url
    with start_blocking_portal() as portal:
        Machine.district = portal.call(build_district, database_url)
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=10,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.function_scoped_fixture,
                # Examples discarded before their first rule (see ``populate``) cost nothing.
                HealthCheck.filter_too_much,
            ],
        ),
    )


# --- the claim statement's own explanation of a refusal ---------------------------------


def test_wish_seen_explains_only_a_full_wish() -> None:
    """``WishSeen.full_for`` answers "wish_full" only where the full explanation would: a
    published wish that is not the claimer's own, claimable this way, too full."""
    from app.claims.repository import WishSeen

    def seen(**changes: object) -> WishSeen:
        values: dict[str, object] = {
            "status": "open",
            "slots_claimed": 2,
            "slots_total": 3,
            "resident_id": 9,
            "creator_id": 8,
            "event_id": None,
            "event_takes_claims": True,
        }
        values.update(changes)
        return WishSeen(**values)  # type: ignore[arg-type]

    assert seen().full_for(1, 2, None)  # 2 + 2 > 3
    assert not seen().full_for(1, 1, None)  # fits: the refusal was something else
    assert seen(status="claimed", slots_claimed=3).full_for(1, 1, None)
    assert not seen(status="pending_review").full_for(1, 2, None)  # unpublished: maybe 404
    assert not seen(status="cancelled", slots_claimed=3).full_for(1, 1, None)  # not_claimable
    assert not seen(status=None).full_for(1, 2, None)  # no such wish
    assert not seen(resident_id=1).full_for(1, 2, None)  # own_wish comes first
    assert not seen(event_id=5).full_for(1, 2, None)  # in_event comes first
    assert seen(event_id=5).full_for(1, 2, 5)  # pooled in the event claimed through
    assert not seen(event_id=5, event_takes_claims=False).full_for(1, 2, 5)  # event closed
    assert not seen(event_id=None).full_for(1, 2, 5)  # not_in_event comes first
    assert not seen(held=True).full_for(1, 2, None)  # already_claimed comes first
