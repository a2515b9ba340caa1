"""A small district built through the API, for tests that need people and places."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import Api

_phones = itertools.count(13900000000)


def next_phone() -> str:
    return str(next(_phones))


@dataclass
class World:
    api: Api
    admin: dict[str, str]
    organizer: dict[str, str]  # organizes street S1 (communities C1, C2)
    regions: dict[str, str]
    resident: dict[str, str]
    resident_id: str
    members: list[dict[str, str]] = field(default_factory=list)

    async def user(self, name: str = "用户") -> tuple[dict[str, str], str]:
        headers = await self.api.user_headers(next_phone(), display_name=name)
        me = (await self.api.client.get("/v1/me", headers=headers)).json()
        return headers, me["id"]

    async def member(
        self,
        community: str = "C1",
        *,
        capacity: int = 3,
        approve: bool = True,
        name: str = "志愿者",
    ) -> tuple[dict[str, str], str]:
        headers, user_id = await self.user(name)
        response = await self.api.client.post(
            "/v1/members",
            json={"community_id": self.regions[community], "capacity": min(capacity, 10)},
            headers=headers,
        )
        assert response.status_code == 201, response.text
        if capacity > 10:
            read = await self.api.client.get(f"/v1/members/{user_id}", headers=self.admin)
            changed = await self.api.client.patch(
                f"/v1/members/{user_id}",
                json={"capacity": capacity},
                headers={**self.admin, "If-Match": read.headers["etag"]},
            )
            assert changed.status_code == 200, changed.text
        if approve:
            approved = await self.api.client.post(
                f"/v1/members/{user_id}/approve", headers=self.admin
            )
            assert approved.status_code == 200, approved.text
        return headers, user_id

    async def wish(
        self,
        region: str = "C1",
        *,
        slots: int = 1,
        by: dict[str, str] | None = None,
        approve: bool = True,
        **fields: Any,
    ) -> dict[str, Any]:
        body = {
            "title": "需要一台轮椅",
            "description": "腿脚不便",
            "category": "disability_support",
            "region_id": self.regions[region],
            "slots_total": slots,
            "contact": {"phone": "13912345678", "address": "东七社区3栋201"},
            **fields,
        }
        response = await self.api.client.post("/v1/wishes", json=body, headers=by or self.resident)
        assert response.status_code == 201, response.text
        wish: dict[str, Any] = response.json()
        if approve and wish["status"] == "pending_review":
            approved = await self.api.client.post(
                f"/v1/wishes/{wish['id']}/approve", headers=self.admin
            )
            assert approved.status_code == 200, approved.text
            wish = approved.json()
        return wish

    async def claim(self, wish_id: str, headers: dict[str, str], slots: int = 1) -> Any:
        return await self.api.client.post(
            f"/v1/wishes/{wish_id}/claims", json={"slots": slots}, headers=headers
        )


async def build_world(api: Api) -> World:
    admin = await api.admin_headers()
    regions: dict[str, str] = {}

    async def region(key: str, kind: str, name: str, parent: str | None) -> None:
        body = {"kind": kind, "name": name, "parent_id": regions[parent] if parent else None}
        response = await api.client.post("/v1/regions", json=body, headers=admin)
        assert response.status_code == 201, response.text
        regions[key] = response.json()["id"]

    await region("D", "district", "瑶海区", None)
    await region("S1", "street", "七里站街道", "D")
    await region("S2", "street", "和平路街道", "D")
    await region("C1", "community", "东七社区", "S1")
    await region("C2", "community", "新安社区", "S1")
    await region("C3", "community", "当涂路社区", "S2")
    await region("G1", "grid", "第1网格", "C1")

    organizer = await api.user_headers(next_phone(), display_name="街道干部")
    me = (await api.client.get("/v1/me", headers=organizer)).json()
    granted = await api.client.post(
        f"/v1/regions/{regions['S1']}/organizers", json={"user_id": me["id"]}, headers=admin
    )
    assert granted.status_code == 201
    resident = await api.user_headers(next_phone(), display_name="王阿姨")
    resident_me = (await api.client.get("/v1/me", headers=resident)).json()
    return World(
        api=api,
        admin=admin,
        organizer=organizer,
        regions=regions,
        resident=resident,
        resident_id=resident_me["id"],
    )
