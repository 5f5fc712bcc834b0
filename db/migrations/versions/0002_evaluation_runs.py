"""Evaluation runs: the shuffle / ablation tables (variant x setting x split -> metrics).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 23:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('evaluation_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.Column('variant', sa.String(length=100), nullable=False),
    sa.Column('setting', sa.String(length=32), nullable=False),
    sa.Column('split', sa.String(length=32), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("setting IN ('standard', 'shuffle-train', 'shuffle-test')", name=op.f('ck_evaluation_runs_setting_known')),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_evaluation_runs_model_version_id_model_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evaluation_runs'))
    )
    with op.batch_alter_table('evaluation_runs', schema=None) as batch_op:
        batch_op.create_index('ix_evaluation_runs_variant_setting', ['variant', 'setting'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('evaluation_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_evaluation_runs_variant_setting')
    op.drop_table('evaluation_runs')
