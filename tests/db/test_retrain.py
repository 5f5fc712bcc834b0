"""Retraining on curated labels (app/services/retrain.py), end to end on the synthetic dataset with a tiny text encoder."""

from pathlib import Path

import pytest
from sqlalchemy import select

import model.train
from app.services.retrain import main as retrain_main
from app.services.retrain import retrain
from db.annotations import record_annotation
from db.errors import LabelStoreError
from db.io import import_mnre
from db.models import EntityPair, ModelVersion
from db.provenance import evaluation_runs
from db.schema import open_database
from model.data import read_records
from model.train import TrainConfig, train

TINY = {"max_length": 24, "progress": False, "limit_train": 64, "limit_val": 32}


@pytest.mark.slow
def test_retrain_uses_curated_labels_and_registers_a_child_version(
    tmp_path, synthetic_root, tiny_text_encoder, feature_cache_dir, monkeypatch
):
    options = {**TINY, "feature_cache": str(feature_cache_dir)}
    base = train(
        TrainConfig(
            data=str(synthetic_root),
            output_dir=str(tmp_path / "base"),
            variant="text_only",
            text_encoder=tiny_text_encoder,
            epochs=1,
            batch_size=16,
            lr=2e-3,
            seed=0,
            **options,
        )
    )
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'store.db'}")
    source = read_records(synthetic_root / "txt" / "ours_train.txt")
    new_label = next(label for label in ("/per/per/peer", "/per/per/couple") if label != source[0].relation)
    with sessions.begin() as session:
        import_mnre(session, synthetic_root, ["train", "val"])
        line_to_pair = dict(
            session.execute(
                select(EntityPair.source_line, EntityPair.id).where(EntityPair.split == "train")
            ).all()
        )
        record_annotation(
            session,
            line_to_pair[1],
            status="corrected",
            label=new_label,
            annotator="ann",
            expected_revision=0,
        )
        record_annotation(session, line_to_pair[2], status="rejected", annotator="ann", expected_revision=0)

    seen = {}
    real_train = model.train.train

    def spy(cfg, train_records=None, val_records=None, **kwargs):
        seen["cfg"], seen["records"] = cfg, train_records
        return real_train(cfg, train_records=train_records, val_records=val_records, **kwargs)

    monkeypatch.setattr(model.train, "train", spy)
    try:
        result = retrain(
            sessions,
            str(base.best_dir),
            synthetic_root,
            epochs=1,
            output_dir=tmp_path / "re",
            batch_size=16,
            lr=2e-3,
            seed=0,
            activate=True,
            created_by="ann",
            log=lambda msg: None,
            **options,
        )
        assert seen["cfg"].init_from == str(base.best_dir.resolve())  # fine-tunes the base checkpoint
        assert len(seen["records"]) == len(source) - 1  # the rejected pair is gone
        assert (seen["records"][0].line, seen["records"][0].relation) == (1, new_label)
        assert seen["records"][1].line == 3
        assert (result.curation.corrected, result.curation.dropped) == (1, 1)
        assert result.before["records"] == 32 and set(result.after) >= {
            "accuracy",
            "precision",
            "recall",
            "f1",
        }
        assert "before" in result.table() and "f1" in result.table()
        # the same rule before and after: each side's best/ (selected on val), evaluated on the same val records
        assert result.after["records"] == result.before["records"] == 32
        assert result.checkpoint.name == "best" and result.after["model_version"] == result.new_version
        with sessions() as session:
            child = session.scalars(
                select(ModelVersion).where(ModelVersion.version_id == result.new_version)
            ).one()
            assert (
                child.parent.version_id == base.version_id and child.is_active and child.created_by == "ann"
            )
            assert child.metrics["val"]["f1"] == result.after["f1"]
            assert child.metrics["val_before"]["f1"] == result.before["f1"]
            assert child.settings["dropped_rejected"] == 1
            # the fine-tuned checkpoint's own architecture and encoder are stored, as for any registered folder
            assert (child.architecture, child.text_encoder) == (
                child.parent.architecture,
                child.parent.text_encoder,
            ) and child.architecture == "ifaformer"
            assert [run.model_version_id for run in evaluation_runs(session, "val")] == [
                child.parent_id,
                child.id,
            ]
    finally:
        engine.dispose()


def test_retrain_reports_user_errors(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert retrain_main(["--base", "no-such-version", "--mnre", str(tmp_path), "--database-url", url]) == 2
    assert "model version 'no-such-version' is not registered" in capsys.readouterr().err
    # a folder with a config.json but no weights: refused before anything is registered
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text('{"version_id": "v1", "variant": "text_only"}')
    assert (
        retrain_main(["--base", str(checkpoint), "--mnre", str(tmp_path / "nope"), "--database-url", url])
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a loadable checkpoint" in err and "Traceback" not in err
    engine, sessions = open_database(url)
    try:
        with sessions() as session:
            assert session.scalars(select(ModelVersion)).all() == []
        from app.services.retrain import resolve_base

        with pytest.raises(LabelStoreError, match="'v1' is not registered"):
            resolve_base(sessions, "v1")
    finally:
        engine.dispose()


def test_retrain_reports_missing_data_for_a_good_base(tmp_path, capsys, tiny_text_encoder):
    from model.encoders import build_model
    from model.synthetic import MNRE_LABELS

    model, tokenizer = build_model("text_only", MNRE_LABELS, tiny_text_encoder)
    model.save_pretrained(tmp_path / "ckpt", tokenizer)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert (
        retrain_main(
            ["--base", str(tmp_path / "ckpt"), "--mnre", str(tmp_path / "nope"), "--database-url", url]
        )
        == 2
    )
    assert "ours_rel2id.json" in capsys.readouterr().err


def test_retrain_measures_before_and_after_by_the_same_selection_rule(
    tmp_path, synthetic_root, tiny_text_encoder, monkeypatch
):
    """Every registered version is the best/ its training selected on val (epoch and None offset); the base is one,
    so the fine-tuned side must be its best/ too. A training whose best/ and last/ differ shows which was used."""
    import torch

    from explain.tables import OUTSIDE_TABLES
    from model.encoders import build_model
    from model.synthetic import MNRE_LABELS
    from model.train import TrainResult

    def tiny_model(seed: int):
        torch.manual_seed(seed)
        return build_model("text_only", MNRE_LABELS, tiny_text_encoder)

    base_model, tokenizer = tiny_model(0)
    base_model.save_pretrained(tmp_path / "base" / "best", tokenizer)
    saved = {}

    def fake_train(cfg, train_records=None, val_records=None, label_names=None, progress_callback=None):
        # two different weights: the epoch val picked (best/) and the last epoch (last/)
        for name, seed in (("best", 1), ("last", 2)):
            model, model_tokenizer = tiny_model(seed)
            saved[name] = model.save_pretrained(Path(cfg.output_dir) / name, model_tokenizer)
        return TrainResult(Path(cfg.output_dir) / "best", {"f1": 0.0}, [], saved["best"])

    monkeypatch.setattr(model.train, "train", fake_train)
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        with sessions.begin() as session:
            import_mnre(session, synthetic_root, ["train", "val"])
        result = retrain(
            sessions,
            str(tmp_path / "base" / "best"),
            synthetic_root,
            epochs=1,
            output_dir=tmp_path / "re",
            log=lambda msg: None,
            max_length=24,
            limit_val=16,
        )
        assert saved["best"] != saved["last"]
        assert result.checkpoint == tmp_path / "re" / "best"
        assert result.new_version == result.after["model_version"] == saved["best"]
        assert result.before["records"] == result.after["records"] == 16
        with sessions() as session:
            child = session.scalars(
                select(ModelVersion).where(ModelVersion.version_id == saved["best"])
            ).one()
            assert Path(child.path) == (tmp_path / "re" / "best").resolve()
            # both evaluations are stored, and kept out of the Experiments tables
            purposes = [(run.settings or {}).get("purpose") for run in evaluation_runs(session, "val")]
            assert len(purposes) == 2 and set(purposes) <= OUTSIDE_TABLES
    finally:
        engine.dispose()
