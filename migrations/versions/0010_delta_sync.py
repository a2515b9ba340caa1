"""delta sync

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 22:40:00

Every row of ``wishes``, ``claims`` and ``notifications`` carries ``sync_version``, set by a
trigger on every INSERT and UPDATE, so every write path (ORM, Core, the one-statement claim
CTE, bulk SQL) is covered without knowing about it (see app/sync/service.py):

* PostgreSQL: the writing transaction's 64-bit id (``pg_current_xact_id()``, the top-level
  transaction's even inside a savepoint). A reader's token is its snapshot's xmin; every
  transaction it could not see has an id >= that xmin, whenever it commits.
* SQLite: a counter in ``sync_state``, bumped for every row written. Writers are serialized
  (one write transaction at a time), so a transaction a reader cannot see numbers its rows
  above every counter value the reader can see. SQLite's BEFORE triggers cannot change NEW,
  so the AFTER trigger updates the row it fired for; its WHEN clause (the version did not
  change) keeps the trigger from firing on its own update.

``sync_state`` holds one row: the database's sync epoch (random, in every token: a token from
another database, or from before the database was rebuilt, is refused) and the SQLite
counter. Existing rows keep version 0: older than any token.

A later SQLite batch migration that recreates one of these tables drops its triggers: it must
create them again (``_create_sqlite_triggers``); tests/sync checks they exist.
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAMPED_TABLES = ('wishes', 'claims', 'notifications')


def _create_postgresql_triggers() -> None:
    op.execute(
        """
        CREATE FUNCTION sync_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.sync_version := pg_current_xact_id()::text::bigint;
            RETURN NEW;
        END
        $$
        """
    )
    for table in STAMPED_TABLES:
        op.execute(
            f'CREATE TRIGGER {table}_sync_stamp BEFORE INSERT OR UPDATE ON {table} '
            'FOR EACH ROW EXECUTE FUNCTION sync_stamp()'
        )


def _create_sqlite_triggers(table: str) -> None:
    stamp = (
        'UPDATE sync_state SET counter = counter + 1 WHERE id = 1; '
        f'UPDATE {table} SET sync_version = (SELECT counter FROM sync_state WHERE id = 1) '
        'WHERE id = NEW.id;'
    )
    op.execute(
        f'CREATE TRIGGER {table}_sync_insert AFTER INSERT ON {table} BEGIN {stamp} END'
    )
    op.execute(
        f'CREATE TRIGGER {table}_sync_update AFTER UPDATE ON {table} '
        f'WHEN NEW.sync_version IS OLD.sync_version BEGIN {stamp} END'
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    sync_state = op.create_table('sync_state',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('epoch', sa.String(length=32), nullable=False),
    sa.Column('counter', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_sync_state_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_state'))
    )
    op.bulk_insert(sync_state, [{'id': 1, 'epoch': uuid.uuid4().hex, 'counter': 0}])
    for table in STAMPED_TABLES:
        # Not batch mode: ADD COLUMN with a constant default is in place on both databases
        # (no table rebuild on SQLite, no rewrite on PostgreSQL).
        op.add_column(
            table,
            sa.Column('sync_version', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
        )
    # The delta of a user's inbox reads this; wishes get no such index on purpose: an index
    # on a column every write changes would end HOT updates of the claim path's wish row.
    op.create_index(
        'ix_notifications_user_id_sync_version',
        'notifications',
        ['user_id', 'sync_version'],
        unique=False,
    )
    if dialect == 'postgresql':
        _create_postgresql_triggers()
    else:
        for table in STAMPED_TABLES:
            _create_sqlite_triggers(table)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == 'postgresql':
        for table in STAMPED_TABLES:
            op.execute(f'DROP TRIGGER {table}_sync_stamp ON {table}')
        op.execute('DROP FUNCTION sync_stamp()')
    else:
        for table in STAMPED_TABLES:
            op.execute(f'DROP TRIGGER {table}_sync_update')
            op.execute(f'DROP TRIGGER {table}_sync_insert')
    op.drop_index('ix_notifications_user_id_sync_version', table_name='notifications')
    for table in reversed(STAMPED_TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('sync_version')
    op.drop_table('sync_state')
