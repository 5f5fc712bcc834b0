"""Explanations become a job kind of their own (before: a "score" job with params "explanations": N); queued or
finished jobs of the old shape are moved to the new kind, their count under params "top".

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = ('first_model', 'default_model', 'retrain', 'score', 'grounding', 'shuffle', 'ablation', 'crossfit',
             'crossfit_fold')
NEW_KINDS = (*OLD_KINDS, 'explanations')

jobs = sa.table('jobs', sa.column('id', sa.Integer), sa.column('kind', sa.String), sa.column('params', sa.JSON))


def _kinds(kinds: tuple[str, ...]) -> str:
    return "kind IN ('" + "', '".join(kinds) + "')"


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_jobs_kind_known'), type_='check')
        batch_op.create_check_constraint('kind_known', _kinds(NEW_KINDS))
    bind = op.get_bind()
    # JSON paths are not portable SQL: the few score jobs are read and rewritten in Python
    for job_id, params in bind.execute(sa.select(jobs.c.id, jobs.c.params).where(jobs.c.kind == 'score')).all():
        params = dict(params or {})
        if params.get('explanations'):
            params['top'] = params.pop('explanations')
            bind.execute(sa.update(jobs).where(jobs.c.id == job_id).values(kind='explanations', params=params))


def downgrade() -> None:
    bind = op.get_bind()
    for job_id, params in bind.execute(
        sa.select(jobs.c.id, jobs.c.params).where(jobs.c.kind == 'explanations')
    ).all():
        params = dict(params or {})
        params['explanations'] = params.pop('top', None)
        bind.execute(sa.update(jobs).where(jobs.c.id == job_id).values(kind='score', params=params))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_jobs_kind_known'), type_='check')
        batch_op.create_check_constraint('kind_known', _kinds(OLD_KINDS))
