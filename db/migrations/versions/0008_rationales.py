"""Rationales: evidence words and an evidence box, recorded with a decision (reviewer) or as a dataset's own
evidence for its gold label (synthetic).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('rationales',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pair_id', sa.Integer(), nullable=False),
    sa.Column('annotation_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('tokens', sa.JSON(), nullable=False),
    sa.Column('box_x0', sa.Float(), nullable=True),
    sa.Column('box_y0', sa.Float(), nullable=True),
    sa.Column('box_x1', sa.Float(), nullable=True),
    sa.Column('box_y1', sa.Float(), nullable=True),
    sa.Column('image_width', sa.Integer(), nullable=True),
    sa.Column('image_height', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("source IN ('reviewer', 'synthetic')", name=op.f('ck_rationales_source_known')),
    sa.CheckConstraint("source <> 'reviewer' OR annotation_id IS NOT NULL", name=op.f('ck_rationales_reviewer_decision')),
    sa.CheckConstraint(
        '(box_x0 IS NULL AND box_y0 IS NULL AND box_x1 IS NULL AND box_y1 IS NULL) OR '
        '(box_x0 >= 0 AND box_y0 >= 0 AND box_x0 < box_x1 AND box_y0 < box_y1 '
        'AND image_width IS NOT NULL AND box_x1 <= image_width '
        'AND image_height IS NOT NULL AND box_y1 <= image_height)',
        name=op.f('ck_rationales_box_in_image'),
    ),
    sa.CheckConstraint('image_width IS NULL OR image_width > 0', name=op.f('ck_rationales_width_positive')),
    sa.CheckConstraint('image_height IS NULL OR image_height > 0', name=op.f('ck_rationales_height_positive')),
    sa.ForeignKeyConstraint(['annotation_id'], ['annotations.id'], name=op.f('fk_rationales_annotation_id_annotations')),
    sa.ForeignKeyConstraint(['pair_id'], ['entity_pairs.id'], name=op.f('fk_rationales_pair_id_entity_pairs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rationales')),
    sa.UniqueConstraint('annotation_id', name=op.f('uq_rationales_annotation_id'))
    )
    with op.batch_alter_table('rationales', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rationales_pair_id'), ['pair_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rationales', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rationales_pair_id'))
    op.drop_table('rationales')
