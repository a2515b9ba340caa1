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
    "wish": {"zh-CN": "心愿", "en": "wish"},
    "claim": {"zh-CN": "认领", "en": "claim"},
    "member": {"zh-CN": "成员资料", "en": "member profile"},
    "matching_run": {"zh-CN": "匹配批次", "en": "matching run"},
    "claim_event": {"zh-CN": "集中认领活动", "en": "claim event"},
    "notification": {"zh-CN": "通知", "en": "notification"},
    "draft": {"zh-CN": "草稿", "en": "draft"},
    "scheduled": {"zh-CN": "未开始", "en": "scheduled"},
    "live": {"zh-CN": "进行中", "en": "live"},
    "closed": {"zh-CN": "已结束", "en": "closed"},
    "open_event": {"zh-CN": "开始", "en": "open"},
    "close": {"zh-CN": "结束", "en": "close"},
    "rank": {"zh-CN": "提交志愿", "en": "rank wishes"},
    "update": {"zh-CN": "修改", "en": "update"},
    "add_wishes": {"zh-CN": "添加心愿", "en": "add wishes"},
    "remove_wishes": {"zh-CN": "移除心愿", "en": "remove wishes"},
    "allocate": {"zh-CN": "分配", "en": "allocate"},
    "rush": {"zh-CN": "抢认", "en": "rush"},
    "computed": {"zh-CN": "已计算", "en": "computed"},
    "applied": {"zh-CN": "已应用", "en": "applied"},
    "apply": {"zh-CN": "应用", "en": "apply"},
    "photo": {"zh-CN": "照片", "en": "photo"},
    "add_photos": {"zh-CN": "上传照片", "en": "add photos"},
    "add_proof": {"zh-CN": "上传完成凭证", "en": "add proof photos"},
    # states
    "pending_review": {"zh-CN": "待审核", "en": "pending review"},
    "open": {"zh-CN": "可认领", "en": "open"},
    "claimed": {"zh-CN": "已认领满", "en": "fully claimed"},
    "fulfilled": {"zh-CN": "已完成", "en": "fulfilled"},
    "confirmed": {"zh-CN": "已确认", "en": "confirmed"},
    "rejected": {"zh-CN": "已驳回", "en": "rejected"},
    "cancelled": {"zh-CN": "已取消", "en": "cancelled"},
    "expired": {"zh-CN": "已过期", "en": "expired"},
    "active": {"zh-CN": "进行中", "en": "active"},
    "withdrawn": {"zh-CN": "已撤回", "en": "withdrawn"},
    "released": {"zh-CN": "已释放", "en": "released"},
    "revoked": {"zh-CN": "已撤销", "en": "revoked"},
    "overdue": {"zh-CN": "已过截止时间", "en": "past its deadline"},
    "pending": {"zh-CN": "待审核", "en": "pending"},
    "suspended": {"zh-CN": "已暂停", "en": "suspended"},
    # actions
    "approve": {"zh-CN": "审核通过", "en": "approve"},
    "reject": {"zh-CN": "驳回", "en": "reject"},
    "cancel": {"zh-CN": "取消", "en": "cancel"},
    "confirm": {"zh-CN": "确认完成", "en": "confirm"},
    "withdraw": {"zh-CN": "撤回", "en": "withdraw"},
    "fulfil": {"zh-CN": "报告完成", "en": "fulfil"},
    "revoke": {"zh-CN": "撤销", "en": "revoke"},
    "extend": {"zh-CN": "延期", "en": "extend"},
    "suspend": {"zh-CN": "暂停", "en": "suspend"},
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
    "unstorable_text": {
        "zh-CN": ("文本包含无效字符", "输入中含有无法保存的字符（例如 NUL），请删除后重试。"),
        "en": (
            "Text cannot be stored",
            "The input contains characters that cannot be stored (such as NUL).",
        ),
    },
    "invalid_cursor": {
        "zh-CN": ("分页游标无效", "cursor 参数无法识别，请从第一页重新获取。"),
        "en": ("Invalid cursor", "The cursor is not recognised; start again from page one."),
    },
    "invalid_sync_token": {
        "zh-CN": ("同步令牌无效", "since 参数无法识别，请不带 since 重新完整同步。"),
        "en": (
            "Invalid sync token",
            "The since token is not recognised; sync again from scratch, without since.",
        ),
    },
    "gone": {
        "zh-CN": ("已不可用", "所请求的内容已不可用。"),
        "en": ("Gone", "What the request refers to is no longer available."),
    },
    "sync_token_expired": {
        "zh-CN": ("同步令牌已过期", "同步令牌太旧或来自其他数据库，请不带 since 重新完整同步。"),
        "en": (
            "Sync token expired",
            "The sync token is too old or from another database; sync again from scratch, "
            "without since.",
        ),
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
    "not_your_claim": {
        "zh-CN": ("不是您的认领", "只有认领人本人可以执行此操作。"),
        "en": ("Not your claim", "Only the member who made this claim may do this."),
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
    "district_takes_no_parent": {
        "zh-CN": ("上级区域不匹配", "区是最上级区域，不能有上级（不要传 parent_id）。"),
        "en": ("Wrong parent region", "A district is the top of the tree: leave parent_id out."),
    },
    "not_a_member": {
        "zh-CN": ("还不是成员", "请先申请成为社区成员（POST /v1/members）。"),
        "en": ("Not a member", "Apply to be a member first (POST /v1/members)."),
    },
    "member_not_active": {
        "zh-CN": ("成员资格未生效", "您的成员资格尚未通过审核或已被暂停，暂不能认领。"),
        "en": (
            "Membership not active",
            "Your membership is not approved yet or is suspended; you cannot claim now.",
        ),
    },
    "already_member": {
        "zh-CN": ("已是成员", "您已经提交过成员申请。"),
        "en": ("Already a member", "You already have a member profile."),
    },
    "not_a_community": {
        "zh-CN": ("需要社区", "所选区域不是社区，请选择一个社区。"),
        "en": ("Not a community", "The region chosen is not a community."),
    },
    "region_too_broad": {
        "zh-CN": ("区域范围过大", "心愿必须发布在社区或网格。"),
        "en": ("Region too broad", "A wish belongs to a community or a grid."),
    },
    "unknown_category": {
        "zh-CN": ("分类不存在", "未知分类：{category}。可用分类见 GET /v1/categories。"),
        "en": ("Unknown category", "Unknown category: {category}. See GET /v1/categories."),
    },
    "unknown_region": {
        "zh-CN": ("区域不存在", "这些区域不存在：{region_ids}。"),
        "en": ("Unknown region", "These regions do not exist: {region_ids}."),
    },
    "deadline_out_of_range": {
        "zh-CN": ("截止时间无效", "截止时间必须在未来一年之内。"),
        "en": ("Deadline out of range", "The deadline must be in the future, within a year."),
    },
    "out_of_area": {
        "zh-CN": (
            "超出服务范围",
            "只能直接认领本社区及资源清单服务区域内的心愿；跨社区请参加集中认领活动。",
        ),
        "en": (
            "Out of your area",
            "You may claim directly only in your community and your roster's service "
            "regions; other communities' wishes are claimed through claim events.",
        ),
    },
    "wish_full": {
        "zh-CN": ("名额已满", "该心愿剩余名额不足（剩余 {slots_remaining}）。"),
        "en": ("Wish full", "Not enough free slots on this wish ({slots_remaining} left)."),
    },
    "already_claimed": {
        "zh-CN": ("已认领", "您已认领过这个心愿。"),
        "en": ("Already claimed", "You already hold a claim on this wish."),
    },
    "capacity_reached": {
        "zh-CN": (
            "认领数已达上限",
            "您同时进行中的认领已达上限（{capacity} 个），完成或撤回后再认领。",
        ),
        "en": (
            "Capacity reached",
            "You hold as many active claims as you may ({capacity}); fulfil or withdraw one first.",
        ),
    },
    "not_claimable": {
        "zh-CN": ("不可认领", "该心愿当前状态为 {current_state}，不可认领。"),
        "en": ("Not claimable", "The wish is {current_state}; it cannot be claimed."),
    },
    "deadline_passed": {
        "zh-CN": ("不可认领", "该心愿已过认领截止时间，不能再认领。"),
        "en": ("Not claimable", "The wish's deadline has passed; it can no longer be claimed."),
    },
    "own_wish": {
        "zh-CN": ("不能认领自己的心愿", "这是您自己发布的心愿。"),
        "en": ("Your own wish", "You cannot claim a wish made for you."),
    },
    "already_extended": {
        "zh-CN": ("已延期过", "每份认领只能延期一次。"),
        "en": ("Already extended", "A claim may be extended once."),
    },
    "no_deadline": {
        "zh-CN": ("认领没有期限", "这份认领没有截止时间，无需延期。"),
        "en": ("No deadline", "This claim has no deadline to extend."),
    },
    "wishes_not_matchable": {
        "zh-CN": ("心愿不可匹配", "这些心愿不在该区域内、未开放或已满：{wish_ids}。"),
        "en": (
            "Wishes not matchable",
            "These wishes are not open with free slots in the region: {wish_ids}.",
        ),
    },
    "in_event": {
        "zh-CN": ("心愿在集中认领中", "该心愿正在集中认领活动中，只能通过该活动认领。"),
        "en": (
            "Wish in a claim event",
            "This wish is pooled in a live claim event; claim it through that event.",
        ),
    },
    "not_in_event": {
        "zh-CN": ("心愿不在本次活动中", "该心愿没有在本次集中认领活动的心愿池中。"),
        "en": ("Not in this event", "The wish is not pooled in this claim event."),
    },
    "quota_reached": {
        "zh-CN": ("已达本次活动认领上限", "本次活动每人最多认领 {quota} 个心愿。"),
        "en": ("Event quota reached", "You may hold {quota} claims in this event."),
    },
    "wrong_event_mode": {
        "zh-CN": ("活动方式不符", "该活动的认领方式是“{mode}”，不支持此操作。"),
        "en": ("Wrong event mode", "This event runs in {mode} mode; that is not possible in it."),
    },
    "invalid_event_window": {
        "zh-CN": (
            "活动时间无效",
            "结束时间必须晚于开始时间且在未来；开始时间最早为5分钟前，且须在一年之内。",
        ),
        "en": (
            "Invalid event window",
            "ends_at must be after starts_at and in the future; starts_at no more than "
            "5 minutes ago and within a year.",
        ),
    },
    "organizer_required": {
        "zh-CN": ("需要组织者权限", "只有组织者可以创建集中认领活动。"),
        "en": ("Organizer required", "Only organizers may create claim events."),
    },
    "wishes_not_in_event_communities": {
        "zh-CN": ("心愿不属于活动社区", "这些心愿不存在或不在活动的社区内：{wish_ids}。"),
        "en": (
            "Wishes outside the event",
            "These wishes do not exist or are not in the event's communities: {wish_ids}.",
        ),
    },
    "too_many_preferences": {
        "zh-CN": ("志愿过多", "最多可填报 {limit} 个心愿。"),
        "en": ("Too many preferences", "Rank at most {limit} wishes."),
    },
    "duplicate_preferences": {
        "zh-CN": ("志愿重复", "同一个心愿只能填报一次。"),
        "en": ("Duplicate preferences", "Each wish may be ranked once."),
    },
    "idempotency_in_flight": {
        "zh-CN": ("请求处理中", "使用同一 Idempotency-Key 的请求仍在处理中，请稍后重试。"),
        "en": (
            "Request in progress",
            "A request with this Idempotency-Key is still being processed; retry shortly.",
        ),
    },
    "idempotency_key_reused": {
        "zh-CN": (
            "Idempotency-Key 已用于其他请求",
            "同一 Idempotency-Key 只能用于完全相同的请求。",
        ),
        "en": (
            "Idempotency-Key reused",
            "This Idempotency-Key was used for a different request; use a new key.",
        ),
    },
    "invalid_idempotency_key": {
        "zh-CN": (
            "Idempotency-Key 无效",
            "Idempotency-Key 须为 1–{max_length} 个可打印 ASCII 字符。",
        ),
        "en": (
            "Invalid Idempotency-Key",
            "An Idempotency-Key is 1–{max_length} printable ASCII characters.",
        ),
    },
    "precondition_failed": {
        "zh-CN": (
            "内容已被修改",
            "资源在您上次读取后已被修改（If-Match 不符），请重新获取后再改。",
        ),
        "en": (
            "Precondition failed",
            "The resource changed since you read it (If-Match does not match); fetch it again.",
        ),
    },
    "precondition_required": {
        "zh-CN": ("缺少 If-Match", "修改请求须带上读取时得到的 ETag：If-Match: <ETag>。"),
        "en": (
            "If-Match required",
            "Send the ETag you read with the update: If-Match: <ETag>.",
        ),
    },
    "field_not_nullable": {
        "zh-CN": ("字段不能为空", "{fields} 不能设为 null（不改的字段不发送即可）。"),
        "en": ("Field cannot be null", "{fields} cannot be null (leave out what stays)."),
    },
    "slots_below_claimed": {
        "zh-CN": ("名额少于已认领", "已有 {slots_claimed} 个名额被认领，名额不能少于此数。"),
        "en": (
            "Slots below claimed",
            "{slots_claimed} slots are claimed; slots_total cannot go below that.",
        ),
    },
    "otp_cooldown": {
        "zh-CN": ("获取验证码过于频繁", "验证码刚刚发送过，请 {retry_after} 秒后再获取。"),
        "en": (
            "Code sent recently",
            "A code was just sent; ask for another in {retry_after} seconds.",
        ),
    },
    "otp_invalid": {
        "zh-CN": ("验证码错误", "验证码不正确，还可尝试 {attempts_remaining} 次。"),
        "en": ("Wrong code", "The code is wrong; {attempts_remaining} tries left."),
    },
    "otp_attempts_exceeded": {
        "zh-CN": ("验证码错误次数过多", "此验证码已失效，请重新获取验证码。"),
        "en": ("Too many wrong codes", "This code no longer works; ask for a new one."),
    },
    "otp_expired": {
        "zh-CN": ("验证码已失效", "验证码已过期或已使用，请重新获取验证码。"),
        "en": ("Code expired", "The code has expired or was used; ask for a new one."),
    },
    "payload_too_large": {
        "zh-CN": ("请求体过大", "请求体超过了允许的大小。"),
        "en": ("Payload too large", "The request body is larger than allowed."),
    },
    "multipart_required": {
        "zh-CN": ("需要 multipart/form-data", "请用 multipart/form-data 上传，文件字段名为 file。"),
        "en": (
            "multipart/form-data required",
            "Upload with multipart/form-data, the file in a field named file.",
        ),
    },
    "malformed_multipart": {
        "zh-CN": ("上传内容格式错误", "multipart/form-data 请求体无法解析，请重新上传。"),
        "en": ("Malformed upload", "The multipart/form-data body cannot be parsed; upload again."),
    },
    "unsupported_image": {
        "zh-CN": (
            "不支持的图片",
            "请上传 JPEG、PNG 或 WebP 格式的照片（按文件内容判断，与文件名无关），且文件完整。",
        ),
        "en": (
            "Unsupported image",
            "Upload a complete JPEG, PNG or WebP photo (judged by its content, not its name).",
        ),
    },
    "image_too_large": {
        "zh-CN": ("图片太大", "照片不能超过 {max_megabytes} MB。"),
        "en": ("Image too large", "A photo may be at most {max_megabytes} MB."),
    },
    "image_too_many_pixels": {
        "zh-CN": ("图片像素过多", "照片最多 {max_megapixels} 百万像素。"),
        "en": ("Too many pixels", "A photo may have at most {max_megapixels} megapixels."),
    },
    "too_many_photos": {
        "zh-CN": ("照片数量已达上限", "最多 {max_photos} 张照片，请先删除一些再上传。"),
        "en": ("Too many photos", "At most {max_photos} photos; delete one before adding more."),
    },
    "photo_link_expired": {
        "zh-CN": ("照片链接已过期", "照片链接已失效，请重新获取照片列表以得到新链接。"),
        "en": ("Photo link expired", "This photo link has expired; list the photos again."),
    },
    "photo_link_invalid": {
        "zh-CN": ("照片链接无效", "照片链接的签名不正确。"),
        "en": ("Invalid photo link", "The photo link's signature is not valid."),
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
