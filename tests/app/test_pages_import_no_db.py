"""Pages only compose services and draw: no module under app/views (the Streamlit pages) imports db/, at the top or
inside a function, read statically from its syntax tree. A page that needs the store calls a service in
app/services, which returns plain data."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGES = REPO / "app" / "views"


def db_imports(source: str, filename: str) -> list[str]:
    """'file:line: import ...' for every import of the db package in one module."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        for name in names:
            if name == "db" or name.startswith("db."):
                found.append(f"{filename}:{node.lineno}: import {name}")
    return found


def test_the_check_sees_each_form_of_import():
    source = (
        "import db\n"
        "import db.models as m\n"
        "from db.datasets import list_datasets\n"
        "from db import jobs\n"
        "def f():\n"
        "    from db.errors import LabelStoreError\n"
        "from app.services.store import dataset_names\n"
        "import dbm\n"
    )
    assert db_imports(source, "p.py") == [
        "p.py:1: import db",
        "p.py:2: import db.models",
        "p.py:3: import db.datasets",
        "p.py:4: import db",
        "p.py:6: import db.errors",
    ]


def test_no_page_imports_db():
    pages = sorted(PAGES.glob("*.py"))
    assert pages, f"no page found under {PAGES}"
    found = []
    for path in pages:
        found += db_imports(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    assert found == [], "pages call app/services, never db/; move these into a service:\n" + "\n".join(found)
