"""Create and upgrade databases with the Alembic migrations in db/migrations (never with metadata.create_all)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from db.base import database_url, make_engine, make_sessionmaker

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


def open_database(url: str | None = None) -> tuple[Engine, sessionmaker]:
    """Upgrade the database to the latest schema and return its engine and session factory (what the app calls)."""
    engine = make_engine(url)
    upgrade_database(engine=engine)
    return engine, make_sessionmaker(engine)
