"""No module of the project imports another module's private name (`from model.train import _helper`): a name
another package needs is part of its module's public surface and is named so. Read statically from the syntax
trees of app, db, model, explain, benchmarks and tests."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("app", "db", "model", "explain", "benchmarks", "tests")
PROJECT = ("app", "db", "model", "explain", "benchmarks")


def private_imports(source: str, filename: str) -> list[str]:
    """'file:line: from module import _name' for every private project name imported from another module."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
            continue
        if node.module.split(".")[0] not in PROJECT:
            continue
        for alias in node.names:
            if alias.name.startswith("_") and not alias.name.startswith("__"):
                found.append(f"{filename}:{node.lineno}: from {node.module} import {alias.name}")
    return found


def test_the_check_sees_a_private_import_and_lets_public_ones_through():
    source = (
        "from model.train import param_groups\n"
        "from model.train import PRECISIONS, _param_groups\n"
        "def f():\n"
        "    from db.io import _bulk_insert\n"
        "from collections import _private_elsewhere\n"
        "from app import __version__\n"
    )
    assert private_imports(source, "x.py") == [
        "x.py:2: from model.train import _param_groups",
        "x.py:4: from db.io import _bulk_insert",
    ]


def test_no_module_imports_another_modules_private_name():
    found = []
    for folder in FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            found += private_imports(path.read_text(), str(path.relative_to(REPO)))
    assert not found, "\n".join(found)
