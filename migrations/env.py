"""Alembic environment: the database URL comes from MICROWISH_DATABASE_URL (or the
``sqlalchemy.url`` option set by ``microwish migrate``), never from alembic.ini."""

from __future__ import annotations

import asyncio
from typing import Literal

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.config import Settings, normalize_database_url
from app.core.db import Base, UTCDateTime
from app.models import import_all_models

import_all_models()
target_metadata = Base.metadata
config = context.config


def _database_url() -> str:
    configured = config.get_main_option("sqlalchemy.url")
    return normalize_database_url(configured or Settings().database_url)


def _render_item(type_: str, obj: object, autogen_context: object) -> str | Literal[False]:
    # Migrations spell plain SQLAlchemy types, so they never import application code.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place: batch mode recreates the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=False,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    url = _database_url()
    if url.startswith("sqlite"):
        from app.core.db import ensure_sqlite_directory

        ensure_sqlite_directory(url)
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure)
            await connection.commit()
    finally:
        await engine.dispose()


def _run_offline() -> None:
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    existing = config.attributes.get("connection")
    if existing is not None:
        _configure(existing)
    else:
        asyncio.run(_run_online())
