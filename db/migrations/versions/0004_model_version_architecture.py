"""Model versions store their architecture and text encoder (from the checkpoint's config.json), so nothing reads
them off the version id.

Existing rows are filled from the config.json in their checkpoint folder; a folder saved before config.json named
its architecture is an IFAformer one (the rule model.checkpoint.read_checkpoint_config applies). A row whose folder
is gone or unreadable keeps NULL: unknown, never guessed.

The migration reads config.json itself (`_checkpoint_config`) rather than through model.checkpoint: a migration is
self-contained, so it runs the same way on an old store however model/ changes later, and the label store's
migrations never import the model package. It is the one reader besides model.checkpoint.read_checkpoint_config.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 12:00:00
"""

import json
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MAX_CONFIG_BYTES = 1 << 20  # a config.json is a few kB; a bigger file is not one


def _checkpoint_config(path: str) -> dict | None:
    config_path = Path(path) / "config.json"
    try:
        if not config_path.is_file() or config_path.stat().st_size > MAX_CONFIG_BYTES:
            return None
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return raw if isinstance(raw, dict) else None


def upgrade() -> None:
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('architecture', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('text_encoder', sa.Text(), nullable=True))
    versions = sa.table(
        'model_versions',
        sa.column('id', sa.Integer()),
        sa.column('path', sa.Text()),
        sa.column('architecture', sa.String(length=32)),
        sa.column('text_encoder', sa.Text()),
    )
    connection = op.get_bind()
    for version_key, path in connection.execute(sa.select(versions.c.id, versions.c.path)).all():
        config = _checkpoint_config(path)
        if config is None:
            continue
        architecture = config.get("architecture", "ifaformer")
        text_encoder = config.get("text_encoder")
        connection.execute(
            versions.update()
            .where(versions.c.id == version_key)
            .values(
                architecture=architecture if isinstance(architecture, str) else None,
                text_encoder=text_encoder if isinstance(text_encoder, str) else None,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_column('text_encoder')
        batch_op.drop_column('architecture')
