"""claim events

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 22:04:06.929912
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('claim_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('organizer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('title', sa.String(length=80), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('per_member_quota', sa.Integer(), nullable=False),
    sa.Column('board_token', sa.String(length=64), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('opened_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('closed_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('allocation', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.CheckConstraint("mode IN ('rush', 'allocate')", name=op.f('ck_claim_events_mode')),
    sa.CheckConstraint("status IN ('draft', 'scheduled', 'live', 'closed')", name=op.f('ck_claim_events_status')),
    sa.CheckConstraint('ends_at IS NULL OR starts_at IS NULL OR ends_at > starts_at', name=op.f('ck_claim_events_window')),
    sa.CheckConstraint('per_member_quota BETWEEN 1 AND 50', name=op.f('ck_claim_events_quota_range')),
    sa.ForeignKeyConstraint(['closed_by'], ['users.id'], name=op.f('fk_claim_events_closed_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['opened_by'], ['users.id'], name=op.f('fk_claim_events_opened_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['organizer_id'], ['users.id'], name=op.f('fk_claim_events_organizer_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_claim_events'))
    )
    with op.batch_alter_table('claim_events', schema=None) as batch_op:
        batch_op.create_index('ix_claim_events_status_ends_at', ['status', 'ends_at'], unique=False)
        batch_op.create_index('ix_claim_events_status_starts_at', ['status', 'starts_at'], unique=False)

    op.create_table('claim_event_communities',
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('community_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['community_id'], ['regions.id'], name=op.f('fk_claim_event_communities_community_id_regions')),
    sa.ForeignKeyConstraint(['event_id'], ['claim_events.id'], name=op.f('fk_claim_event_communities_event_id_claim_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('event_id', 'community_id', name=op.f('pk_claim_event_communities'))
    )
    op.create_table('claim_event_participants',
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('claims', sa.Integer(), nullable=False),
    sa.CheckConstraint('claims >= 0', name=op.f('ck_claim_event_participants_claims_non_negative')),
    sa.ForeignKeyConstraint(['event_id'], ['claim_events.id'], name=op.f('fk_claim_event_participants_event_id_claim_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['members.user_id'], name=op.f('fk_claim_event_participants_member_id_members'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('event_id', 'member_id', name=op.f('pk_claim_event_participants'))
    )
    op.create_table('claim_event_preferences',
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('wish_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('rank BETWEEN 1 AND 20', name=op.f('ck_claim_event_preferences_rank_range')),
    sa.ForeignKeyConstraint(['event_id'], ['claim_events.id'], name=op.f('fk_claim_event_preferences_event_id_claim_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['members.user_id'], name=op.f('fk_claim_event_preferences_member_id_members'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['wish_id'], ['wishes.id'], name=op.f('fk_claim_event_preferences_wish_id_wishes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('event_id', 'member_id', 'wish_id', name=op.f('pk_claim_event_preferences'))
    )
    with op.batch_alter_table('claim_event_preferences', schema=None) as batch_op:
        batch_op.create_index('uq_claim_event_preferences_rank', ['event_id', 'member_id', 'rank'], unique=True)

    op.create_table('claim_event_wishes',
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('wish_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('community_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('slots_free_at_open', sa.Integer(), nullable=True),
    sa.Column('pooled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('returned_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('selected', 'pooled', 'skipped', 'removed', 'returned')", name=op.f('ck_claim_event_wishes_state')),
    sa.ForeignKeyConstraint(['community_id'], ['regions.id'], name=op.f('fk_claim_event_wishes_community_id_regions')),
    sa.ForeignKeyConstraint(['event_id'], ['claim_events.id'], name=op.f('fk_claim_event_wishes_event_id_claim_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['wish_id'], ['wishes.id'], name=op.f('fk_claim_event_wishes_wish_id_wishes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('event_id', 'wish_id', name=op.f('pk_claim_event_wishes'))
    )
    with op.batch_alter_table('claim_event_wishes', schema=None) as batch_op:
        batch_op.create_index('ix_claim_event_wishes_wish_id', ['wish_id'], unique=False)

    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.add_column(sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.create_index('ix_claims_event_id_id', ['event_id', 'id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_claims_event_id_claim_events'), 'claim_events', ['event_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('wishes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.create_index('ix_wishes_event_id', ['event_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_wishes_event_id_claim_events'), 'claim_events', ['event_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('wishes', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_wishes_event_id_claim_events'), type_='foreignkey')
        batch_op.drop_index('ix_wishes_event_id')
        batch_op.drop_column('event_id')

    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_claims_event_id_claim_events'), type_='foreignkey')
        batch_op.drop_index('ix_claims_event_id_id')
        batch_op.drop_column('event_id')

    with op.batch_alter_table('claim_event_wishes', schema=None) as batch_op:
        batch_op.drop_index('ix_claim_event_wishes_wish_id')

    op.drop_table('claim_event_wishes')
    with op.batch_alter_table('claim_event_preferences', schema=None) as batch_op:
        batch_op.drop_index('uq_claim_event_preferences_rank')

    op.drop_table('claim_event_preferences')
    op.drop_table('claim_event_participants')
    op.drop_table('claim_event_communities')
    with op.batch_alter_table('claim_events', schema=None) as batch_op:
        batch_op.drop_index('ix_claim_events_status_starts_at')
        batch_op.drop_index('ix_claim_events_status_ends_at')

    op.drop_table('claim_events')
