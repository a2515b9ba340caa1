"""photos

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 22:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('photos',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('wish_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('claim_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('uploader_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('storage_key', sa.String(length=80), nullable=False),
    sa.Column('content_type', sa.String(length=32), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('byte_size', sa.Integer(), nullable=False),
    sa.Column('thumbnail_width', sa.Integer(), nullable=False),
    sa.Column('thumbnail_height', sa.Integer(), nullable=False),
    sa.Column('thumbnail_byte_size', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(kind = 'wish' AND claim_id IS NULL) OR (kind = 'proof' AND claim_id IS NOT NULL)", name=op.f('ck_photos_proof_has_claim')),
    sa.CheckConstraint("kind IN ('wish', 'proof')", name=op.f('ck_photos_kind')),
    sa.CheckConstraint('width > 0 AND height > 0 AND thumbnail_width > 0 AND thumbnail_height > 0', name=op.f('ck_photos_dimensions_positive')),
    sa.ForeignKeyConstraint(['claim_id'], ['claims.id'], name=op.f('fk_photos_claim_id_claims'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['uploader_id'], ['users.id'], name=op.f('fk_photos_uploader_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['wish_id'], ['wishes.id'], name=op.f('fk_photos_wish_id_wishes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_photos'))
    )
    with op.batch_alter_table('photos', schema=None) as batch_op:
        batch_op.create_index('ix_photos_claim_id_id', ['claim_id', 'id'], unique=False)
        batch_op.create_index('ix_photos_wish_id_kind_id', ['wish_id', 'kind', 'id'], unique=False)
        batch_op.create_index('uq_photos_storage_key', ['storage_key'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('photos', schema=None) as batch_op:
        batch_op.drop_index('uq_photos_storage_key')
        batch_op.drop_index('ix_photos_wish_id_kind_id')
        batch_op.drop_index('ix_photos_claim_id_id')
    op.drop_table('photos')
