"""Imports every domain's models so ``Base.metadata`` knows all tables (for Alembic)."""

from __future__ import annotations


def import_all_models() -> None:
    import app.accounts.models
    import app.categories.models
    import app.claims.models
    import app.core.idempotency
    import app.events.models
    import app.matching.models
    import app.members.models
    import app.notifications.models
    import app.photos.models
    import app.regions.models
    import app.sync.models
    import app.wishes.models  # noqa: F401
