"""The model version travels as one object (db.model_versions.ModelVersionInfo) whose architecture is the checkpoint's, never the version id's
prefix; stores registered before the architecture was stored get it from their checkpoints on upgrade."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from app.services.store import evaluation_run_rows
from db.base import make_engine
from db.errors import LabelStoreError
from db.model_versions import active_model, find_model
from db.models import ModelVersion
from db.provenance import (
    register_checkpoint,
    register_model_version,
    save_evaluation_run,
    set_active,
)
from db.schema import current_revision, head_revision, open_database, upgrade_database

METRICS = {"accuracy": 0.5, "precision": 0.4, "recall": 0.3, "f1": 0.35}


def checkpoint_folder(root: Path, name: str, **config) -> Path:
    """A folder with only a config.json: all that registration and the upgrade read."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def test_the_architecture_is_the_checkpoints_not_the_version_ids_prefix(sessions, tmp_path):
    # a MEGA model whose id carries no "mega" prefix, and an IFAformer whose id starts with "mega-"
    mega = checkpoint_folder(
        tmp_path, "a", architecture="mega", version_id="abc123", variant="mega", text_encoder="enc/minilm"
    )
    lookalike = checkpoint_folder(
        tmp_path, "b", architecture="ifaformer", version_id="mega-lookalike", variant="objects"
    )
    with sessions.begin() as session:
        mega_row = register_checkpoint(session, mega)
        lookalike_row = register_checkpoint(session, lookalike)
        save_evaluation_run(session, "mega", "standard", "val", METRICS, mega_row.id)
        save_evaluation_run(session, "objects", "standard", "val", METRICS, lookalike_row.id)
        # a run of no registered version: the architecture its job recorded, or unknown
        save_evaluation_run(
            session, "mega", "shuffle-test", "val", METRICS, settings={"architecture": "mega"}
        )
        save_evaluation_run(session, "ifaformer", "shuffle-test", "val", METRICS)
        set_active(session, "abc123")
    with sessions() as session:
        rows = evaluation_run_rows(session)
        active = active_model(session)
        lookalike_ref = find_model(session, "mega-lookalike")
        with pytest.raises(LabelStoreError, match="'nope' is not registered"):
            find_model(session, "nope")
    assert sorted((row["model"], row["setting"], row["architecture"]) for row in rows) == [
        ("abc123", "standard", "mega"),
        ("ifaformer", "shuffle_test", ""),
        ("mega", "shuffle_test", "mega"),
        ("mega-lookalike", "standard", "ifaformer"),
    ]
    assert (
        active.key,
        active.version_id,
        active.folder,
        active.architecture,
        active.variant,
        active.text_encoder,
        active.active,
    ) == (mega_row.id, "abc123", str(mega.resolve()), "mega", "mega", "enc/minilm", True)
    assert (lookalike_ref.architecture, lookalike_ref.text_encoder, lookalike_ref.active) == (
        "ifaformer",
        None,
        False,
    )


def test_a_version_registered_without_a_checkpoint_has_no_architecture(sessions):
    with sessions.begin() as session:
        register_model_version(session, "ifaformer-x", "/nowhere", "objects")
    with sessions() as session:
        assert find_model(session, "ifaformer-x").architecture is None


def test_upgrade_from_0003_reads_each_versions_architecture_from_its_checkpoint(db_url, tmp_path):
    mega = checkpoint_folder(tmp_path, "m", architecture="mega", version_id="v1", text_encoder="enc/mpnet")
    # saved before config.json named its architecture: an IFAformer folder (model.checkpoint's rule)
    old = checkpoint_folder(tmp_path, "o", version_id="v2")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    upgrade_database(db_url, revision="0003")
    engine = make_engine(db_url)
    now = datetime(2026, 1, 2, tzinfo=UTC)
    rows = [("mega-free-id", mega), ("old", old), ("gone", tmp_path / "deleted"), ("broken", broken)]
    try:
        with engine.begin() as conn:
            # only the columns revision 0003 has
            conn.execute(
                insert(ModelVersion.__table__),
                [
                    {
                        "version_id": version_id,
                        "path": str(path),
                        "variant": "v",
                        "is_active": False,
                        "created_at": now,
                    }
                    for version_id, path in rows
                ],
            )
    finally:
        engine.dispose()
    engine, sessions = open_database(db_url)
    try:
        assert current_revision(engine) == head_revision() != "0003"
        with sessions() as session:
            found = {
                version.version_id: (version.architecture, version.text_encoder)
                for version in session.scalars(select(ModelVersion))
            }
    finally:
        engine.dispose()
    assert found == {
        "mega-free-id": ("mega", "enc/mpnet"),
        "old": ("ifaformer", None),
        "gone": (None, None),
        "broken": (None, None),
    }
