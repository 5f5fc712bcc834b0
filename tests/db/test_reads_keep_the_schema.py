"""Reads never change the schema: `export` and `agreement` on a store made by an older version refuse with a message
naming `python -m db upgrade`, and leave the file byte for byte; `upgrade` backs up a SQLite file first."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from db.cli import main
from db.schema import head_revision, upgrade_database


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _revision(path) -> str:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute("select version_num from alembic_version").fetchone()[0]


@pytest.mark.parametrize(
    "command",
    [
        ["export", "--format", "jsonl", "--out", "OUT"],
        ["agreement"],
        ["import-post", "--text", "a b", "--head", "0", "1", "--tail", "1", "2"],
    ],
    ids=["export", "agreement", "import-post"],
)
def test_a_read_or_write_command_refuses_an_older_store_and_leaves_it_as_it_was(tmp_path, capsys, command):
    store = tmp_path / "old.db"
    url = f"sqlite:///{store}"
    upgrade_database(url, revision="0001")
    before = _digest(store)
    argv = [part if part != "OUT" else str(tmp_path / "out.jsonl") for part in command]
    assert main(["--database-url", url, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "python -m db upgrade" in err
    assert _digest(store) == before and _revision(store) == "0001"
    assert not (tmp_path / "out.jsonl").exists()


def test_upgrade_backs_up_a_sqlite_store_first(tmp_path, capsys):
    store = tmp_path / "old.db"
    url = f"sqlite:///{store}"
    upgrade_database(url, revision="0001")
    before = _digest(store)
    assert main(["--database-url", url, "upgrade"]) == 0
    out = capsys.readouterr().out
    backups = list(tmp_path.glob("old.db.*.bak"))
    assert len(backups) == 1 and str(backups[0]) in out
    assert _revision(backups[0]) == "0001" and _revision(store) == head_revision()
    assert _digest(backups[0]) == before or _revision(backups[0]) == "0001"
    assert main(["--database-url", url, "agreement"]) == 0
    # a second upgrade has nothing to do and makes no backup
    assert main(["--database-url", url, "upgrade"]) == 0
    assert len(list(tmp_path.glob("old.db.*.bak"))) == 1
