"""Run Alembic from code (``microwish migrate``), with no alembic.ini needed."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(database_url: str) -> Config:
    if not MIGRATIONS_DIR.is_dir():
        raise RuntimeError(
            f"migrations not found at {MIGRATIONS_DIR}: install the project from its source "
            "tree (pip install -e .), as the Makefile and Dockerfile do"
        )
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' is ConfigParser's interpolation character; a password may contain one.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def check(database_url: str) -> None:
    """Raises if the models and the migrations disagree."""
    command.check(alembic_config(database_url))
