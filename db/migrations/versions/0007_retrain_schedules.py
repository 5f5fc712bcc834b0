"""Retraining that starts by itself every N new review decisions of a dataset (off by default: no row).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 01:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('retrain_schedules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('every', sa.Integer(), nullable=True),
    sa.Column('epochs', sa.Integer(), nullable=False),
    sa.Column('counted_through', sa.Integer(), nullable=False),
    sa.Column('last_job_id', sa.Integer(), nullable=True),
    sa.Column('set_by', sa.String(length=200), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('every IS NULL OR every > 0', name=op.f('ck_retrain_schedules_every_positive')),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_retrain_schedules_dataset_id_datasets')),
    sa.ForeignKeyConstraint(['last_job_id'], ['jobs.id'], name=op.f('fk_retrain_schedules_last_job_id_jobs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retrain_schedules')),
    sa.UniqueConstraint('dataset_id', name=op.f('uq_retrain_schedules_dataset_id'))
    )


def downgrade() -> None:
    op.drop_table('retrain_schedules')
