"""Settings, read from environment variables prefixed ``MICROWISH_``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDER_SECRET = "development-only-placeholder-secret-change-me"
DEFAULT_SQLITE_PATH = Path("data") / "microwish.db"


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
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
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
    # How often the in-app clock expires overdue wishes (and, later, events and claims).
    clock_interval_seconds: float = Field(default=30.0, gt=0, le=3600)
    # How often claim events are checked for their opening and closing time (a cheap read).
    event_clock_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    # Rate limits ("off" for load tests and benchmarks); the store ("memory://", or a shared
    # one such as "redis://host:6379" for several server processes); per-member event claims.
    rate_limits: Literal["on", "off"] = "on"
    rate_limit_storage: str = "memory://"
    event_claim_rate_limit: str = "10/second;120/minute"

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
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

    @property
    def async_database_url(self) -> str:
        return normalize_database_url(self.database_url)

    @property
    def is_sqlite(self) -> bool:
        return self.async_database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
