"""Demo people and wishes: organizers, ~3,000 members with rosters, residents and ~5,000
wishes across every state, with claims that satisfy every invariant. Deterministic (one
random seed) and bulk-inserted, so it loads in seconds."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import User
from app.claims.models import Claim
from app.core.db import utcnow
from app.core.security import hash_password
from app.members.models import Member, MemberArea, MemberResource, MemberResourceRegion
from app.regions.models import OrganizerGrant, Region
from app.wishes.models import Wish

DEMO_PASSWORD = "demo-pass-2026"
MEMBER_COUNT = 3000
RESIDENT_COUNT = 2000
WISH_COUNT = 5000
FIRST_MEMBER_PHONE = 13900000000
FIRST_RESIDENT_PHONE = 13700000000

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
    "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国志文斌"
ELDER_TITLES = ("阿姨", "奶奶", "爷爷", "大爷", "叔叔", "大妈")

# category -> (wish titles, roster titles)
CATALOGUE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "daily_necessities": (
        ("一桶食用油和大米", "冬天的棉被", "一台电饭煲", "换季衣物", "一袋米面"),
        ("生活物资捐赠", "旧衣物整理捐赠", "超市代购"),
    ),
    "repair": (
        ("修理漏水的水龙头", "更换楼道灯泡", "修好吱呀的房门", "检修老旧电路", "修理轮椅刹车"),
        ("水电维修", "家电维修", "门窗修理", "管道疏通"),
    ),
    "companionship": (
        ("周末有人陪我聊聊天", "陪我去公园散步", "陪伴独居老人过生日", "一起看一场戏"),
        ("陪伴聊天", "节日探访", "读报陪伴"),
    ),
    "tutoring": (
        ("孩子数学作业辅导", "小学英语陪读", "初中物理答疑", "暑假作业辅导"),
        ("小学数学辅导", "英语陪读", "作文指导"),
    ),
    "health": (
        ("陪同去医院复查", "量血压和健康咨询", "代取慢性病药品", "康复训练指导"),
        ("陪诊", "健康咨询", "代取药品"),
    ),
    "elder_care": (
        ("帮忙打扫房间", "助浴服务", "代缴水电费", "教我用智能手机"),
        ("助老家政", "智能手机教学", "代办缴费"),
    ),
    "child_care": (
        ("放学后临时照看孩子", "接送孩子上下学", "周末亲子活动陪伴"),
        ("课后托管", "接送孩子", "亲子活动"),
    ),
    "disability_support": (
        ("需要一台轮椅", "出行无障碍协助", "盲文读物", "助听器调试"),
        ("轮椅捐赠", "出行协助", "手语沟通"),
    ),
    "other": (
        ("帮忙写一封家书", "搬家搭把手", "照料阳台花草"),
        ("跑腿代办", "搬运帮手"),
    ),
}

# Share of the wishes in each state; the rest of the numbers follow from these.
STATE_WEIGHTS = {
    "open": 30,
    "claimed": 8,
    "fulfilled": 8,
    "confirmed": 38,
    "pending_review": 8,
    "rejected": 2,
    "cancelled": 3,
    "expired": 3,
}


# The accounts to try the app with (role, phone, display name); password DEMO_PASSWORD.
DEMO_LOGINS = (
    ("district organizer", "+8613800000001", "区志愿服务中心"),
    ("street organizer", "+8613800000002", "七里站街道干部"),
    ("community organizer", "+8613800000003", "东七社区书记"),
    ("member", f"+86{FIRST_MEMBER_PHONE}", "李志愿"),
    ("resident", f"+86{FIRST_RESIDENT_PHONE}", "王阿姨"),
)


@dataclass
class DemoAccounts:
    members: int = 0
    residents: int = 0
    wishes: int = 0
    claims: int = 0


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2)))


async def _insert_with_ids(
    session: AsyncSession, model: Any, rows: list[dict[str, Any]]
) -> list[int]:
    """Bulk insert and return the new ids in row order.

    Not ``RETURNING`` with ``sort_by_parameter_order``: over thousands of rows SQLAlchemy
    merges the returned batches in quadratic time on SQLite (seconds, here). The seed runs
    alone in its transaction, so the new ids are simply those above the previous maximum,
    assigned in insertion order.
    """
    before = await session.scalar(select(func.coalesce(func.max(model.id), 0)))
    await session.execute(insert(model), rows)
    ids = list(await session.scalars(select(model.id).where(model.id > before).order_by(model.id)))
    assert len(ids) == len(rows)
    return ids


def _demo_claim_deadline(now: datetime, wish_id: int, member_id: int) -> datetime:
    """Active demo claims fall due from 12 hours to two weeks out (some inside the reminder
    window); derived from the ids, not the random stream, so the rest of the demo stays as
    it was."""
    return now + timedelta(hours=12 + 24 * ((wish_id + member_id) % 14))


async def _insert_users(session: AsyncSession, rows: list[dict[str, Any]]) -> list[int]:
    return await _insert_with_ids(session, User, rows)


class DemoConflict(Exception):
    """The demo's phone numbers belong to accounts that are not the demo's."""


# The phone numbers the demo population takes, as (first, last) of each block.
DEMO_PHONE_BLOCKS = (
    (13800000001, 13800000003),
    (FIRST_MEMBER_PHONE, FIRST_MEMBER_PHONE + MEMBER_COUNT - 1),
    (FIRST_RESIDENT_PHONE, FIRST_RESIDENT_PHONE + RESIDENT_COUNT - 1),
)


async def seed_people(session: AsyncSession, district_id: int) -> DemoAccounts | None:
    """Adds the demo population once; returns None when it is already there."""
    marker = await session.scalar(select(User.id).where(User.phone == f"+86{FIRST_MEMBER_PHONE}"))
    if marker is not None:
        return None
    # Same-length digit strings compare as their numbers do.
    in_use = await session.scalar(
        select(User.phone)
        .where(or_(*(User.phone.between(f"+86{a}", f"+86{b}") for a, b in DEMO_PHONE_BLOCKS)))
        .limit(1)
    )
    if in_use is not None:
        raise DemoConflict(
            f"{in_use} already has an account, and the demo needs its phone numbers ("
            + ", ".join(f"+86{a}–+86{b}" for a, b in DEMO_PHONE_BLOCKS)
            + "): seed the demo into a database of its own"
        )
    rng = random.Random(2026)  # noqa: S311 - demo data, reproducible on purpose
    now = utcnow()
    password_hash = await hash_password(DEMO_PASSWORD)

    regions = (await session.scalars(select(Region).where(Region.district_id == district_id))).all()
    streets = [r for r in regions if r.kind == "street"]
    communities = [r for r in regions if r.kind == "community"]
    grids_of: dict[int, list[Region]] = defaultdict(list)
    for region in regions:
        if region.kind == "grid" and region.community_id is not None:
            grids_of[region.community_id].append(region)
    communities_of_street: dict[int, list[Region]] = defaultdict(list)
    for community in communities:
        communities_of_street[community.street_id or 0].append(community)
    dongqi = next((c for c in communities if c.name == "东七社区"), communities[0])
    qilizhan = next(s for s in streets if s.id == dongqi.street_id)

    def user_row(phone: int, name: str) -> dict[str, Any]:
        return {
            "phone": f"+86{phone}",
            "display_name": name,
            "password_hash": password_hash,
            "is_admin": False,
            "created_at": now,
        }

    # Named demo accounts.
    named = [
        ("district organizer", 13800000001, "区志愿服务中心", district_id),
        ("street organizer", 13800000002, "七里站街道干部", qilizhan.id),
        ("community organizer", 13800000003, "东七社区书记", dongqi.id),
    ]
    organizer_ids = await _insert_users(
        session, [user_row(phone, name) for _role, phone, name, _region in named]
    )
    await session.execute(
        insert(OrganizerGrant),
        [
            {"user_id": user_id, "region_id": region_id, "granted_by": None, "created_at": now}
            for user_id, (_role, _phone, _name, region_id) in zip(organizer_ids, named, strict=True)
        ],
    )

    # Members: the first lives in 东七社区 and is the demo member login.
    member_rows = [user_row(FIRST_MEMBER_PHONE, "李志愿")] + [
        user_row(FIRST_MEMBER_PHONE + index, _name(rng)) for index in range(1, MEMBER_COUNT)
    ]
    member_ids = await _insert_users(session, member_rows)
    member_community: dict[int, Region] = {}
    member_status: dict[int, str] = {}
    member_capacity: dict[int, int] = {}
    for index, member_id in enumerate(member_ids):
        community = dongqi if index == 0 else rng.choice(communities)
        member_community[member_id] = community
        roll = rng.random()
        member_status[member_id] = (
            "active" if index == 0 or roll < 0.9 else "pending" if roll < 0.97 else "suspended"
        )
        member_capacity[member_id] = 5 if rng.random() < 0.15 else 3

    # Rosters: 1–3 entries; some also serve a neighbouring community of the same street.
    resource_rows: list[dict[str, Any]] = []
    resource_regions: list[int | None] = []
    areas: set[tuple[int, int]] = set()
    for member_id in member_ids:
        community = member_community[member_id]
        areas.add((member_id, community.id))
        for position in range(rng.randint(1, 3)):
            category = rng.choice(list(CATALOGUE))
            neighbours = [
                c for c in communities_of_street[community.street_id or 0] if c.id != community.id
            ]
            service_region = (
                rng.choice(neighbours).id if neighbours and rng.random() < 0.3 else None
            )
            resource_rows.append(
                {
                    "member_id": member_id,
                    "position": position,
                    "category": category,
                    "title": rng.choice(CATALOGUE[category][1]),
                    "description": "",
                    "quantity": rng.randint(1, 3),
                }
            )
            resource_regions.append(service_region)
            if service_region:
                areas.add((member_id, service_region))

    # Residents: the first is the demo resident login.
    resident_rows = [user_row(FIRST_RESIDENT_PHONE, "王阿姨")] + [
        user_row(FIRST_RESIDENT_PHONE + i, _name(rng)[0] + rng.choice(ELDER_TITLES))
        for i in range(1, RESIDENT_COUNT)
    ]
    resident_ids = await _insert_users(session, resident_rows)
    resident_community = {
        resident_id: dongqi if i == 0 else rng.choice(communities)
        for i, resident_id in enumerate(resident_ids)
    }
    resident_names = {
        uid: row["display_name"] for uid, row in zip(resident_ids, resident_rows, strict=True)
    }
    resident_phones = {
        uid: row["phone"] for uid, row in zip(resident_ids, resident_rows, strict=True)
    }

    # Active members by community, to claim wishes where they live.
    helpers_in: dict[int, list[int]] = defaultdict(list)
    for member_id in member_ids:
        if member_status[member_id] == "active":
            helpers_in[member_community[member_id].id].append(member_id)
    active_load: dict[int, int] = defaultdict(int)

    states = list(STATE_WEIGHTS)
    weights = list(STATE_WEIGHTS.values())
    wish_rows: list[dict[str, Any]] = []
    planned_claims: list[list[tuple[int, int, str]]] = []  # per wish: (member, slots, status)
    for index in range(WISH_COUNT):
        resident_id = resident_ids[index % len(resident_ids)]
        community = resident_community[resident_id]
        grids = grids_of[community.id]
        region = rng.choice(grids) if grids and rng.random() < 0.7 else community
        category = rng.choice(list(CATALOGUE))
        state = rng.choices(states, weights)[0]
        slots_total = 1 if rng.random() < 0.75 else rng.randint(2, 4)
        created = now - timedelta(days=rng.randint(0, 360), minutes=rng.randint(0, 1440))
        if state in ("open", "pending_review"):
            created = now - timedelta(days=rng.randint(0, 20), minutes=rng.randint(0, 1440))
        claims: list[tuple[int, int, str]] = []
        candidates = helpers_in[community.id][:]
        rng.shuffle(candidates)
        if state in ("claimed", "fulfilled", "confirmed", "open"):
            wanted = slots_total if state != "open" else rng.randint(0, slots_total - 1)
            claim_status = "active" if state in ("claimed", "open") else "fulfilled"
            taken = 0
            for member_id in candidates:
                if taken == wanted:
                    break
                if (
                    claim_status == "active"
                    and active_load[member_id] >= member_capacity[member_id]
                ):
                    continue
                slots = min(wanted - taken, rng.randint(1, 2))
                claims.append((member_id, slots, claim_status))
                taken += slots
                if claim_status == "active":
                    active_load[member_id] += 1
            if taken < wanted:  # not enough helpers nearby: leave it open instead
                for member_id, _slots, status in claims:
                    if status == "active":
                        active_load[member_id] -= 1
                claims, state = [], "open"
        slots_claimed = sum(slots for _m, slots, _s in claims)
        slots_fulfilled = sum(slots for _m, slots, s in claims if s == "fulfilled")
        closed = state in ("confirmed", "rejected", "cancelled", "expired")
        contact_phone = resident_phones[resident_id]
        wish_rows.append(
            {
                "resident_id": resident_id,
                "creator_id": resident_id,
                "beneficiary_name": resident_names[resident_id],
                "region_id": region.id,
                "district_id": region.district_id,
                "street_id": region.street_id,
                "community_id": region.community_id,
                "grid_id": region.grid_id,
                "category": category,
                "title": rng.choice(CATALOGUE[category][0]),
                "description": "",
                "slots_total": slots_total,
                "slots_claimed": slots_claimed,
                "slots_fulfilled": slots_fulfilled,
                "status": state,
                "deadline": now + timedelta(days=rng.randint(7, 60)) if state == "open" else None,
                "contact_name": resident_names[resident_id],
                "contact_phone": contact_phone,
                "contact_address": (
                    f"{community.name}{rng.randint(1, 30)}栋{rng.randint(1, 6)}0{rng.randint(1, 4)}"
                ),
                "review_note": "信息不完整，请补充联系方式" if state == "rejected" else None,
                "rating": rng.choice((4, 5, 5, 5)) if state == "confirmed" else None,
                "thanks": "谢谢志愿者！" if state == "confirmed" else None,
                "created_at": created,
                "updated_at": created,
                "reviewed_at": None if state == "pending_review" else created,
                "fulfilled_at": created + timedelta(days=3)
                if state in ("fulfilled", "confirmed")
                else None,
                "confirmed_at": created + timedelta(days=4) if state == "confirmed" else None,
                "closed_at": created + timedelta(days=4) if closed else None,
                "version": 1,
            }
        )
        planned_claims.append(claims)

    await session.execute(
        insert(Member),
        [
            {
                "user_id": member_id,
                "community_id": member_community[member_id].id,
                "status": member_status[member_id],
                "capacity": member_capacity[member_id],
                "active_claims": active_load[member_id],
                "created_at": now - timedelta(days=rng.randint(30, 700)),
                "updated_at": now,
            }
            for member_id in member_ids
        ],
    )
    resource_ids = await _insert_with_ids(session, MemberResource, resource_rows)
    links = [
        {"resource_id": rid, "region_id": region}
        for rid, region in zip(resource_ids, resource_regions, strict=True)
        if region
    ]
    if links:
        await session.execute(insert(MemberResourceRegion), links)
    await session.execute(
        insert(MemberArea), [{"member_id": m, "region_id": r} for m, r in sorted(areas)]
    )

    wish_ids = await _insert_with_ids(session, Wish, wish_rows)
    claim_rows = [
        {
            "wish_id": wish_id,
            "member_id": member_id,
            "slots": slots,
            "status": status,
            "source": "direct",
            "created_at": row["created_at"] + timedelta(hours=6),
            "updated_at": row["created_at"]
            + timedelta(days=3 if status == "fulfilled" else 0, hours=6),
            "fulfilled_at": row["created_at"] + timedelta(days=3)
            if status == "fulfilled"
            else None,
            "fulfil_note": "已完成" if status == "fulfilled" else None,
            "version": 1,
            "deadline": _demo_claim_deadline(now, wish_id, member_id)
            if status == "active"
            else None,
        }
        for wish_id, row, claims in zip(wish_ids, wish_rows, planned_claims, strict=True)
        for member_id, slots, status in claims
    ]
    if claim_rows:
        await session.execute(insert(Claim), claim_rows)
    return DemoAccounts(
        members=len(member_ids),
        residents=len(resident_ids),
        wishes=len(wish_ids),
        claims=len(claim_rows),
    )
