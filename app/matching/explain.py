"""Readable reasons for a score, in zh-CN and en. Pure functions."""

from __future__ import annotations

from app.core.i18n import Lang
from app.matching.engine import COMPONENTS, Candidate, Weights

_LOCALITY = {
    "grid": ("同一网格", "Same grid"),
    "community": ("同一社区", "Same community"),
    "street": ("同一街道", "Same street"),
    "district": ("同一区", "Same district"),
}


def _pct(value: float) -> int:
    return round(value * 100)


def reason(name: str, candidate: Candidate, lang: Lang, category_label: tuple[str, str]) -> str:
    value = candidate.components[name]
    zh = lang == "zh-CN"
    if name == "category":
        if candidate.general_help:
            return "可提供一般帮助（其他类）" if zh else "Offers general help (other)"
        label = category_label[0] if zh else category_label[1]
        return f"资源清单提供「{label}」" if zh else f"Roster offers {label}"
    if name == "text":
        if value == 0:
            return (
                "资源描述与心愿用词无重合" if zh else "Roster wording shares nothing with the wish"
            )
        return (
            f"资源描述与心愿吻合 {_pct(value)}%"
            if zh
            else f"Roster wording fits the wish {_pct(value)}%"
        )
    if name == "locality":
        return _LOCALITY[candidate.locality_level][0 if zh else 1]
    if name == "capacity":
        return f"可认领名额尚余 {_pct(value)}%" if zh else f"{_pct(value)}% of capacity free"
    if name == "urgency":
        return (
            f"紧迫度 {_pct(value)}%（等待时长、截止时间）"
            if zh
            else f"Urgency {_pct(value)}% (time waiting, deadline)"
        )
    if value >= 0.8:
        return "近期负担较轻" if zh else "Light recent load"
    return "近期已承担较多认领或匹配" if zh else "Already carries several claims or recent matches"


def breakdown(
    candidate: Candidate, weights: Weights, lang: Lang, category_label: tuple[str, str]
) -> list[dict[str, object]]:
    weight_of = weights.as_dict()
    return [
        {
            "name": name,
            "value": candidate.components[name],
            "weight": weight_of[name],
            "contribution": round(candidate.components[name] * weight_of[name], 6),
            "reason": reason(name, candidate, lang, category_label),
        }
        for name in COMPONENTS
    ]
