"""OTP login codes: making them, hashing them, and the SMS that carries them (pure helpers)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from app.core.sms import SmsMessage

CODE_LENGTH = 6
SMS_TEMPLATE = "login_code"


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_LENGTH):0{CODE_LENGTH}d}"


def _keyed(secret_key: str, purpose: str, value: str) -> str:
    return hmac.new(secret_key.encode(), f"{purpose}\0{value}".encode(), hashlib.sha256).hexdigest()


def code_hash(phone: str, code: str, secret_key: str) -> str:
    """HMAC-SHA256 keyed with the app secret. A million codes are quickly tried against a
    plain hash; without the secret a leaked table gives nothing away. Cheap is enough: the
    attempts are limited, not the cost of a guess. The phone is mixed in so the same code
    for two phones hashes differently."""
    return _keyed(secret_key, "otp", f"{phone}\0{code}")


def phone_key(phone: str, secret_key: str) -> str:
    """A pseudonym of the phone for rate-limit keys, which may live in Redis: no phone
    numbers in a store we do not protect like the database."""
    return _keyed(secret_key, "ratelimit-phone", phone)[:32]


def default_display_name(phone: str) -> str:
    """The name of a user registered by their first OTP login: 居民 and the last 4 digits."""
    return f"居民{phone[-4:]}"


def login_sms(phone: str, code: str, ttl_seconds: int) -> SmsMessage:
    minutes = max(1, ttl_seconds // 60)
    return SmsMessage(
        phone=phone,
        text=f"【微心愿】您的登录验证码是 {code}，{minutes} 分钟内有效。请勿告诉他人。",
        template=SMS_TEMPLATE,
        params={"code": code, "minutes": str(minutes)},
    )
