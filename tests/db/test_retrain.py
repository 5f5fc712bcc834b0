"""Retraining on curated labels (app/retrain.py), end to end on the synthetic dataset with a tiny text encoder."""

import pytest
from sqlalchemy import select

import model.train
from app.retrain import main as retrain_main
from app.retrain import retrain
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
        # the same rule before and after: one evaluation on the same val records, no epoch picked on them
        assert result.after["records"] == result.before["records"] == 32
        assert result.checkpoint.name == "last" and result.after["model_version"] == result.new_version
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
        from app.retrain import resolve_base

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
