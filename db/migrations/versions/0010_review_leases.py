"""Work assignment for a team of reviewers: leases on pairs (who holds or decided which pair, one row per slot), the
per-dataset overlap (reviewers per pair) and lease length, and the queue filter an admin assigns to a reviewer.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-09 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('review_assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reviewer', sa.String(length=200), nullable=False),
    sa.Column('queue_filter', sa.JSON(), nullable=False),
    sa.Column('set_by', sa.String(length=200), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_assignments')),
    sa.UniqueConstraint('reviewer', name=op.f('uq_review_assignments_reviewer'))
    )
    op.create_table('review_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('overlap', sa.Integer(), nullable=False),
    sa.Column('lease_minutes', sa.Integer(), nullable=False),
    sa.Column('set_by', sa.String(length=200), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('lease_minutes >= 1', name=op.f('ck_review_settings_lease_minutes_positive')),
    sa.CheckConstraint('overlap >= 1', name=op.f('ck_review_settings_overlap_positive')),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_review_settings_dataset_id_datasets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_settings')),
    sa.UniqueConstraint('dataset_id', name=op.f('uq_review_settings_dataset_id'))
    )
    op.create_table('review_leases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pair_id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('slot', sa.Integer(), nullable=False),
    sa.Column('reviewer', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('leased_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('held', 'decided')", name=op.f('ck_review_leases_state_known')),
    sa.CheckConstraint('slot >= 0', name=op.f('ck_review_leases_slot_non_negative')),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_review_leases_dataset_id_datasets')),
    sa.ForeignKeyConstraint(['pair_id'], ['entity_pairs.id'], name=op.f('fk_review_leases_pair_id_entity_pairs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_leases')),
    sa.UniqueConstraint('pair_id', 'reviewer', name=op.f('uq_review_leases_pair_id_reviewer')),
    sa.UniqueConstraint('pair_id', 'slot', name=op.f('uq_review_leases_pair_id_slot'))
    )
    op.create_index('ix_review_leases_dataset_state', 'review_leases', ['dataset_id', 'state'], unique=False)
    op.create_index('ix_review_leases_reviewer_state', 'review_leases', ['reviewer', 'state'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_review_leases_reviewer_state', table_name='review_leases')
    op.drop_index('ix_review_leases_dataset_state', table_name='review_leases')
    op.drop_table('review_leases')
    op.drop_table('review_settings')
    op.drop_table('review_assignments')
