"""claim path storage: the pooled-wish lookup by (event_id, id); room for HOT updates

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28 04:10:00

* ``ix_wishes_event_id`` becomes ``ix_wishes_event_id_id`` on ``(event_id, id)``. An event
  claim checks ``id = :wish AND event_id = :event``; right after an event opens, the
  statistics still say no wish is pooled, and PostgreSQL picked the ``event_id`` index as
  the cheaper one for a single row: every claim then scanned every pooled wish (500 in the
  rush benchmark) to find its own. With both columns in the index the lookup is exact
  whichever index the planner picks; listings of an event's wishes by id use it too.
* PostgreSQL only: ``fillfactor`` 85 on ``wishes`` and ``members``, whose counters every
  claim updates. With room left on each page, an update that changes no indexed column is
  a HOT update (no new entry in any of the table's indexes: wishes has nine); on full pages
  each update writes a new entry in every index. Applies to pages written from now on.
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HOT_TABLES = ('wishes', 'members')


def upgrade() -> None:
    op.create_index('ix_wishes_event_id_id', 'wishes', ['event_id', 'id'], unique=False)
    op.drop_index('ix_wishes_event_id', table_name='wishes')
    if op.get_bind().dialect.name == 'postgresql':
        for table in HOT_TABLES:
            op.execute(f'ALTER TABLE {table} SET (fillfactor = 85)')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in HOT_TABLES:
            op.execute(f'ALTER TABLE {table} RESET (fillfactor)')
    op.create_index('ix_wishes_event_id', 'wishes', ['event_id'], unique=False)
    op.drop_index('ix_wishes_event_id_id', table_name='wishes')
