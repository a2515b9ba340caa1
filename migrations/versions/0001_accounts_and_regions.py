"""accounts and regions

Revision ID: 0001
Revises: 
Create Date: 2026-11-27 19:21:36.060332
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('regions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('parent_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('district_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('street_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('community_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('grid_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(parent_id IS NULL) = (kind = 'district')", name=op.f('ck_regions_root_is_district')),
    sa.CheckConstraint("kind IN ('district', 'street', 'community', 'grid')", name=op.f('ck_regions_kind')),
    sa.ForeignKeyConstraint(['community_id'], ['regions.id'], name=op.f('fk_regions_community_id_regions')),
    sa.ForeignKeyConstraint(['district_id'], ['regions.id'], name=op.f('fk_regions_district_id_regions')),
    sa.ForeignKeyConstraint(['grid_id'], ['regions.id'], name=op.f('fk_regions_grid_id_regions')),
    sa.ForeignKeyConstraint(['parent_id'], ['regions.id'], name=op.f('fk_regions_parent_id_regions'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['street_id'], ['regions.id'], name=op.f('fk_regions_street_id_regions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_regions')),
    sa.UniqueConstraint('parent_id', 'name', name=op.f('uq_regions_parent_id_name'))
    )
    with op.batch_alter_table('regions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_regions_community_id'), ['community_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_regions_district_id'), ['district_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_regions_grid_id'), ['grid_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_regions_street_id'), ['street_id'], unique=False)
        batch_op.create_index('uq_regions_root_name', ['name'], unique=True, sqlite_where=sa.text('parent_id IS NULL'), postgresql_where=sa.text('parent_id IS NULL'))

    op.create_table('users',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('phone', sa.String(length=16), nullable=False),
    sa.Column('display_name', sa.String(length=50), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('is_admin', sa.Boolean(), server_default=sa.text('(false)'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('phone', name=op.f('uq_users_phone'))
    )
    op.create_table('organizer_grants',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('region_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('granted_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['granted_by'], ['users.id'], name=op.f('fk_organizer_grants_granted_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['region_id'], ['regions.id'], name=op.f('fk_organizer_grants_region_id_regions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_organizer_grants_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organizer_grants')),
    sa.UniqueConstraint('user_id', 'region_id', name=op.f('uq_organizer_grants_user_id_region_id'))
    )
    with op.batch_alter_table('organizer_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_organizer_grants_region_id'), ['region_id'], unique=False)

    op.create_table('refresh_tokens',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('family_id', sa.String(length=32), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('spent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_refresh_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refresh_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_refresh_tokens_token_hash'))
    )
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.create_index('ix_refresh_tokens_family_id', ['family_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_refresh_tokens_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refresh_tokens_user_id'))
        batch_op.drop_index('ix_refresh_tokens_family_id')

    op.drop_table('refresh_tokens')
    with op.batch_alter_table('organizer_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_organizer_grants_region_id'))

    op.drop_table('organizer_grants')
    op.drop_table('users')
    with op.batch_alter_table('regions', schema=None) as batch_op:
        batch_op.drop_index('uq_regions_root_name', sqlite_where=sa.text('parent_id IS NULL'), postgresql_where=sa.text('parent_id IS NULL'))
        batch_op.drop_index(batch_op.f('ix_regions_street_id'))
        batch_op.drop_index(batch_op.f('ix_regions_grid_id'))
        batch_op.drop_index(batch_op.f('ix_regions_district_id'))
        batch_op.drop_index(batch_op.f('ix_regions_community_id'))

    op.drop_table('regions')
