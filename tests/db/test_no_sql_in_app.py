"""SQL lives in db/ only: no module under app/ builds or runs a query.

The check reads every app/ module's syntax tree (comments and strings cannot trip it) and reports each offending
line, so a query that creeps back into a page or job names its file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# sqlalchemy.orm names that hold or make sessions; everything else there builds queries (aliased, selectinload, ...)
ALLOWED_ORM_NAMES = {"Session", "sessionmaker", "scoped_session"}
# methods that run a statement or read rows by key: only db/ calls them
QUERY_METHODS = {"execute", "scalar", "scalars", "query", "get_one"}


def sql_uses(source: str, filename: str) -> list[str]:
    """'file:line: what' for every query-building import or query-running call in one module."""
    found = []
    tree = ast.parse(source, filename)
    orm_classes = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "sqlalchemy" or alias.name.startswith("sqlalchemy.sql"):
                    found.append(f"{filename}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = {alias.name for alias in node.names}
            if node.module == "db.models":
                orm_classes |= {name for name in names if name[:1].isupper() and not name.isupper()}
            if not (node.module == "sqlalchemy" or node.module.startswith("sqlalchemy.")):
                continue
            if node.module == "sqlalchemy.exc":
                continue
            if node.module == "sqlalchemy.orm":
                names -= ALLOWED_ORM_NAMES
            if names:
                found.append(
                    f"{filename}:{node.lineno}: from {node.module} import {', '.join(sorted(names))}"
                )
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr in QUERY_METHODS:
            found.append(f"{filename}:{node.lineno}: .{node.func.attr}(...)")
        # session.get(SomeModel, key): a primary-key read of a schema class
        elif (
            node.func.attr == "get"
            and node.args
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id in orm_classes
        ):
            found.append(f"{filename}:{node.lineno}: .get({node.args[0].id}, ...)")
    return found


def test_the_check_sees_each_kind_of_query():
    source = (
        "from sqlalchemy import func, select\n"
        "from sqlalchemy.orm import Session, aliased\n"
        "from db.models import Post\n"
        "import sqlalchemy\n"
        "x = session.scalar(select(func.count()))\n"
        "rows = session.execute(stmt)\n"
        "post = session.get(Post, 3)\n"
        "value = settings.get('key', 3)\n"
    )
    assert sql_uses(source, "m.py") == [
        "m.py:1: from sqlalchemy import func, select",
        "m.py:2: from sqlalchemy.orm import aliased",
        "m.py:4: import sqlalchemy",
        "m.py:5: .scalar(...)",
        "m.py:6: .execute(...)",
        "m.py:7: .get(Post, ...)",
    ]
    allowed = (
        "from sqlalchemy.orm import Session, sessionmaker\nfrom sqlalchemy.exc import OperationalError\n"
    )
    assert sql_uses(allowed, "ok.py") == []


def test_no_module_under_app_builds_or_runs_a_query():
    found = []
    for path in sorted((REPO / "app").rglob("*.py")):
        found += sql_uses(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    assert found == [], "SQL belongs in db/; move these into a named db function:\n" + "\n".join(found)
