"""Span edits and added pairs: a decision carries the head and tail spans in effect after it (NULL: the pair's own),
and a pair a reviewer added to a post records who added it and when.

SQLite cannot add a table CHECK without rebuilding the table, and rebuilding `annotations` or `entity_pairs` (both
referenced by other tables' rows) fails its foreign keys inside the migration's transaction; there each check rides
on the last column it covers (SQLite treats a column CHECK like a table one and checks it against the stored rows).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HEAD_SPAN = (
    "(head_start IS NULL AND head_end IS NULL AND head_name IS NULL) OR "
    "(head_name IS NOT NULL AND head_start >= 0 AND head_start < head_end)"
)
TAIL_SPAN = (
    "(tail_start IS NULL AND tail_end IS NULL AND tail_name IS NULL) OR "
    "(tail_name IS NOT NULL AND tail_start >= 0 AND tail_start < tail_end)"
)
ADDED_TOGETHER = "(added_by IS NULL) = (added_at IS NULL)"
# table -> (column, type, the check that rides on it on SQLite and its name), in order
COLUMNS = {
    "annotations": [
        ("head_start", "INTEGER", None),
        ("head_end", "INTEGER", None),
        ("head_name", "TEXT", ("ck_annotations_head_span", HEAD_SPAN)),
        ("tail_start", "INTEGER", None),
        ("tail_end", "INTEGER", None),
        ("tail_name", "TEXT", ("ck_annotations_tail_span", TAIL_SPAN)),
    ],
    "entity_pairs": [
        ("added_by", "VARCHAR(200)", None),
        ("added_at", "DATETIME", ("ck_entity_pairs_added_together", ADDED_TOGETHER)),
    ],
}
SA_TYPES = {
    "INTEGER": sa.Integer(),
    "TEXT": sa.Text(),
    "VARCHAR(200)": sa.String(length=200),
    "DATETIME": sa.DateTime(timezone=True),  # the type sa.DateTime has on SQLite
}


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, columns in COLUMNS.items():
        for column, sql_type, check in columns:
            if sqlite:
                constraint = f" CONSTRAINT {check[0]} CHECK ({check[1]})" if check else ""
                op.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}{constraint}")
            else:
                op.add_column(table, sa.Column(column, SA_TYPES[sql_type], nullable=True))
        if not sqlite:
            for _, _, check in columns:
                if check:
                    op.create_check_constraint(op.f(check[0]), table, check[1])


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, columns in COLUMNS.items():
        for column, _, check in reversed(columns):
            if check and not sqlite:
                op.drop_constraint(op.f(check[0]), table, type_="check")
            if (
                sqlite
            ):  # SQLite (3.35+) drops a column with its own CHECK, not one another column's CHECK names
                op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
            else:
                op.drop_column(table, column)
