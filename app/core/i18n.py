"""zh-CN (default) and en texts for problem titles and details, chosen by Accept-Language."""

from __future__ import annotations

from typing import Any, Literal

Lang = Literal["zh-CN", "en"]
DEFAULT_LANG: Lang = "zh-CN"


def negotiate_language(accept_language: str | None) -> Lang:
    """The best of zh-CN and en for an Accept-Language header (RFC 9110 q-values)."""
    if not accept_language:
        return DEFAULT_LANG
    best: tuple[float, int, Lang] | None = None
    for position, item in enumerate(accept_language.split(",")):
        tag, _, params = item.strip().partition(";")
        tag = tag.strip().lower()
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        lang: Lang | None = None
        if tag == "en" or tag.startswith("en-"):
            lang = "en"
        elif tag == "zh" or tag.startswith("zh-"):
            lang = "zh-CN"
        elif tag == "*":
            lang = DEFAULT_LANG
        if lang is None:
            continue
        candidate = (quality, -position, lang)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return best[2] if best else DEFAULT_LANG


# Nouns that appear as parameters in details ({resource}, {current_state}, {action}).
NOUNS: dict[str, dict[Lang, str]] = {
    "resource": {"zh-CN": "资源", "en": "resource"},
    "region": {"zh-CN": "区域", "en": "region"},
    "user": {"zh-CN": "用户", "en": "user"},
    "route": {"zh-CN": "接口", "en": "route"},
    "grant": {"zh-CN": "组织者授权", "en": "organizer grant"},
    "district": {"zh-CN": "区", "en": "district"},
    "street": {"zh-CN": "街道", "en": "street"},
    "community": {"zh-CN": "社区", "en": "community"},
    "grid": {"zh-CN": "网格", "en": "grid"},
}

# code -> language -> (title, detail template)
CATALOG: dict[str, dict[Lang, tuple[str, str]]] = {
    "bad_request": {
        "zh-CN": ("请求有误", "请求无法处理。"),
        "en": ("Bad request", "The request could not be processed."),
    },
    "malformed_json": {
        "zh-CN": ("JSON 格式错误", "请求体不是合法的 JSON：{reason}"),
        "en": ("Malformed JSON", "The request body is not valid JSON: {reason}"),
    },
    "validation_failed": {
        "zh-CN": ("输入校验失败", "请求中有字段不符合要求，详见 errors。"),
        "en": ("Validation failed", "Some fields of the request are invalid; see errors."),
    },
    "invalid_cursor": {
        "zh-CN": ("分页游标无效", "cursor 参数无法识别，请从第一页重新获取。"),
        "en": ("Invalid cursor", "The cursor is not recognised; start again from page one."),
    },
    "unauthenticated": {
        "zh-CN": ("需要登录", "请提供有效的访问令牌（Authorization: Bearer …）。"),
        "en": ("Authentication required", "Send a valid access token (Authorization: Bearer …)."),
    },
    "token_expired": {
        "zh-CN": ("令牌已过期", "访问令牌已过期，请用刷新令牌换取新令牌。"),
        "en": ("Token expired", "The access token has expired; use the refresh token."),
    },
    "invalid_credentials": {
        "zh-CN": ("手机号或密码错误", "手机号或密码不正确。"),
        "en": ("Wrong phone or password", "The phone number or password is wrong."),
    },
    "invalid_refresh_token": {
        "zh-CN": ("刷新令牌无效", "刷新令牌无效、已过期或已被使用，请重新登录。"),
        "en": (
            "Invalid refresh token",
            "The refresh token is invalid, expired or already used; log in again.",
        ),
    },
    "forbidden": {
        "zh-CN": ("无权操作", "您没有执行此操作的权限。"),
        "en": ("Forbidden", "You are not allowed to do this."),
    },
    "admin_required": {
        "zh-CN": ("需要管理员权限", "只有管理员可以执行此操作。"),
        "en": ("Admin required", "Only an admin may do this."),
    },
    "out_of_scope": {
        "zh-CN": ("超出管辖范围", "该区域不在您的管辖范围内。"),
        "en": ("Out of scope", "That region is outside the regions you organize."),
    },
    "not_found": {
        "zh-CN": ("未找到", "{resource}不存在。"),
        "en": ("Not found", "The {resource} does not exist."),
    },
    "method_not_allowed": {
        "zh-CN": ("方法不被允许", "该接口不支持 {method} 方法。"),
        "en": ("Method not allowed", "This route does not accept {method}."),
    },
    "unsupported_media_type": {
        "zh-CN": ("不支持的媒体类型", "请求体应为 application/json。"),
        "en": ("Unsupported media type", "The request body must be application/json."),
    },
    "conflict": {
        "zh-CN": ("冲突", "请求与当前状态冲突。"),
        "en": ("Conflict", "The request conflicts with the current state."),
    },
    "invalid_state": {
        "zh-CN": ("状态不允许", "{resource}当前状态为 {current_state}，不能执行“{action}”。"),
        "en": (
            "Invalid state",
            "The {resource} is {current_state}; it cannot be asked to {action}.",
        ),
    },
    "phone_taken": {
        "zh-CN": ("手机号已注册", "该手机号已注册，请直接登录。"),
        "en": ("Phone already registered", "This phone number is registered; log in instead."),
    },
    "grant_exists": {
        "zh-CN": ("授权已存在", "该用户已是此区域的组织者。"),
        "en": ("Grant exists", "This user already organizes this region."),
    },
    "region_name_taken": {
        "zh-CN": ("名称重复", "同一上级区域下已有同名区域。"),
        "en": ("Name taken", "The parent region already has a region with this name."),
    },
    "invalid_region_parent": {
        "zh-CN": ("上级区域不匹配", "{kind}的上级必须是{expected_parent}。"),
        "en": ("Wrong parent region", "A {kind} must sit under a {expected_parent}."),
    },
    "rate_limited": {
        "zh-CN": ("请求过于频繁", "请求过于频繁，请稍后再试。"),
        "en": ("Too many requests", "Too many requests; try again later."),
    },
    "internal_error": {
        "zh-CN": ("服务器内部错误", "服务器出错了，请稍后再试。已记录此问题。"),
        "en": ("Internal error", "Something went wrong on our side; it has been logged."),
    },
    "service_unavailable": {
        "zh-CN": ("服务暂不可用", "数据库暂时无法访问，请稍后再试。"),
        "en": ("Service unavailable", "The database cannot be reached; try again later."),
    },
}

_NO_VALUE = "?"


class _Params(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return _NO_VALUE


def _localise(value: Any, lang: Lang) -> Any:
    if isinstance(value, str) and value in NOUNS:
        return NOUNS[value][lang]
    return value


def render(code: str, lang: Lang, params: dict[str, Any]) -> tuple[str, str]:
    """Title and detail of ``code`` in ``lang``; unknown codes fall back to a generic text."""
    entry = CATALOG.get(code) or CATALOG["bad_request"]
    title, template = entry[lang]
    localised = _Params({key: _localise(value, lang) for key, value in params.items()})
    return title, template.format_map(localised)
