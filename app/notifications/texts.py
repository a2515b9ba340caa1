"""What a notification says, in zh-CN (default) and en, rendered from its kind and data when
read (the inbox) or sent (the push payload carries both), so no text is stored."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.i18n import Lang
from app.notifications.models import NotificationKind as Kind

_TITLES: dict[str, dict[Lang, str]] = {
    Kind.wish_approved: {
        "zh-CN": "心愿「{wish_title}」已通过审核",
        "en": "Your wish “{wish_title}” was approved",
    },
    Kind.wish_rejected: {
        "zh-CN": "心愿「{wish_title}」未通过审核",
        "en": "Your wish “{wish_title}” was not approved",
    },
    Kind.wish_claimed: {
        "zh-CN": "心愿「{wish_title}」有人认领了",
        "en": "Someone claimed your wish “{wish_title}”",
    },
    Kind.claim_fulfilled: {
        "zh-CN": "志愿者已完成心愿「{wish_title}」",
        "en": "A helper fulfilled “{wish_title}”",
    },
    "claim_fulfilled:deadline": {
        "zh-CN": "心愿「{wish_title}」已到截止时间，"
        "志愿者完成了 {slots_fulfilled}/{slots_total} 个名额，请确认",
        "en": "“{wish_title}” reached its deadline with {slots_fulfilled} of {slots_total} "
        "slots fulfilled: please confirm",
    },
    "claim_fulfilled:wish_fulfilled": {
        "zh-CN": "心愿「{wish_title}」已全部完成，请确认",
        "en": "“{wish_title}” is fulfilled: please confirm",
    },
    Kind.wish_confirmed: {
        "zh-CN": "居民确认了心愿「{wish_title}」并致谢",
        "en": "The resident confirmed “{wish_title}” and says thanks",
    },
    Kind.claim_revoked: {
        "zh-CN": "您对心愿「{wish_title}」的认领已被撤销",
        "en": "Your claim on “{wish_title}” was revoked",
    },
    "claim_revoked:wish_cancelled": {
        "zh-CN": "心愿「{wish_title}」已取消，您的认领随之结束",
        "en": "“{wish_title}” was cancelled, and your claim with it",
    },
    Kind.claim_released: {
        "zh-CN": "您对心愿「{wish_title}」的认领已到期释放",
        "en": "Your claim on “{wish_title}” passed its deadline and was released",
    },
    "claim_released:owner": {
        "zh-CN": "心愿「{wish_title}」的一份认领已到期释放，名额重新开放",
        "en": "A claim on “{wish_title}” passed its deadline; its slots are open again",
    },
    Kind.claim_deadline_soon: {
        "zh-CN": "您认领的心愿「{wish_title}」即将到期，请尽快完成或申请延期",
        "en": "Your claim on “{wish_title}” is due soon: fulfil it or extend it",
    },
    Kind.event_opening_soon: {
        "zh-CN": "集中认领「{event_title}」即将开始",
        "en": "The claim event “{event_title}” opens soon",
    },
    Kind.allocation_result: {
        "zh-CN": "集中认领「{event_title}」：本次未分配到心愿",
        "en": "Claim event “{event_title}”: no wish was allocated to you",
    },
    "allocation_result:one": {
        "zh-CN": "集中认领「{event_title}」：您分配到了心愿「{wish_title}」",
        "en": "Claim event “{event_title}”: you were given “{wish_title}”",
    },
    "allocation_result:many": {
        "zh-CN": "集中认领「{event_title}」：您分配到了 {count} 个心愿",
        "en": "Claim event “{event_title}”: you were given {count} wishes",
    },
    Kind.match_proposed: {
        "zh-CN": "您已被匹配到心愿「{wish_title}」",
        "en": "You were matched with the wish “{wish_title}”",
    },
}
_FALLBACK: dict[Lang, str] = {"zh-CN": "您有一条新通知", "en": "You have a new notification"}


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""  # an older row without a newer field still renders


def _variant(kind: str, data: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    values = _Blank(data)
    if kind == Kind.claim_fulfilled and data.get("cause") == "deadline":
        return "claim_fulfilled:deadline", values
    if kind == Kind.claim_fulfilled and data.get("wish_status") == "fulfilled":
        return "claim_fulfilled:wish_fulfilled", values
    if kind == Kind.claim_revoked and data.get("cause") == "wish_cancelled":
        return "claim_revoked:wish_cancelled", values
    if kind == Kind.claim_released and data.get("to") == "owner":
        return "claim_released:owner", values
    if kind == Kind.allocation_result:
        wishes = data.get("wishes") or []
        if len(wishes) == 1 and isinstance(wishes[0], Mapping):
            values["wish_title"] = wishes[0].get("wish_title", "")
            return "allocation_result:one", values
        if len(wishes) > 1:
            values["count"] = len(wishes)
            return "allocation_result:many", values
    return kind, values


def title(kind: str, data: Mapping[str, Any], lang: Lang) -> str:
    key, values = _variant(kind, data)
    template = _TITLES.get(key, {}).get(lang)
    if template is None:
        return _FALLBACK[lang]
    return template.format_map(values)


def titles(kind: str, data: Mapping[str, Any]) -> dict[str, str]:
    """Both languages, for the push payload (the gateway knows each device's language)."""
    return {lang: title(kind, data, lang) for lang in ("zh-CN", "en")}
