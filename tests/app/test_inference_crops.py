"""The app feeds a model the crops its checkpoint was trained on: a grounding folder named in the checkpoint's
preprocessing is read (through model.grounding.apply_grounding, as model.evaluate reads it) when it is here, and the
label store's crops are used otherwise, saying so."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image
from sqlalchemy import select

from db.models import EntityPair, ModelVersion, Post, Prediction
from db.schema import open_database


def _config(grounding_dir) -> SimpleNamespace:
    return SimpleNamespace(preprocessing={"grounding_dir": str(grounding_dir)}, max_crops=3)


@pytest.fixture
def store(seeded_url):
    engine, sessions = open_database(seeded_url)
    yield sessions
    engine.dispose()


@pytest.fixture
def grounding(store, tmp_path) -> dict:
    """A `python -m model.grounding` folder for the store's val split: val's first pair grounded (one crop, a red
    square), its second pair's line grounded for another image (a folder of another copy of the data)."""
    with store() as session:
        val = session.execute(
            select(EntityPair.id, EntityPair.source_line, Post.img_id)
            .join(Post, Post.id == EntityPair.post_id)
            .where(EntityPair.split == "val")
            .order_by(EntityPair.id)
        ).all()
        train_pair = session.scalar(select(EntityPair.id).where(EntityPair.split == "train").limit(1))
    folder = tmp_path / "grounding"
    (folder / "val" / "crops").mkdir(parents=True)
    (grounded_id, grounded_line, grounded_image), (other_id, other_line, _) = val[0], val[1]
    Image.new("RGB", (40, 40), (255, 0, 0)).save(folder / "val" / "crops" / f"{grounded_line}_0.png")
    entries = [
        {
            "line": grounded_line,
            "img_id": grounded_image,
            "objects": [{"crop": f"crops/{grounded_line}_0.png"}],
        },
        {"line": other_line, "img_id": "another.jpg", "objects": [{"crop": f"crops/{other_line}_0.png"}]},
    ]
    (folder / "val.jsonl").write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    crop = folder / "val" / "crops" / f"{grounded_line}_0.png"
    return {"folder": folder, "crop": crop, "grounded": grounded_id, "other": other_id, "train": train_pair}


def test_records_read_the_checkpoints_grounding_folder(store, grounding):
    from app.services.inference import model_records, pair_records

    pair_ids = [grounding["grounded"], grounding["other"], grounding["train"]]
    with store() as session:
        store_records = pair_records(session, pair_ids)
        records, source = model_records(session, pair_ids, _config(grounding["folder"]))
    # the grounded pair reads the folder's crop, not the store's
    assert store_records[0].crop_paths and store_records[0].crop_paths != [grounding["crop"]]
    assert records[0].crop_paths == [grounding["crop"]]
    # a line grounded for another image, and a split the folder lacks, keep the store's crops
    assert records[1].crop_paths == store_records[1].crop_paths
    assert records[2].crop_paths == store_records[2].crop_paths
    assert source.folder == str(grounding["folder"])
    assert source.counts == {"applied": 1, "missing": 1, "errors": 0, "other_image": 1}
    assert source.note == (
        f"crops: 1 of 3 from the model's grounding folder {grounding['folder']}, 2 from the label store's "
        "(no usable entry there)"
    )


def test_a_missing_grounding_folder_falls_back_to_the_store_and_says_so(store, grounding, tmp_path):
    from app.services.inference import model_records, pair_records

    gone = tmp_path / "elsewhere"
    with store() as session:
        store_records = pair_records(session, [grounding["grounded"]])
        records, source = model_records(session, [grounding["grounded"]], _config(gone))
        plain, plain_source = model_records(
            session, [grounding["grounded"]], SimpleNamespace(preprocessing={}, max_crops=3)
        )
    assert records[0].crop_paths == plain[0].crop_paths == store_records[0].crop_paths
    assert source.folder is None and f"grounding folder {gone} is not on this machine" in source.note
    assert plain_source.note == "crops: the label store's (the model was trained on the dataset's crops)"


def test_scoring_and_inspect_read_the_models_crops(store, grounding, tiny_checkpoint, app_feature_cache):
    """predict_pair (Review, the scoring job) stores what the model computes on the folder's crop and says where
    the crops came from; Inspect's encoding (app.services.stored_explanations.encode) reads the same crop."""
    from app.services.inference import pair_records, predict_pair, predict_records
    from app.services.stored_explanations import encode
    from model.checkpoint import load_checkpoint

    model, tokenizer = load_checkpoint(tiny_checkpoint)
    model.config.preprocessing = {
        **(model.config.preprocessing or {}),
        "grounding_dir": str(grounding["folder"]),
    }
    pair_id = grounding["grounded"]
    with store() as session:
        store_record = pair_records(session, [pair_id])[0]
    on_store_crops = predict_records(model, tokenizer, [store_record])[0]
    on_folder_crop = predict_records(
        model, tokenizer, [replace(store_record, crop_paths=[grounding["crop"]])]
    )[0]
    # the red square is a different input: the check below could not pass by reading the store's crops
    assert on_store_crops != pytest.approx(on_folder_crop, abs=1e-6)

    with store() as session:
        version_key = session.scalar(select(ModelVersion.id).where(ModelVersion.is_active))
    assert predict_pair(store, model, tokenizer, version_key, pair_id) == pytest.approx(
        on_folder_crop, abs=1e-6
    )
    with store() as session:
        stored = session.scalars(select(Prediction).where(Prediction.pair_id == pair_id)).all()
    settings = [row.settings for row in stored if row.settings.get("crops", "").startswith("crops: 1 of 1")]
    assert len(settings) == 1 and str(grounding["folder"]) in settings[0]["crops"]

    inputs = encode(model, tokenizer, store, pair_id, str(app_feature_cache))
    assert inputs.record.crop_paths == [Path(grounding["crop"])]
