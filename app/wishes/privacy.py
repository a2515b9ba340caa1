"""What a viewer is shown of a wish's personal data (PIPL): pure functions, no I/O."""

from __future__ import annotations

from app.core.phone import mask_phone


def mask_name(name: str | None) -> str | None:
    """王阿姨 → 王**: the family name is enough to address someone politely."""
    if not name:
        return name
    return name[0] + "*" * max(len(name) - 1, 1)


def mask_address(address: str | None, community_name: str | None) -> str | None:
    """Cut to the community: the building and door number stay private."""
    if address is None:
        return None
    return community_name or "***"


def mask_contact_phone(phone: str | None) -> str | None:
    return mask_phone(phone) if phone else None
