from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from db.base import Base, database_url, make_engine
from db.models import Annotation, Dataset, EntityPair, EvaluationRun, Post
from db.schema import current_revision, head_revision, open_database, upgrade_database


def test_migrations_build_exactly_the_models(store):
    engine, _ = store
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_database_from_the_first_revision_upgrades_with_its_rows(db_url):
    upgrade_database(db_url, revision="0001")
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == "0001"
        assert "evaluation_runs" not in inspect(engine).get_table_names()
        now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        with engine.begin() as conn:
            conn.execute(insert(Dataset.__table__), [{"id": 1, "name": "old", "created_at": now}])
            conn.execute(
                insert(Post.__table__),
                [
                    {
                        "id": 1,
                        "dataset_id": 1,
                        "content_key": "k",
                        "tokens": ["a", "b"],
                        "text": "a b",
                        "has_image": False,
                        "created_at": now,
                    }
                ],
            )
            conn.execute(
                insert(EntityPair.__table__),
                [
                    {
                        "id": 1,
                        "post_id": 1,
                        "dataset_id": 1,
                        "split": "train",
                        "source_key": "train:1",
                        "source_line": 1,
                        "head_name": "a",
                        "head_start": 0,
                        "head_end": 1,
                        "tail_name": "b",
                        "tail_start": 1,
                        "tail_end": 2,
                        "gold_label": "None",
                        "created_at": now,
                    }
                ],
            )
            conn.execute(
                insert(Annotation.__table__),
                [
                    {
                        "pair_id": 1,
                        "revision": 1,
                        "label": "x",
                        "status": "corrected",
                        "annotator": "ann",
                        "created_at": now,
                    }
                ],
            )
    finally:
        engine.dispose()

    engine, sessions = open_database(db_url)  # what the app does with an old database
    try:
        assert current_revision(engine) == head_revision() != "0001"
        with sessions() as session:
            annotation = session.scalars(select(Annotation)).one()
            assert (annotation.label, annotation.annotator, annotation.created_at) == ("x", "ann", now)
            assert session.scalar(select(EntityPair.source_key)) == "train:1"
            session.add(
                EvaluationRun(variant="ifaformer", setting="shuffle-test", split="val", metrics={"f1": 0.5})
            )
            session.commit()
            assert session.scalar(select(func.count()).select_from(EvaluationRun)) == 1
    finally:
        engine.dispose()


def test_sqlite_connections_enforce_foreign_keys_and_use_wal(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        engine.dispose()


def test_default_url_is_the_repository_sqlite_file(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert database_url().endswith("/var/mrelens.db")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u@h/d")
    assert database_url() == "postgresql+psycopg://u@h/d"
    assert database_url("sqlite://") == "sqlite://"


def _pair_values(**overrides):
    values = {
        "post_id": 1,
        "dataset_id": 1,
        "split": "train",
        "source_key": "k",
        "head_name": "a",
        "head_start": 0,
        "head_end": 1,
        "tail_name": "b",
        "tail_start": 1,
        "tail_end": 2,
    }
    values.update(overrides)
    return values


@pytest.mark.parametrize("bad", [{"head_start": 2, "head_end": 2}, {"tail_start": -1}, {"post_id": 999}])
def test_constraints_reject_bad_spans_and_dangling_references(sessions, bad):
    with sessions.begin() as session:
        session.add(Dataset(id=1, name="d"))
        session.flush()
        session.add(Post(id=1, dataset_id=1, content_key="c", tokens=["a", "b"], text="a b", has_image=False))
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.execute(insert(EntityPair), [_pair_values(**bad)])
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(EntityPair)) == 0


def test_annotation_status_and_label_are_checked(sessions):
    with sessions.begin() as session:
        session.add(Dataset(id=1, name="d"))
        session.flush()
        session.add(Post(id=1, dataset_id=1, content_key="c", tokens=["a", "b"], text="a b", has_image=False))
        session.flush()
        session.execute(insert(EntityPair), [_pair_values()])
    for bad in ({"status": "maybe", "label": "x"}, {"status": "corrected", "label": None}):
        with pytest.raises(IntegrityError), sessions.begin() as session:
            session.add(Annotation(pair_id=1, revision=1, annotator="a", **bad))
