from __future__ import annotations

import pytest

from app.regions.access import Grant, Scope
from app.regions.models import Region
from tests.conftest import Api

pytestmark = pytest.mark.anyio


async def build_tree(api: Api, admin: dict[str, str]) -> dict[str, str]:
    ids: dict[str, str] = {}

    async def create(key: str, kind: str, name: str, parent: str | None) -> None:
        body = {"kind": kind, "name": name, "parent_id": ids[parent] if parent else None}
        response = await api.client.post("/v1/regions", json=body, headers=admin)
        assert response.status_code == 201, response.text
        ids[key] = response.json()["id"]

    await create("district", "district", "瑶海区", None)
    await create("street", "street", "七里站街道", "district")
    await create("other_street", "street", "和平路街道", "district")
    await create("community", "community", "东七社区", "street")
    await create("grid", "grid", "第1网格", "community")
    await create("other_community", "community", "当涂路社区", "other_street")
    return ids


async def test_admin_builds_the_tree(api: Api) -> None:
    admin = await api.admin_headers()
    ids = await build_tree(api, admin)
    response = await api.client.get(f"/v1/regions/{ids['grid']}")
    assert response.status_code == 200
    grid = response.json()
    assert grid["kind"] == "grid"
    assert grid["parent_id"] == ids["community"]
    assert grid["ancestor_ids"] == [ids["district"], ids["street"], ids["community"]]
    cached = await api.client.get(
        f"/v1/regions/{ids['grid']}", headers={"If-None-Match": response.headers["ETag"]}
    )
    assert cached.status_code == 304

    children = await api.client.get("/v1/regions", params={"parent_id": ids["district"]})
    assert [r["name"] for r in children.json()["items"]] == ["七里站街道", "和平路街道"]
    roots = await api.client.get("/v1/regions")
    assert [r["name"] for r in roots.json()["items"]] == ["瑶海区"]
    # A community picker: every community, whatever its street.
    communities = await api.client.get("/v1/regions", params={"kind": "community"})
    assert [r["name"] for r in communities.json()["items"]] == ["东七社区", "当涂路社区"]
    in_street = await api.client.get(
        "/v1/regions", params={"kind": "community", "parent_id": ids["other_street"]}
    )
    assert [r["name"] for r in in_street.json()["items"]] == ["当涂路社区"]


async def test_listing_pages_with_a_cursor(api: Api) -> None:
    admin = await api.admin_headers()
    ids = await build_tree(api, admin)
    names = [f"第{n}网格" for n in range(2, 8)]
    for name in names:
        response = await api.client.post(
            "/v1/regions",
            json={"kind": "grid", "name": name, "parent_id": ids["community"]},
            headers=admin,
        )
        assert response.status_code == 201
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"parent_id": ids["community"], "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await api.client.get("/v1/regions", params=params)).json()
        seen += [item["name"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["第1网格", *names]
    assert pages == 3


async def test_bad_listing_parameters(api: Api) -> None:
    too_many = await api.client.get("/v1/regions", params={"limit": 101})
    assert too_many.status_code == 422
    bad_cursor = await api.client.get("/v1/regions", params={"cursor": "not-a-cursor"})
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["code"] == "invalid_cursor"
    missing_parent = await api.client.get("/v1/regions", params={"parent_id": 999})
    assert missing_parent.status_code == 404
    huge = await api.client.get("/v1/regions/99999999999999999999999")
    assert huge.status_code == 422


async def test_non_admin_cannot_write_regions(api: Api) -> None:
    resident = await api.user_headers("13800138000")
    response = await api.client.post(
        "/v1/regions", json={"kind": "district", "name": "瑶海区"}, headers=resident
    )
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert response.json()["reason"] == "admin_required"
    assert response.json()["detail"] == "只有管理员可以执行此操作。"
    anonymous = await api.client.post("/v1/regions", json={"kind": "district", "name": "瑶海区"})
    assert anonymous.status_code == 401
    assert await api.sql("SELECT count(*) FROM regions") == [(0,)]


async def test_tree_shape_is_enforced(api: Api) -> None:
    admin = await api.admin_headers()
    ids = await build_tree(api, admin)
    cases = [
        ({"kind": "grid", "name": "x", "parent_id": ids["street"]}, 422, "invalid_region_parent"),
        ({"kind": "street", "name": "x"}, 422, "invalid_region_parent"),
        ({"kind": "district", "name": "x", "parent_id": ids["district"]}, 422, None),
        ({"kind": "community", "name": "东七社区", "parent_id": ids["street"]}, 409, None),
        ({"kind": "district", "name": "瑶海区"}, 409, "region_name_taken"),
        ({"kind": "grid", "name": "x", "parent_id": "999"}, 404, "not_found"),
        ({"kind": "planet", "name": "x"}, 422, "validation_failed"),
        ({"kind": "grid", "name": "  ", "parent_id": ids["community"]}, 422, None),
        ({"kind": "grid", "name": "x" * 61, "parent_id": ids["community"]}, 422, None),
    ]
    before = await api.sql("SELECT count(*) FROM regions")
    for body, status, code in cases:
        response = await api.client.post("/v1/regions", json=body, headers=admin)
        assert response.status_code == status, (body, response.text)
        if code:
            assert response.json()["code"] == code
    assert await api.sql("SELECT count(*) FROM regions") == before
    rooted = await api.client.post(
        "/v1/regions",
        json={"kind": "district", "name": "x", "parent_id": ids["district"]},
        headers={**admin, "Accept-Language": "en"},
    )
    assert rooted.json()["reason"] == "district_takes_no_parent"
    assert "leave parent_id out" in rooted.json()["detail"]


async def test_organizer_grants(api: Api) -> None:
    admin = await api.admin_headers()
    ids = await build_tree(api, admin)
    organizer = await api.user_headers("13900139000", display_name="社区书记")
    before_grant = await api.client.get("/v1/me", headers=organizer)
    me = before_grant.json()
    assert (
        await api.client.get(
            "/v1/me", headers={**organizer, "If-None-Match": before_grant.headers["ETag"]}
        )
    ).status_code == 304

    url = f"/v1/regions/{ids['street']}/organizers"
    granted = await api.client.post(url, json={"user_id": me["id"]}, headers=admin)
    assert granted.status_code == 201
    assert granted.json()["display_name"] == "社区书记"
    again = await api.client.post(url, json={"user_id": me["id"]}, headers=admin)
    assert again.status_code == 409
    assert again.json()["code"] == "grant_exists"
    by_organizer = await api.client.post(url, json={"user_id": me["id"]}, headers=organizer)
    assert by_organizer.status_code == 403
    unknown_user = await api.client.post(url, json={"user_id": "999"}, headers=admin)
    assert unknown_user.status_code == 404

    granted_me = await api.client.get(
        "/v1/me", headers={**organizer, "If-None-Match": before_grant.headers["ETag"]}
    )
    assert granted_me.status_code == 200  # the grant changed what /v1/me says
    me = granted_me.json()
    assert me["roles"] == ["resident", "organizer"]
    assert me["grants"] == [
        {"region_id": ids["street"], "region_kind": "street", "region_name": "七里站街道"}
    ]
    listed = (await api.client.get(url, headers=admin)).json()
    assert [g["user_id"] for g in listed["items"]] == [me["id"]]

    revoked = await api.client.delete(f"{url}/{me['id']}", headers=admin)
    assert revoked.status_code == 204
    me = (await api.client.get("/v1/me", headers=organizer)).json()
    assert me["roles"] == ["resident"]
    assert (await api.client.delete(f"{url}/{me['id']}", headers=admin)).status_code == 404


def test_scope_covers_exactly_the_granted_subtree() -> None:
    def region(kind: str, id_: int, **levels: int) -> Region:
        return Region(id=id_, kind=kind, name="r", **levels)

    street = region("street", 2, district_id=1, street_id=2)
    community = region("community", 3, district_id=1, street_id=2, community_id=3)
    grid = region("grid", 4, district_id=1, street_id=2, community_id=3, grid_id=4)
    other_community = region("community", 5, district_id=1, street_id=6, community_id=5)
    district = region("district", 1, district_id=1)

    scope = Scope(user_id=1, is_admin=False, grants=(Grant(region_id=2, kind="street"),))
    assert scope.covers(street)
    assert scope.covers(community)
    assert scope.covers(grid)
    assert not scope.covers(other_community)
    assert not scope.covers(district)
    assert Scope(user_id=1, is_admin=True, grants=()).covers(other_community)
    assert not Scope(user_id=1, is_admin=False, grants=()).covers(grid)
