"""Demo data: the real street and community names of Yaohai District, Hefei (瑶海区),
filled out to the district's published shape (53 communities, 596 grids).

Idempotent: running it again adds nothing that is already there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.core.db import utcnow
from app.core.security import hash_password, verify_password
from app.demo.events import seed_events
from app.demo.people import DEMO_LOGINS, DEMO_PASSWORD, DemoAccounts, seed_people
from app.regions.models import Region, RegionKind

TARGET_COMMUNITIES = 53
TARGET_GRIDS = 596
# Generated community names: the street's own name with a direction, as many districts do.
_COMMUNITY_SUFFIXES = ("东", "西", "南", "北", "中", "新村", "花园", "苑", "里", "新城")

DEMO_ADMIN_PHONE = "+8613800000000"
DEMO_ADMIN_PASSWORD = "demo-admin-2026"


@dataclass
class DemoLogin:
    role: str
    phone: str
    password: str
    display_name: str


@dataclass
class SeedReport:
    streets: int = 0
    communities: int = 0
    grids: int = 0
    created_regions: bool = False
    logins: list[DemoLogin] | None = None
    people: DemoAccounts | None = None
    events: int = 0


def load_region_names() -> dict[str, Any]:
    data = resources.files("app.regions").joinpath("data/yaohai-regions.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(data)
    return loaded


def plan_communities(streets: list[dict[str, Any]], total: int) -> dict[str, list[str]]:
    """Named communities first, then generated ones round-robin until ``total``."""
    plan = {street["name"]: list(street["communities"]) for street in streets}
    stems = {name: name.removesuffix("街道").removesuffix("镇") for name in plan}
    counter = dict.fromkeys(plan, 0)
    names = list(plan)
    position = 0
    while sum(len(c) for c in plan.values()) < total:
        street = names[position % len(names)]
        position += 1
        while True:
            suffix = _COMMUNITY_SUFFIXES[counter[street] % len(_COMMUNITY_SUFFIXES)]
            round_number = counter[street] // len(_COMMUNITY_SUFFIXES)
            counter[street] += 1
            candidate = f"{stems[street]}{suffix}{round_number + 1 if round_number else ''}社区"
            if candidate not in plan[street]:
                plan[street].append(candidate)
                break
    return plan


async def _insert_level(
    session: AsyncSession, kind: RegionKind, rows: list[dict[str, Any]]
) -> None:
    now = utcnow()
    await session.execute(
        insert(Region), [{**row, "kind": kind.value, "created_at": now} for row in rows]
    )
    # Each region records its own id at its own level.
    column = getattr(Region, f"{kind.value}_id")
    await session.execute(
        update(Region)
        .where(Region.kind == kind.value, column.is_(None))
        .values({column: Region.id})
    )


async def seed_regions(session: AsyncSession, report: SeedReport) -> Region:
    data = load_region_names()
    district_name = data["district"]["name"]
    district = await session.scalar(
        select(Region).where(Region.parent_id.is_(None), Region.name == district_name)
    )
    if district is None:
        report.created_regions = True
        await _insert_level(
            session, RegionKind.district, [{"name": district_name, "parent_id": None}]
        )
        district = await session.scalar(
            select(Region).where(Region.parent_id.is_(None), Region.name == district_name)
        )
        assert district is not None
        await _insert_level(
            session,
            RegionKind.street,
            [
                {"name": street["name"], "parent_id": district.id, "district_id": district.id}
                for street in data["streets"]
            ],
        )
        streets = {
            region.name: region
            for region in await session.scalars(
                select(Region).where(Region.parent_id == district.id)
            )
        }
        plan = plan_communities(data["streets"], TARGET_COMMUNITIES)
        await _insert_level(
            session,
            RegionKind.community,
            [
                {
                    "name": community,
                    "parent_id": streets[street].id,
                    "district_id": district.id,
                    "street_id": streets[street].id,
                }
                for street, communities in plan.items()
                for community in communities
            ],
        )
        communities = (
            await session.scalars(
                select(Region)
                .where(Region.district_id == district.id, Region.kind == "community")
                .order_by(Region.id)
            )
        ).all()
        per_community, extra = divmod(TARGET_GRIDS, len(communities))
        await _insert_level(
            session,
            RegionKind.grid,
            [
                {
                    "name": f"第{number}网格",
                    "parent_id": community.id,
                    "district_id": district.id,
                    "street_id": community.street_id,
                    "community_id": community.id,
                }
                for index, community in enumerate(communities)
                for number in range(1, per_community + (1 if index < extra else 0) + 1)
            ],
        )
    for kind, field in (("street", "streets"), ("community", "communities"), ("grid", "grids")):
        count = await session.scalar(
            select(func.count())
            .select_from(Region)
            .where(Region.district_id == district.id, Region.kind == kind)
        )
        setattr(report, field, int(count or 0))
    return district


async def ensure_user(
    session: AsyncSession, *, phone: str, password: str, display_name: str, is_admin: bool = False
) -> User:
    """The user with this phone, made if there is none."""
    user = await session.scalar(select(User).where(User.phone == phone))
    if user is not None:
        return user
    user = User(
        phone=phone,
        display_name=display_name,
        password_hash=await hash_password(password),
        is_admin=is_admin,
    )
    session.add(user)
    await session.flush()
    return user


async def seed_demo(session: AsyncSession) -> SeedReport:
    report = SeedReport(logins=[])
    district = await seed_regions(session, report)
    admin = await ensure_user(
        session,
        phone=DEMO_ADMIN_PHONE,
        password=DEMO_ADMIN_PASSWORD,
        display_name="区管理员",
        is_admin=True,
    )
    assert report.logins is not None
    # An account someone made with that phone before (create-admin, say) keeps its own
    # password: printing the demo's would print a login that does not work.
    mine = await verify_password(DEMO_ADMIN_PASSWORD, admin.password_hash)
    report.logins.append(
        DemoLogin(
            "admin",
            DEMO_ADMIN_PHONE,
            DEMO_ADMIN_PASSWORD if mine else "(its own password: the account was there before)",
            admin.display_name,
        )
    )
    report.people = await seed_people(session, district.id)
    qilizhan = await session.scalar(
        select(Region.id).where(Region.name == "七里站街道", Region.kind == RegionKind.street.value)
    )
    if qilizhan is not None:
        report.events = await seed_events(session, street_id=qilizhan)
    for role, phone, name in DEMO_LOGINS:
        report.logins.append(DemoLogin(role, phone, DEMO_PASSWORD, name))
    return report
