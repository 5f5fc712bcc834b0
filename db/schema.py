"""Create and upgrade databases with the Alembic migrations in db/migrations (never with metadata.create_all).

open_database takes an intent: reading and writing need an existing MRE Lens store, only "create" builds one, and
a database with other tables (another application's) is never altered: no table added, no WAL switch.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from urllib.parse import quote

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Engine, create_engine, inspect, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError
from sqlalchemy.orm import sessionmaker

from db.base import database_url, make_engine, make_sessionmaker
from db.errors import LabelStoreError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url(url).replace("%", "%%"))
    return cfg


def upgrade_database(url: str | None = None, revision: str = "head", engine: Engine | None = None) -> None:
    """Bring the database at `url` (or behind `engine`) to `revision`; a new database is created from scratch."""
    cfg = alembic_config(url)
    own_engine = engine is None
    engine = engine or make_engine(url)
    try:
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
    finally:
        if own_engine:
            engine.dispose()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


INTENTS = ("create", "write", "read")
# present since the first revision
STORE_TABLES = frozenset({"datasets", "posts", "entity_pairs", "annotations"})
SUPPORTED_DIALECTS = ("sqlite", "postgresql")


class StoreUnavailableError(LabelStoreError):
    """The database URL does not lead to a label store this command may use; nothing was created or changed."""


def check_url(url: str, intent: str) -> URL:
    """The parsed URL, or StoreUnavailableError naming --database-url: unknown schemes and in-memory stores."""
    if intent not in INTENTS:
        raise ValueError(f"intent must be one of {INTENTS}, got {intent!r}")
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as err:  # ValueError: a port that is not a number, an unclosed "[" ...
        # the text is not echoed: a mistyped URL may still hold a password
        raise StoreUnavailableError(
            f"--database-url is not a database URL ({type(err).__name__}: {_first_word_problem(err)}); use "
            "sqlite:///path/to/store.db or postgresql+psycopg://user@host/name (password in ~/.pgpass)"
        ) from err
    try:
        dialect_class = parsed.get_dialect()
        dialect = dialect_class.name
    except NoSuchModuleError as err:
        raise StoreUnavailableError(
            f"--database-url: unknown URL scheme {parsed.drivername!r}; use sqlite:/// or postgresql+psycopg://"
        ) from err
    if dialect in SUPPORTED_DIALECTS:
        try:
            dialect_class.import_dbapi()
        except ImportError as err:
            raise StoreUnavailableError(
                f"--database-url: the driver of {parsed.drivername!r} is not installed ({err}); use "
                "sqlite:/// or postgresql+psycopg:// (psycopg is installed)"
            ) from err
    if dialect not in SUPPORTED_DIALECTS:
        raise StoreUnavailableError(
            f"--database-url: {dialect} is not supported; the label store runs on SQLite or PostgreSQL"
        )
    if dialect == "sqlite" and parsed.database in (None, "", ":memory:") and intent != "read":
        raise StoreUnavailableError(
            "--database-url: an in-memory SQLite database (sqlite://) keeps nothing once the command ends; "
            "give a file, e.g. sqlite:///var/mrelens.db"
        )
    return parsed


def _first_word_problem(err: Exception) -> str:
    """What is wrong with a URL that does not parse, without its text (e.g. "invalid port number")."""
    text = str(err)
    if isinstance(err, ArgumentError):
        return "not in the form dialect+driver://user@host/name"
    if "int()" in text:
        return "the port is not a number (or a '[' of an IPv6 host is not closed)"
    return "a part of it is out of range or malformed"


def store_status(url: str) -> tuple[str, str | None]:
    """("missing" | "empty" | "ours" | "newer" | "foreign", alembic revision) of the database at `url`.

    Looks without changing anything: a missing SQLite file is not created, no pragma is set.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if path in (None, "", ":memory:"):
            return "empty", None
        if not Path(path).exists():
            return "missing", None
        if not Path(path).is_file():
            raise StoreUnavailableError(f"--database-url: {path} is not a file")
        if Path(path).stat().st_size == 0:
            return "empty", None
        # read-only URI open: probing never creates, converts or journals the file
        probe = create_engine(f"sqlite:///file:{quote(str(Path(path).resolve()))}?mode=ro&uri=true")
    else:
        probe = create_engine(parsed)
    try:
        with probe.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            revision = (
                MigrationContext.configure(connection).get_current_revision()
                if "alembic_version" in tables
                else None
            )
    except DatabaseError as err:
        first_line = (
            str(err.orig).strip().splitlines()[0] if str(err.orig).strip() else type(err.orig).__name__
        )
        raise StoreUnavailableError(
            f"--database-url {parsed.render_as_string(hide_password=True)}: cannot use the database ({first_line})"
        ) from err
    finally:
        probe.dispose()
    if not tables:
        return "empty", None
    if revision is not None and tables >= STORE_TABLES:
        known = {
            script.revision
            for script in ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions()
        }
        return ("ours" if revision in known else "newer"), revision
    return "foreign", revision


def open_database(url: str | None = None, intent: str = "create") -> tuple[Engine, sessionmaker]:
    """The engine and session factory of the label store at `url`, at the latest schema.

    intent "read" and "write": the URL must lead to an existing MRE Lens store at the latest schema; an older one is
    refused, left as it is, with a message naming `python -m db upgrade` (reads and single writes never change the
    schema). "create" also builds a new store in an empty or missing database (init, import, the app's prepare
    step) and upgrades an older one, after a backup of a SQLite file (backup_sqlite).
    A database holding other tables is never touched: StoreUnavailableError, whatever the intent. Writing
    intents refuse in-memory SQLite. Errors name --database-url and say what to do.
    """
    url = database_url(url)
    check_url(url, intent)
    shown = make_url(url).render_as_string(hide_password=True)
    status, revision = store_status(url)
    if status == "foreign":
        raise StoreUnavailableError(
            f"--database-url {shown}: not an MRE Lens label store (it holds other tables); "
            "it is left as it is. Give the URL of a label store, or an empty database for `python -m db init`"
        )
    if status == "newer":
        raise StoreUnavailableError(
            f"--database-url {shown}: the store is at schema revision {revision}, made by a newer MRE Lens; "
            "update this checkout"
        )
    if status in ("missing", "empty") and intent != "create":
        raise StoreUnavailableError(
            f"--database-url {shown}: no MRE Lens label store there (a typo?); create one explicitly with "
            "`python -m db init` or `python -m db import FOLDER`"
        )
    head = head_revision()
    if status == "ours" and revision != head:
        if intent in ("read", "write"):
            raise StoreUnavailableError(
                f"--database-url {shown}: the store is at schema revision {revision}, older than this code's "
                f"{head}; this command does not change the schema. Run `python -m db upgrade` first (it backs up "
                "a SQLite file before upgrading)"
            )
        backup_sqlite(url, revision)
    engine = make_engine(url)
    upgrade_database(engine=engine)
    return engine, make_sessionmaker(engine)


def backup_sqlite(url: str, revision: str | None) -> Path | None:
    """Copy a SQLite store (SQLite's online backup: consistent, WAL included) to `<file>.<revision>.bak` beside it
    (`<file>.<revision>.<n>.bak` if that exists) before its schema changes; None for other databases."""
    import sqlite3

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    source = Path(parsed.database).resolve()
    target = source.with_name(f"{source.name}.{revision}.bak")
    n = 1
    while target.exists():
        target = source.with_name(f"{source.name}.{revision}.{n}.bak")
        n += 1
    with (
        contextlib.closing(sqlite3.connect(f"file:{quote(str(source))}?mode=ro", uri=True)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)
    return target


def upgrade_store(url: str | None = None) -> tuple[str | None, str, Path | None]:
    """`python -m db upgrade`: bring an existing store to the latest schema, a SQLite file backed up first.

    Returns (revision before, revision after, backup path or None). Errors as open_database's."""
    url = database_url(url)
    check_url(url, "write")
    shown = make_url(url).render_as_string(hide_password=True)
    status, revision = store_status(url)
    if status == "foreign":
        raise StoreUnavailableError(
            f"--database-url {shown}: not an MRE Lens label store; it is left as it is"
        )
    if status == "newer":
        raise StoreUnavailableError(
            f"--database-url {shown}: the store is at schema revision {revision}, made by a newer MRE Lens"
        )
    if status in ("missing", "empty"):
        raise StoreUnavailableError(
            f"--database-url {shown}: no MRE Lens label store there; create one with `python -m db init`"
        )
    head = head_revision()
    if revision == head:
        return revision, head, None
    backup = backup_sqlite(url, revision)
    upgrade_database(url)
    return revision, head, backup
