from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, BigIntPK, UTCDateTime, utcnow

PHONE_MAX = 16  # E.164: '+' and at most 15 digits
DISPLAY_NAME_MAX = 50


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    phone: Mapped[str] = mapped_column(String(PHONE_MAX), unique=True)
    display_name: Mapped[str] = mapped_column(String(DISPLAY_NAME_MAX))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RefreshToken(Base):
    """One refresh token of a rotation family; only its SHA-256 is stored.

    Refreshing spends a token and issues its successor in the same family. Presenting a
    spent token means it was stolen or replayed, so the whole family is revoked.
    """

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_family_id", "family_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    spent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OtpCode(Base):
    """The login code last sent to a phone (OTP login); only its HMAC is stored.

    One row per phone: a new code replaces the previous one, so only the latest code works.
    The phone is not a foreign key: codes go to unregistered phones too (first login
    registers), and the answers are the same either way. Rows are deleted once expired.
    """

    __tablename__ = "otp_codes"
    __table_args__ = (
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        Index("ix_otp_codes_expires_at", "expires_at"),
    )

    phone: Mapped[str] = mapped_column(String(PHONE_MAX), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    # When the code was sent: another one may be asked for resend-cooldown seconds later.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Verification attempts, right or wrong; the code is dead at settings.otp_max_attempts.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
