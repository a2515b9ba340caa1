"""matching runs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 20:13:54.447130
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('matching_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('organizer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('region_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('inputs', sa.JSON(), nullable=False),
    sa.Column('wish_count', sa.Integer(), nullable=False),
    sa.Column('member_count', sa.Integer(), nullable=False),
    sa.Column('candidate_count', sa.Integer(), nullable=False),
    sa.Column('slots_open', sa.Integer(), nullable=False),
    sa.Column('slots_filled', sa.Integer(), nullable=False),
    sa.Column('total_score', sa.Float(), nullable=False),
    sa.Column('greedy_slots_filled', sa.Integer(), nullable=False),
    sa.Column('greedy_total_score', sa.Float(), nullable=False),
    sa.Column('load', sa.JSON(), nullable=False),
    sa.Column('unfilled', sa.JSON(), nullable=False),
    sa.Column('candidates_ms', sa.Integer(), nullable=False),
    sa.Column('solve_ms', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('applied_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.CheckConstraint("status IN ('computed', 'applied')", name=op.f('ck_matching_runs_status')),
    sa.ForeignKeyConstraint(['applied_by'], ['users.id'], name=op.f('fk_matching_runs_applied_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['organizer_id'], ['users.id'], name=op.f('fk_matching_runs_organizer_id_users')),
    sa.ForeignKeyConstraint(['region_id'], ['regions.id'], name=op.f('fk_matching_runs_region_id_regions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_matching_runs'))
    )
    with op.batch_alter_table('matching_runs', schema=None) as batch_op:
        batch_op.create_index('ix_matching_runs_region_id_id', ['region_id', 'id'], unique=False)

    op.create_table('matching_assignments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('wish_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('components', sa.JSON(), nullable=False),
    sa.Column('locality_level', sa.String(length=16), nullable=False),
    sa.Column('general_help', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('skip_reason', sa.String(length=32), nullable=True),
    sa.Column('claim_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.CheckConstraint("status IN ('proposed', 'applied', 'skipped')", name=op.f('ck_matching_assignments_status')),
    sa.ForeignKeyConstraint(['claim_id'], ['claims.id'], name=op.f('fk_matching_assignments_claim_id_claims'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['member_id'], ['members.user_id'], name=op.f('fk_matching_assignments_member_id_members'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['matching_runs.id'], name=op.f('fk_matching_assignments_run_id_matching_runs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['wish_id'], ['wishes.id'], name=op.f('fk_matching_assignments_wish_id_wishes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_matching_assignments'))
    )
    with op.batch_alter_table('matching_assignments', schema=None) as batch_op:
        batch_op.create_index('uq_matching_assignments_run_wish_member', ['run_id', 'wish_id', 'member_id'], unique=True)



def downgrade() -> None:
    with op.batch_alter_table('matching_assignments', schema=None) as batch_op:
        batch_op.drop_index('uq_matching_assignments_run_wish_member')

    op.drop_table('matching_assignments')
    with op.batch_alter_table('matching_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_matching_runs_region_id_id')

    op.drop_table('matching_runs')
