"""Database URLs: reading needs an existing MRE Lens store, creating one is explicit, a foreign database is never
altered, and every bad URL is one `error:` line."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import create_engine, inspect, text

from db.cli import main
from db.schema import StoreUnavailableError, open_database


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _foreign_sqlite(path) -> bytes:
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    connection.execute("INSERT INTO users (email) VALUES ('a@example.org')")
    connection.commit()
    connection.close()
    return path.read_bytes()


def test_read_commands_never_create_a_store(tmp_path, mini_mnre, capsys):
    typo = tmp_path / "stroe.db"
    out = tmp_path / "good.csv"
    out.write_text("a good export\n", encoding="utf-8")
    for command in (["export", "--format", "csv", "--out", str(out)], ["agreement"], ["upgrade"]):
        assert main(["--database-url", f"sqlite:///{typo}", *command]) == 2
        assert "no MRE Lens label store" in _error_line(capsys)
        assert not typo.exists()
    assert out.read_text(encoding="utf-8") == "a good export\n"
    # a post is stored only into an existing store
    post = ["import-post", "--text", "a b", "--head", "0", "1", "--tail", "1", "2"]
    assert main(["--database-url", f"sqlite:///{typo}", *post]) == 2
    assert "python -m db init" in _error_line(capsys) and not typo.exists()
    # init and import create it explicitly; then reading works
    assert main(["--database-url", f"sqlite:///{typo}", "init"]) == 0
    assert main(["--database-url", f"sqlite:///{typo}", "export", "--format", "csv", "--out", str(out)]) == 0
    other = tmp_path / "other.db"
    assert main(["--database-url", f"sqlite:///{other}", "import", str(mini_mnre)]) == 0
    assert other.exists()


def test_a_foreign_sqlite_database_is_never_altered(tmp_path, mini_mnre, capsys):
    foreign = tmp_path / "crm.sqlite"
    before = _foreign_sqlite(foreign)
    url = ["--database-url", f"sqlite:///{foreign}"]
    commands = [
        ["export", "--format", "jsonl", "--out", str(tmp_path / "x.jsonl")],
        ["agreement"],
        ["upgrade"],
        ["init"],
        ["import", str(mini_mnre)],
        ["import-post", "--text", "a b", "--head", "0", "1", "--tail", "1", "2"],
    ]
    for command in commands:
        assert main([*url, *command]) == 2, command
        assert "not an MRE Lens label store" in _error_line(capsys)
    assert foreign.read_bytes() == before
    assert not (tmp_path / "crm.sqlite-wal").exists()
    assert sqlite3.connect(foreign).execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_foreign_database_is_refused_by_every_intent(db_url):
    engine = create_engine(db_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(80))"))
    for intent in ("read", "write", "create"):
        with pytest.raises(StoreUnavailableError, match="not an MRE Lens label store"):
            open_database(db_url, intent=intent)
    assert set(inspect(engine).get_table_names()) == {"users"}
    engine.dispose()


def test_an_empty_database_is_created_only_on_request(db_url):
    with pytest.raises(StoreUnavailableError, match="no MRE Lens label store"):
        open_database(db_url, intent="read")
    with pytest.raises(StoreUnavailableError, match="no MRE Lens label store"):
        open_database(db_url, intent="write")
    engine, _ = open_database(db_url, intent="create")
    assert "annotations" in inspect(engine).get_table_names()
    engine.dispose()
    engine, _ = open_database(db_url, intent="read")
    engine.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_databases_are_refused_for_commands_that_store(url, mini_mnre, capsys):
    assert main(["--database-url", url, "import", str(mini_mnre)]) == 2
    assert "in-memory" in _error_line(capsys)
    assert main(["--database-url", url, "init"]) == 2
    assert "in-memory" in _error_line(capsys)


@pytest.mark.parametrize(
    "url", ["mongodb://localhost/x", "postgress://u@h/db", "var/mrelens.db", "sqlite:////no/such/dir/x.db"]
)
def test_bad_urls_are_one_error_line(url, capsys):
    assert main(["--database-url", url, "agreement"]) == 2
    line = _error_line(capsys)
    assert "--database-url" in line or "no MRE Lens label store" in line
