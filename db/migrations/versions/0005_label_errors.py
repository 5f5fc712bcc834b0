"""Label errors: cross-fit runs, out-of-sample predictions with cleanlab's scores, the decision's origin, and the
two job kinds that compute them (crossfit, crossfit_fold).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = ('first_model', 'default_model', 'retrain', 'score', 'grounding', 'shuffle', 'ablation')
NEW_KINDS = (*OLD_KINDS, 'crossfit', 'crossfit_fold')


def _kinds(kinds: tuple[str, ...]) -> str:
    return "kind IN ('" + "', '".join(kinds) + "')"


def upgrade() -> None:
    op.create_table('crossfit_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('folds', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=64), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=True),
    sa.Column('pairs', sa.Integer(), nullable=False),
    sa.Column('flagged', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_crossfit_runs_dataset_id_datasets')),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_crossfit_runs_job_id_jobs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crossfit_runs'))
    )
    with op.batch_alter_table('crossfit_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_crossfit_runs_dataset_id'), ['dataset_id'], unique=False)

    op.create_table('out_of_sample_predictions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('pair_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('fold', sa.Integer(), nullable=True),
    sa.Column('model_version', sa.String(length=200), nullable=False),
    sa.Column('probabilities', sa.JSON(), nullable=False),
    sa.Column('given_label', sa.String(length=100), nullable=False),
    sa.Column('given_probability', sa.Float(), nullable=False),
    sa.Column('suggested_label', sa.String(length=100), nullable=False),
    sa.Column('suggested_probability', sa.Float(), nullable=False),
    sa.Column('quality', sa.Float(), nullable=False),
    sa.Column('loss', sa.Float(), nullable=False),
    sa.Column('flagged', sa.Boolean(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('scores', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['pair_id'], ['entity_pairs.id'], name=op.f('fk_out_of_sample_predictions_pair_id_entity_pairs')),
    sa.ForeignKeyConstraint(['run_id'], ['crossfit_runs.id'], name=op.f('fk_out_of_sample_predictions_run_id_crossfit_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_out_of_sample_predictions')),
    sa.UniqueConstraint('run_id', 'pair_id', name=op.f('uq_out_of_sample_predictions_run_id_pair_id'))
    )
    with op.batch_alter_table('out_of_sample_predictions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_out_of_sample_predictions_pair_id'), ['pair_id'], unique=False)
        batch_op.create_index('ix_out_of_sample_predictions_run_rank', ['run_id', 'rank'], unique=False)

    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin', sa.String(length=32), nullable=True))

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_jobs_kind_known'), type_='check')
        batch_op.create_check_constraint('kind_known', _kinds(NEW_KINDS))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_jobs_kind_known'), type_='check')
        batch_op.create_check_constraint('kind_known', _kinds(OLD_KINDS))
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.drop_column('origin')
    with op.batch_alter_table('out_of_sample_predictions', schema=None) as batch_op:
        batch_op.drop_index('ix_out_of_sample_predictions_run_rank')
        batch_op.drop_index(batch_op.f('ix_out_of_sample_predictions_pair_id'))
    op.drop_table('out_of_sample_predictions')
    with op.batch_alter_table('crossfit_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_crossfit_runs_dataset_id'))
    op.drop_table('crossfit_runs')
