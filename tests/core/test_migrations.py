"""Alembic is the only way a schema is made: models and migrations agree, and every
migration can be undone and redone, on both databases."""

from __future__ import annotations

from pathlib import Path

from app.core import migrate
from tests.conftest import dispose_database_url, fresh_database_url


def test_models_and_migrations_agree_and_round_trip(backend: str, tmp_path: Path) -> None:
    url = fresh_database_url(backend, tmp_path, prefix="mw_migrations")
    try:
        migrate.upgrade(url)
        migrate.check(url)  # raises if autogenerate would find a difference
        migrate.downgrade(url, "base")
        migrate.upgrade(url)
        migrate.check(url)
    finally:
        dispose_database_url(backend, url)
