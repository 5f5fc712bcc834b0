"""Initial schema: datasets, posts, entity pairs, crops, model versions, predictions, annotations, explanations.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 23:28:06.242264
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('datasets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('source_path', sa.Text(), nullable=True),
    sa.Column('label_map', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_datasets')),
    sa.UniqueConstraint('name', name=op.f('uq_datasets_name'))
    )
    op.create_table('model_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.String(length=200), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('variant', sa.String(length=100), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=True),
    sa.Column('settings', sa.JSON(), nullable=True),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['model_versions.id'], name=op.f('fk_model_versions_parent_id_model_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_versions')),
    sa.UniqueConstraint('version_id', name=op.f('uq_model_versions_version_id'))
    )
    op.create_table('posts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('content_key', sa.String(length=64), nullable=False),
    sa.Column('tokens', sa.JSON(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('img_id', sa.String(length=300), nullable=True),
    sa.Column('image_path', sa.Text(), nullable=True),
    sa.Column('image_sha256', sa.String(length=64), nullable=True),
    sa.Column('has_image', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('NOT has_image OR image_sha256 IS NOT NULL', name=op.f('ck_posts_image_hashed')),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_posts_dataset_id_datasets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_posts')),
    sa.UniqueConstraint('dataset_id', 'content_key', name=op.f('uq_posts_dataset_id_content_key'))
    )
    with op.batch_alter_table('posts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_posts_dataset_id'), ['dataset_id'], unique=False)

    op.create_table('entity_pairs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('post_id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('split', sa.String(length=32), nullable=False),
    sa.Column('source_key', sa.String(length=200), nullable=False),
    sa.Column('source_line', sa.Integer(), nullable=True),
    sa.Column('head_name', sa.Text(), nullable=False),
    sa.Column('head_start', sa.Integer(), nullable=False),
    sa.Column('head_end', sa.Integer(), nullable=False),
    sa.Column('tail_name', sa.Text(), nullable=False),
    sa.Column('tail_start', sa.Integer(), nullable=False),
    sa.Column('tail_end', sa.Integer(), nullable=False),
    sa.Column('gold_label', sa.String(length=100), nullable=True),
    sa.Column('raw_line', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('head_start >= 0 AND head_start < head_end', name=op.f('ck_entity_pairs_head_span')),
    sa.CheckConstraint('tail_start >= 0 AND tail_start < tail_end', name=op.f('ck_entity_pairs_tail_span')),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], name=op.f('fk_entity_pairs_dataset_id_datasets')),
    sa.ForeignKeyConstraint(['post_id'], ['posts.id'], name=op.f('fk_entity_pairs_post_id_posts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_entity_pairs')),
    sa.UniqueConstraint('dataset_id', 'source_key', name=op.f('uq_entity_pairs_dataset_id_source_key'))
    )
    with op.batch_alter_table('entity_pairs', schema=None) as batch_op:
        batch_op.create_index('ix_entity_pairs_dataset_split_line', ['dataset_id', 'split', 'source_line'], unique=False)
        batch_op.create_index(batch_op.f('ix_entity_pairs_post_id'), ['post_id'], unique=False)

    op.create_table('grounded_crops',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('post_id', sa.Integer(), nullable=False),
    sa.Column('box_x0', sa.Float(), nullable=True),
    sa.Column('box_y0', sa.Float(), nullable=True),
    sa.Column('box_x1', sa.Float(), nullable=True),
    sa.Column('box_y1', sa.Float(), nullable=True),
    sa.Column('label', sa.Text(), nullable=True),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('path', sa.Text(), nullable=True),
    sa.Column('settings', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('box_x0 IS NULL OR (box_x0 < box_x1 AND box_y0 < box_y1)', name=op.f('ck_grounded_crops_box_ordered')),
    sa.ForeignKeyConstraint(['post_id'], ['posts.id'], name=op.f('fk_grounded_crops_post_id_posts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grounded_crops'))
    )
    with op.batch_alter_table('grounded_crops', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_grounded_crops_post_id'), ['post_id'], unique=False)

    op.create_table('annotations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pair_id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=100), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('annotator', sa.String(length=200), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('undoes_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('accepted', 'corrected', 'rejected', 'skipped', 'unreviewed')", name=op.f('ck_annotations_status_known')),
    sa.CheckConstraint("status NOT IN ('accepted', 'corrected') OR label IS NOT NULL", name=op.f('ck_annotations_label_given')),
    sa.CheckConstraint('revision >= 1', name=op.f('ck_annotations_revision_positive')),
    sa.ForeignKeyConstraint(['pair_id'], ['entity_pairs.id'], name=op.f('fk_annotations_pair_id_entity_pairs')),
    sa.ForeignKeyConstraint(['undoes_id'], ['annotations.id'], name=op.f('fk_annotations_undoes_id_annotations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_annotations')),
    sa.UniqueConstraint('pair_id', 'revision', name=op.f('uq_annotations_pair_id_revision'))
    )
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.create_index('ix_annotations_annotator', ['annotator'], unique=False)

    op.create_table('explanations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pair_id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.Column('method', sa.String(length=100), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=True),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_explanations_model_version_id_model_versions')),
    sa.ForeignKeyConstraint(['pair_id'], ['entity_pairs.id'], name=op.f('fk_explanations_pair_id_entity_pairs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_explanations'))
    )
    with op.batch_alter_table('explanations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_explanations_pair_id'), ['pair_id'], unique=False)

    op.create_table('predictions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pair_id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=100), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=True),
    sa.Column('probabilities', sa.JSON(), nullable=False),
    sa.Column('predicted_label', sa.String(length=100), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('margin', sa.Float(), nullable=False),
    sa.Column('entropy', sa.Float(), nullable=False),
    sa.Column('image_reliance', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('confidence >= 0 AND confidence <= 1', name=op.f('ck_predictions_confidence_range')),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_predictions_model_version_id_model_versions')),
    sa.ForeignKeyConstraint(['pair_id'], ['entity_pairs.id'], name=op.f('fk_predictions_pair_id_entity_pairs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_predictions')),
    sa.UniqueConstraint('pair_id', 'model_version_id', 'method', name=op.f('uq_predictions_pair_id_model_version_id_method'))
    )
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_predictions_pair_id'), ['pair_id'], unique=False)
        batch_op.create_index('ix_predictions_version_margin', ['model_version_id', 'margin'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.drop_index('ix_predictions_version_margin')
        batch_op.drop_index(batch_op.f('ix_predictions_pair_id'))

    op.drop_table('predictions')
    with op.batch_alter_table('explanations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_explanations_pair_id'))

    op.drop_table('explanations')
    with op.batch_alter_table('annotations', schema=None) as batch_op:
        batch_op.drop_index('ix_annotations_annotator')

    op.drop_table('annotations')
    with op.batch_alter_table('grounded_crops', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_grounded_crops_post_id'))

    op.drop_table('grounded_crops')
    with op.batch_alter_table('entity_pairs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_entity_pairs_post_id'))
        batch_op.drop_index('ix_entity_pairs_dataset_split_line')

    op.drop_table('entity_pairs')
    with op.batch_alter_table('posts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_posts_dataset_id'))

    op.drop_table('posts')
    op.drop_table('model_versions')
    op.drop_table('datasets')
