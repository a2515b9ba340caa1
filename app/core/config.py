"""Settings, read from environment variables prefixed ``MICROWISH_``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Plain functions without application imports: checking the push webhook at start.
from app.notifications.delivery import signing, targets

PLACEHOLDER_SECRET = "development-only-placeholder-secret-change-me"
DEFAULT_SQLITE_PATH = Path("data") / "microwish.db"
ALLOW_PRIVATE_HINT = (
    "for a gateway inside your own network, set MICROWISH_WEBHOOK_ALLOW_PRIVATE=true"
)


class ConfigurationError(RuntimeError):
    """The environment asks for something the service refuses to run with."""


def normalize_database_url(url: str) -> str:
    """Turn an operator's plain URL into one naming the driver we chose.

    Operators write ``postgresql://user@host:5432/db`` or ``sqlite:///path``; the
    service always talks to PostgreSQL through asyncpg and to SQLite through
    aiosqlite, so whatever driver was spelled is replaced.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0].lower()
    if scheme in {"postgres", "postgresql"}:
        # asyncpg spells libpq's sslmode as ssl.
        query = [("ssl", v) if k == "sslmode" else (k, v) for k, v in parse_qsl(parts.query)]
        return urlunsplit(("postgresql+asyncpg", parts.netloc, parts.path, urlencode(query), ""))
    if scheme == "sqlite":
        # urlunsplit would fold sqlite:///relative into sqlite://relative: swap the scheme only.
        return "sqlite+aiosqlite:" + url.split(":", 1)[1]
    raise ConfigurationError(
        f"MICROWISH_DATABASE_URL must be a postgresql:// or sqlite:// URL, not {scheme}://"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MICROWISH_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    secret_key: str = PLACEHOLDER_SECRET
    access_token_ttl_seconds: int = Field(default=15 * 60, ge=60, le=24 * 3600)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=3600)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # SQLite: how long a writer waits for the single write lock before failing.
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    # A fixed pool: connections over pool_size are opened and closed as load moves, and under
    # a claim rush that churn cost each one a new PostgreSQL backend and re-prepared
    # statements (a request waits for a free connection instead).
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=0, ge=0)
    log_level: str = "INFO"
    # Where members may claim directly: "area" = home community and roster service regions
    # (the district's practice; other communities' wishes go through claim events),
    # "district" = anywhere in the district.
    direct_claim_scope: Literal["area", "district"] = "area"
    # Matching: the weight of each score component (see app/matching/engine.py and README),
    # and how many best candidates per wish a batch run considers.
    match_weight_category: float = Field(default=0.30, ge=0, le=1)
    match_weight_text: float = Field(default=0.15, ge=0, le=1)
    match_weight_locality: float = Field(default=0.25, ge=0, le=1)
    match_weight_capacity: float = Field(default=0.10, ge=0, le=1)
    match_weight_urgency: float = Field(default=0.10, ge=0, le=1)
    match_weight_fairness: float = Field(default=0.10, ge=0, le=1)
    match_candidates_per_wish: int = Field(default=20, ge=1, le=200)
    # How often the in-app clock runs its other jobs (claim reminders, purges).
    clock_interval_seconds: float = Field(default=30.0, gt=0, le=3600)
    # How often claim events are checked for their opening and closing time (a cheap read;
    # a write only when one is due).
    event_clock_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    # How often claims and wishes are checked for their deadlines (the same).
    deadline_clock_interval_seconds: float = Field(default=1.0, gt=0, le=3600)
    # How long Idempotency-Key responses are kept (the draft asks for at least 24 hours).
    idempotency_ttl_hours: int = Field(default=48, ge=24, le=24 * 30)
    # Delta sync (app/sync): a token older than this is 410 sync_token_expired (full resync).
    sync_token_ttl_days: int = Field(default=30, ge=1, le=365)
    # Rate limits ("off" for load tests and benchmarks); the store ("memory://", or a shared
    # one such as "redis://host:6379" for several server processes); per-member event claims.
    rate_limits: Literal["on", "off"] = "on"
    rate_limit_storage: str = "memory://"
    # Per member; generous enough for a phone, a script hammering the server is stopped.
    claim_rate_limit: str = "100/second;1000/minute"
    event_claim_rate_limit: str = "100/second;1000/minute"
    # Auth endpoints (see app/accounts/router.py): failed attempts per client IP on register,
    # token, refresh and OTP verify together (successes never count: a community service
    # centre or a carrier's NAT puts many phones behind one address); tries per phone on
    # password login since its last good one (throttles password guessing); per phone and
    # per IP on OTP requests (each one sends an SMS, which costs money).
    auth_rate_limit: str = "100/minute;1000/hour"
    login_phone_rate_limit: str = "5/minute;20/hour"
    otp_phone_rate_limit: str = "5/hour;10/day"
    otp_ip_rate_limit: str = "60/hour"
    # OTP login codes: lifetime, wait before another code for the same phone, wrong guesses
    # a code survives.
    otp_ttl_seconds: int = Field(default=300, ge=60, le=3600)
    otp_resend_seconds: int = Field(default=60, ge=1, le=3600)
    otp_max_attempts: int = Field(default=5, ge=1, le=20)
    # How SMS leave (see app/core/sms.py): "file" appends JSON lines to sms_file (development,
    # tests), "log" writes them to the log; a real provider is added there.
    sms_sender: Literal["file", "log"] = "file"
    sms_file: Path = Path("data") / "sms.jsonl"

    # Photos (see app/photos and README "Photos"): where they are kept ("local": files under
    # photo_dir; "s3": an S3-compatible bucket, with `pip install 'microwish[s3]'`), what an
    # upload may be, the sizes it is re-encoded to, and how long a signed photo URL works.
    photo_storage: Literal["local", "s3"] = "local"
    photo_dir: Path = Path("data") / "photos"
    photo_s3_bucket: str | None = None
    photo_s3_prefix: str = "photos/"
    photo_s3_endpoint_url: str | None = None
    photo_s3_region: str | None = None
    photo_s3_access_key_id: str | None = None
    photo_s3_secret_access_key: SecretStr | None = None
    photo_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    photo_max_pixels: int = Field(default=40_000_000, ge=10_000, le=200_000_000)
    photo_max_side: int = Field(default=2048, ge=256, le=8192)
    photo_thumbnail_side: int = Field(default=320, ge=32, le=1024)
    photo_max_per_wish: int = Field(default=6, ge=1, le=50)
    photo_url_ttl_seconds: int = Field(default=600, ge=30, le=24 * 3600)
    photo_upload_rate_limit: str = "30/minute;300/day"

    # Notifications (see app/notifications and README "Notifications"): the push gateway's
    # webhook (off without a URL: notifications then stay in the in-app inbox), its Standard
    # Webhooks secret (whsec_<base64>), whether it may sit on a private or loopback address,
    # retries (exponential backoff with jitter, then the dead letter), and how long before
    # a claim event opens its members are reminded.
    push_webhook_url: str | None = None
    push_webhook_secret: SecretStr | None = None
    webhook_allow_private: bool = False
    push_max_attempts: int = Field(default=8, ge=1, le=30)
    push_retry_base_seconds: float = Field(default=15.0, gt=0, le=3600)
    push_retry_max_seconds: float = Field(default=3600.0, gt=0, le=24 * 3600)
    push_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    push_poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    push_batch_size: int = Field(default=50, ge=1, le=1000)
    event_reminder_minutes: int = Field(default=30, ge=1, le=24 * 60)

    # Claim deadlines (see app/claims/deadlines.py and README "Claim deadlines"): days a
    # member has to fulfil a claim, per category where it differs (a JSON object, e.g.
    # '{"repair": 7, "companionship": 30}'); how many
    # hours before it the member is reminded. Past it, the claim is released.
    claim_deadline_days: int = Field(default=14, ge=1, le=365)
    claim_deadline_days_by_category: dict[str, int] = Field(default_factory=dict)
    claim_reminder_hours: int = Field(default=24, ge=1, le=24 * 30)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("claim_deadline_days_by_category")
    @classmethod
    def _deadline_days_in_range(cls, value: dict[str, int]) -> dict[str, int]:
        for category, days in value.items():
            if not 1 <= days <= 365:
                raise ValueError(f"{category}: {days} days is not between 1 and 365")
        return value

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        if self.env != "development" and self.secret_key == PLACEHOLDER_SECRET:
            raise ConfigurationError(
                "MICROWISH_SECRET_KEY must be set to a random value outside development "
                "(for example: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if self.env != "development" and len(self.secret_key) < 32:
            raise ConfigurationError("MICROWISH_SECRET_KEY must be at least 32 characters")
        return self

    @model_validator(mode="after")
    def _photo_storage_complete(self) -> Settings:
        if self.photo_storage == "s3" and not self.photo_s3_bucket:
            raise ConfigurationError("MICROWISH_PHOTO_STORAGE=s3 needs MICROWISH_PHOTO_S3_BUCKET")
        return self

    @model_validator(mode="after")
    def _push_webhook_usable(self) -> Settings:
        if not self.push_webhook_url:
            self.push_webhook_url = None
            return self
        try:
            targets.check_configured(
                self.push_webhook_url, allow_private=self.webhook_allow_private
            )
        except targets.UnsafeTarget as exc:
            hint = "" if self.webhook_allow_private else f" ({ALLOW_PRIVATE_HINT})"
            raise ConfigurationError(f"MICROWISH_PUSH_WEBHOOK_URL refused: {exc}{hint}") from exc
        if self.push_webhook_secret is None:
            raise ConfigurationError(
                "MICROWISH_PUSH_WEBHOOK_URL needs MICROWISH_PUSH_WEBHOOK_SECRET: whsec_ followed "
                "by the base64 of 24-64 random bytes (README, Notifications, shows how to make one)"
            )
        try:
            signing.secret_bytes(self.push_webhook_secret.get_secret_value())
        except signing.InvalidSecret as exc:
            raise ConfigurationError(f"MICROWISH_PUSH_WEBHOOK_SECRET: {exc}") from exc
        return self

    @property
    def async_database_url(self) -> str:
        return normalize_database_url(self.database_url)

    @property
    def is_sqlite(self) -> bool:
        return self.async_database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
