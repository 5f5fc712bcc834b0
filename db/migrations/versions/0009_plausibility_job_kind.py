"""The plausibility job kind: the Experiments page's plausibility table of a model version on a dataset's stored
rationales (app.services.plausibility).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 12:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = ('first_model', 'default_model', 'retrain', 'score', 'grounding', 'shuffle', 'ablation', 'crossfit',
             'crossfit_fold', 'explanations')
NEW_KINDS = (*OLD_KINDS, 'plausibility')


def _kinds(kinds: tuple[str, ...]) -> str:
    return "kind IN ('" + "', '".join(kinds) + "')"


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_jobs_kind_known'), type_='check')
        batch_op.create_check_constraint('kind_known', _kinds(NEW_KINDS))


def downgrade() -> None:
    op.execute("DELETE FROM jobs WHERE kind = 'plausibility'")
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_jobs_kind_known'), type_='check')
        batch_op.create_check_constraint('kind_known', _kinds(OLD_KINDS))
