"""Phone numbers: E.164 normalisation (mainland numbers may omit +86) and masking."""

from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "CN"


def normalize_phone(raw: str) -> str:
    """``13800138000``, ``+86 138-0013-8000`` → ``+8613800138000``; ValueError if not a number."""
    candidate = raw.strip()
    if not candidate or len(candidate) > 32:
        raise ValueError("not a phone number")
    try:
        number = phonenumbers.parse(candidate, DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    formatted: str = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return formatted


def mask_phone(e164: str) -> str:
    """``+8613912345678`` → ``139****5678``: national number with the middle four hidden."""
    national = e164[3:] if e164.startswith("+86") else e164.lstrip("+")
    if len(national) <= 7:
        return national[:1] + "*" * max(len(national) - 2, 0) + national[-1:]
    return national[:3] + "****" + national[-4:]
