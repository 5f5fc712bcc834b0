"""The Parquet / JSONL exports load with the real Hugging Face `datasets`, with typed features and a dataset card."""

import os

# before `datasets` is first imported: it reads these once, and nothing here may reach the network
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
from sqlalchemy import select  # noqa: E402

from db.annotations import record_annotation  # noqa: E402
from db.hf_dataset import hf_features_of  # noqa: E402
from db.io import import_mnre  # noqa: E402
from db.label_export import export_labels  # noqa: E402
from db.models import EntityPair  # noqa: E402
from db.provenance import register_model_version, save_predictions, set_active  # noqa: E402
from tests.db.conftest import LABELS  # noqa: E402

NAMES = [name for name, _ in sorted(LABELS.items(), key=lambda kv: kv[1])]


def pair_at(session, split: str, line: int) -> EntityPair:
    return session.scalars(
        select(EntityPair).where(EntityPair.split == split, EntityPair.source_line == line)
    ).one()


@pytest.fixture
def curated(sessions, mini_mnre):
    """Mini MNRE with two annotators on two pairs (one disagreement) and an active model with predictions."""
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
        p1, p3 = pair_at(session, "train", 1).id, pair_at(session, "train", 3).id
        record_annotation(session, p1, status="accepted", annotator="alice", expected_revision=0)
        record_annotation(session, p1, status="corrected", label="None", annotator="bob", expected_revision=1)
        record_annotation(session, p3, status="accepted", annotator="alice", expected_revision=0)
        record_annotation(session, p3, status="accepted", annotator="bob", expected_revision=1)
        version = register_model_version(session, "ifaformer-objects-feed01", "/models/q", "objects")
        set_active(session, version.version_id)
        probs = dict.fromkeys(NAMES, 0.25)
        save_predictions(session, version.id, [{"pair_id": p1, "probabilities": probs}])
    return mini_mnre


def load(*args, tmp_path, **kw):
    import datasets

    return datasets.load_dataset(*args, cache_dir=str(tmp_path / "hf_cache"), **kw)


def check_typed(dataset, mini_mnre) -> None:
    from datasets import ClassLabel, Image, List, Value

    train = dataset["train"]
    features = train.features
    assert isinstance(features["relation"], ClassLabel) and features["relation"].names == NAMES
    assert features["head_start"] == Value("int32") and features["tail_end"] == Value("int32")
    assert isinstance(features["image"], Image) and isinstance(features["tokens"], List)
    assert (dataset["train"].num_rows, dataset["val"].num_rows) == (5, 2)
    first = train[0]  # train line 1: bob corrected /per/per/peer to None
    assert (first["label"], first["annotator"]) == ("None", "bob")
    assert features["relation"].int2str(first["relation"]) == "None"
    assert train[2]["relation"] == NAMES.index("/per/org/member_of")
    assert (first["head_start"], first["head_end"], first["tail_start"], first["tail_end"]) == (0, 1, 2, 3)
    # the image file exists for img1.jpg only (train lines 1 and 2); it decodes to the picture itself
    assert first["image"].size == (40, 30) and first["image"].getpixel((0, 0))[0] > 150
    assert train[2]["image"] is None


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_dataset_folder_loads_typed_and_carries_a_card(sessions, curated, tmp_path, fmt):
    out = tmp_path / "export"
    with sessions() as session:
        report = export_labels(session, fmt, out)
    assert sorted(p.name for p in report.paths) == sorted(["README.md", f"train.{fmt}", f"val.{fmt}"])
    check_typed(load(str(out), tmp_path=tmp_path), curated)  # features from the card's YAML header
    builder = {"parquet": "parquet", "jsonl": "json"}[fmt]
    files = {split: str(out / f"{split}.{fmt}") for split in ("train", "val")}
    if fmt == "parquet":  # the file carries its features: no card needed
        check_typed(load(builder, data_files=files, tmp_path=tmp_path), curated)
    else:
        check_typed(load(builder, data_files=files, features=hf_features_of(out), tmp_path=tmp_path), curated)

    card = (out / "README.md").read_text(encoding="utf-8")
    assert "| train | 5 |" in card and "| val | 2 |" in card and "| **all** | 7 |" in card
    assert "| 2 | `/per/org/member_of` | 1 | 0 |" in card  # label set with per-split counts
    assert "Cohen's kappa alice vs bob" in card and "on 2 pairs" in card
    assert str(curated.resolve()) in card  # source dataset
    assert "ifaformer-objects-feed01" in card and "predictions for 1 of the 7" in card


def test_single_parquet_file_carries_its_features(sessions, curated, tmp_path):
    import pandas as pd

    out = tmp_path / "labels.parquet"
    with sessions() as session:
        export_labels(session, "parquet", out)
    loaded = load("parquet", data_files={"train": str(out)}, tmp_path=tmp_path)
    assert loaded["train"].features["relation"].names == NAMES and loaded["train"].num_rows == 7
    # still plain Parquet for pandas readers: the label stays a string column
    assert list(pd.read_parquet(out)["label"])[:2] == ["None", "None"]
    assert not (tmp_path / "README.md").exists()  # a file export never writes a card next to the user's files


def test_features_written_without_datasets_match_the_datasets_package():
    import pyarrow as pa
    from datasets import ClassLabel, DatasetInfo, Features, Image, List, Value

    from db.hf_dataset import arrow_schema, features_dict, hf_features, yaml_features

    built = hf_features(NAMES)
    assert isinstance(built["relation"], ClassLabel) and isinstance(built["image"], Image)
    assert built["tokens"] == List(Value("string")) and built["source_line"] == Value("int32")
    assert built.to_dict() == features_dict(NAMES)
    assert DatasetInfo(features=built)._to_yaml_dict()["features"] == yaml_features(NAMES)
    assert pa.schema(list(arrow_schema(NAMES))) == built.arrow_schema.remove_metadata()
    assert Features.from_arrow_schema(arrow_schema(NAMES)) == built
