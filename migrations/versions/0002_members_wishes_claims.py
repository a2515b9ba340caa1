"""members wishes claims

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 19:28:22.090652
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# The brief's category list, as it stood when this migration was written.
CATEGORIES = (
    ("daily_necessities", "生活物资", "Daily necessities"),
    ("repair", "维修", "Repair"),
    ("companionship", "陪伴", "Companionship"),
    ("tutoring", "课业辅导", "Tutoring"),
    ("health", "医疗健康", "Health"),
    ("elder_care", "助老", "Elder care"),
    ("child_care", "助幼", "Child care"),
    ("disability_support", "助残", "Disability support"),
    ("other", "其他", "Other"),
)

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('categories',
    sa.Column('slug', sa.String(length=32), nullable=False),
    sa.Column('label_zh', sa.String(length=40), nullable=False),
    sa.Column('label_en', sa.String(length=60), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('slug', name=op.f('pk_categories'))
    )
    categories = sa.table(
        "categories",
        sa.column("slug", sa.String),
        sa.column("label_zh", sa.String),
        sa.column("label_en", sa.String),
        sa.column("position", sa.Integer),
    )
    op.bulk_insert(
        categories,
        [
            {"slug": slug, "label_zh": zh, "label_en": en, "position": position}
            for position, (slug, zh, en) in enumerate(CATEGORIES)
        ],
    )
    op.create_table('members',
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('community_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('active_claims', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reviewed_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'active', 'suspended')", name=op.f('ck_members_status')),
    sa.CheckConstraint('active_claims >= 0', name=op.f('ck_members_active_claims_non_negative')),
    sa.CheckConstraint('capacity BETWEEN 0 AND 50', name=op.f('ck_members_capacity_range')),
    sa.ForeignKeyConstraint(['community_id'], ['regions.id'], name=op.f('fk_members_community_id_regions')),
    sa.ForeignKeyConstraint(['reviewed_by'], ['users.id'], name=op.f('fk_members_reviewed_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_members_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_members'))
    )
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_members_community_id'), ['community_id'], unique=False)

    op.create_table('wishes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('resident_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('creator_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('beneficiary_name', sa.String(length=50), nullable=False),
    sa.Column('region_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('district_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('street_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('community_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('grid_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=60), nullable=False),
    sa.Column('description', sa.String(length=2000), nullable=False),
    sa.Column('slots_total', sa.Integer(), nullable=False),
    sa.Column('slots_claimed', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('slots_fulfilled', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=True),
    sa.Column('contact_name', sa.String(length=50), nullable=True),
    sa.Column('contact_phone', sa.String(length=16), nullable=True),
    sa.Column('contact_address', sa.String(length=200), nullable=True),
    sa.Column('review_note', sa.String(length=500), nullable=True),
    sa.Column('reviewed_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rating', sa.Integer(), nullable=True),
    sa.Column('thanks', sa.String(length=500), nullable=True),
    sa.Column('cancel_reason', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fulfilled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.CheckConstraint("status IN ('pending_review', 'open', 'claimed', 'fulfilled', 'confirmed', 'rejected', 'cancelled', 'expired')", name=op.f('ck_wishes_status')),
    sa.CheckConstraint('rating IS NULL OR rating BETWEEN 1 AND 5', name=op.f('ck_wishes_rating_range')),
    sa.CheckConstraint('slots_claimed BETWEEN 0 AND slots_total', name=op.f('ck_wishes_slots_claimed_range')),
    sa.CheckConstraint('slots_fulfilled BETWEEN 0 AND slots_claimed', name=op.f('ck_wishes_slots_fulfilled_range')),
    sa.CheckConstraint('slots_total BETWEEN 1 AND 100', name=op.f('ck_wishes_slots_total_range')),
    sa.ForeignKeyConstraint(['category'], ['categories.slug'], name=op.f('fk_wishes_category_categories')),
    sa.ForeignKeyConstraint(['community_id'], ['regions.id'], name=op.f('fk_wishes_community_id_regions')),
    sa.ForeignKeyConstraint(['creator_id'], ['users.id'], name=op.f('fk_wishes_creator_id_users')),
    sa.ForeignKeyConstraint(['district_id'], ['regions.id'], name=op.f('fk_wishes_district_id_regions')),
    sa.ForeignKeyConstraint(['grid_id'], ['regions.id'], name=op.f('fk_wishes_grid_id_regions')),
    sa.ForeignKeyConstraint(['region_id'], ['regions.id'], name=op.f('fk_wishes_region_id_regions')),
    sa.ForeignKeyConstraint(['resident_id'], ['users.id'], name=op.f('fk_wishes_resident_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['reviewed_by'], ['users.id'], name=op.f('fk_wishes_reviewed_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['street_id'], ['regions.id'], name=op.f('fk_wishes_street_id_regions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wishes'))
    )
    with op.batch_alter_table('wishes', schema=None) as batch_op:
        batch_op.create_index('ix_wishes_community_id_status_id', ['community_id', 'status', 'id'], unique=False)
        batch_op.create_index('ix_wishes_creator_id_id', ['creator_id', 'id'], unique=False)
        batch_op.create_index('ix_wishes_deadline_open', ['deadline'], unique=False, sqlite_where=sa.text("status IN ('open', 'pending_review')"), postgresql_where=sa.text("status IN ('open', 'pending_review')"))
        batch_op.create_index('ix_wishes_resident_id_id', ['resident_id', 'id'], unique=False)
        batch_op.create_index('ix_wishes_status_id', ['status', 'id'], unique=False)
        batch_op.create_index('ix_wishes_street_id_status_id', ['street_id', 'status', 'id'], unique=False)

    op.create_table('claims',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('wish_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('slots', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fulfilled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('fulfil_note', sa.String(length=500), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sa.String(length=500), nullable=True),
    sa.Column('ended_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('version', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.CheckConstraint("source IN ('direct', 'event', 'match')", name=op.f('ck_claims_source')),
    sa.CheckConstraint("status IN ('active', 'fulfilled', 'withdrawn', 'released', 'revoked')", name=op.f('ck_claims_status')),
    sa.CheckConstraint('slots >= 1', name=op.f('ck_claims_slots_positive')),
    sa.ForeignKeyConstraint(['ended_by'], ['users.id'], name=op.f('fk_claims_ended_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['member_id'], ['members.user_id'], name=op.f('fk_claims_member_id_members'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['wish_id'], ['wishes.id'], name=op.f('fk_claims_wish_id_wishes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_claims'))
    )
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.create_index('ix_claims_member_id_id', ['member_id', 'id'], unique=False)
        batch_op.create_index('ix_claims_wish_id_status', ['wish_id', 'status'], unique=False)
        batch_op.create_index('uq_claims_live_wish_member', ['wish_id', 'member_id'], unique=True, sqlite_where=sa.text("status IN ('active', 'fulfilled')"), postgresql_where=sa.text("status IN ('active', 'fulfilled')"))

    op.create_table('contact_access_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('wish_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('viewer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['viewer_id'], ['users.id'], name=op.f('fk_contact_access_log_viewer_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['wish_id'], ['wishes.id'], name=op.f('fk_contact_access_log_wish_id_wishes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_access_log'))
    )
    with op.batch_alter_table('contact_access_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_access_log_viewer_id'), ['viewer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contact_access_log_wish_id'), ['wish_id'], unique=False)

    op.create_table('member_areas',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('region_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.user_id'], name=op.f('fk_member_areas_member_id_members'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['region_id'], ['regions.id'], name=op.f('fk_member_areas_region_id_regions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_areas')),
    sa.UniqueConstraint('member_id', 'region_id', name=op.f('uq_member_areas_member_id_region_id'))
    )
    op.create_table('member_resources',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=60), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.CheckConstraint('quantity BETWEEN 1 AND 9999', name=op.f('ck_member_resources_quantity_range')),
    sa.ForeignKeyConstraint(['category'], ['categories.slug'], name=op.f('fk_member_resources_category_categories')),
    sa.ForeignKeyConstraint(['member_id'], ['members.user_id'], name=op.f('fk_member_resources_member_id_members'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_resources'))
    )
    with op.batch_alter_table('member_resources', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_member_resources_member_id'), ['member_id'], unique=False)

    op.create_table('member_resource_regions',
    sa.Column('resource_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('region_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['region_id'], ['regions.id'], name=op.f('fk_member_resource_regions_region_id_regions')),
    sa.ForeignKeyConstraint(['resource_id'], ['member_resources.id'], name=op.f('fk_member_resource_regions_resource_id_member_resources'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('resource_id', 'region_id', name=op.f('pk_member_resource_regions'))
    )


def downgrade() -> None:
    op.drop_table('member_resource_regions')
    with op.batch_alter_table('member_resources', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_resources_member_id'))

    op.drop_table('member_resources')
    op.drop_table('member_areas')
    with op.batch_alter_table('contact_access_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_access_log_wish_id'))
        batch_op.drop_index(batch_op.f('ix_contact_access_log_viewer_id'))

    op.drop_table('contact_access_log')
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.drop_index('uq_claims_live_wish_member', sqlite_where=sa.text("status IN ('active', 'fulfilled')"), postgresql_where=sa.text("status IN ('active', 'fulfilled')"))
        batch_op.drop_index('ix_claims_wish_id_status')
        batch_op.drop_index('ix_claims_member_id_id')

    op.drop_table('claims')
    with op.batch_alter_table('wishes', schema=None) as batch_op:
        batch_op.drop_index('ix_wishes_street_id_status_id')
        batch_op.drop_index('ix_wishes_status_id')
        batch_op.drop_index('ix_wishes_resident_id_id')
        batch_op.drop_index('ix_wishes_deadline_open', sqlite_where=sa.text("status IN ('open', 'pending_review')"), postgresql_where=sa.text("status IN ('open', 'pending_review')"))
        batch_op.drop_index('ix_wishes_creator_id_id')
        batch_op.drop_index('ix_wishes_community_id_status_id')

    op.drop_table('wishes')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_members_community_id'))

    op.drop_table('members')
    op.drop_table('categories')
