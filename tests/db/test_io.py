import json
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from PIL import Image
from sqlalchemy import func, select

from db import export_rows
from db import io as store_io
from db.annotations import record_annotation
from db.export_rows import ExportFilter
from db.io import import_mnre, import_post, validate_image
from db.label_export import ExportTargetError, export_labels
from db.models import Dataset, EntityPair, GroundedCrop, Post
from model.data import DataFormatError, load_split
from tests.db.conftest import MINI_TRAIN, write_mini_mnre

TABLES = (Dataset, Post, EntityPair, GroundedCrop)


def counts(sessions) -> dict[str, int]:
    with sessions() as session:
        return {
            table_class.__tablename__: session.scalar(select(func.count()).select_from(table_class))
            for table_class in TABLES
        }


def pair_at(session, split: str, line: int) -> EntityPair:
    return session.scalars(
        select(EntityPair).where(EntityPair.split == split, EntityPair.source_line == line)
    ).one()


def test_import_stores_posts_pairs_images_and_crops(sessions, mini_mnre):
    with sessions.begin() as session:
        report = import_mnre(session, mini_mnre)
    assert (report.records, report.new_pairs, report.with_image, report.new_crops) == (7, 7, 2, 1)
    # the two "Obama meets Merkel" records share one post
    assert counts(sessions) == {"datasets": 1, "posts": 6, "entity_pairs": 7, "grounded_crops": 1}
    with sessions() as session:
        pair = pair_at(session, "train", 1)
        assert (pair.head_start, pair.head_end, pair.tail_name, pair.gold_label) == (
            0,
            1,
            "Merkel",
            "/per/per/peer",
        )
        assert pair.post.has_image and len(pair.post.image_sha256) == 64
        no_image = pair_at(session, "train", 3).post
        assert (no_image.img_id, no_image.has_image, no_image.image_path) == ("img2.jpg", False, None)


def test_reimport_changes_nothing(sessions, mini_mnre):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
    before = counts(sessions)
    with sessions.begin() as session:
        report = import_mnre(session, mini_mnre)
    assert (report.new_pairs, report.existing_pairs, report.new_posts, report.new_crops) == (0, 7, 0, 0)
    assert counts(sessions) == before


def test_bad_line_in_the_middle_stores_nothing_and_names_file_line_field(sessions, tmp_path):
    bad = MINI_TRAIN[:2] + [MINI_TRAIN[2].replace("'pos': [2, 4]", "'pos': [2, 9]")] + MINI_TRAIN[3:]
    root = write_mini_mnre(tmp_path / "bad", train=bad)
    with pytest.raises(DataFormatError) as err, sessions.begin() as session:
        import_mnre(session, root, ["val", "train"])  # val is valid and read first
    assert f"{root / 'txt' / 'ours_train.txt'}:3:" in str(err.value) and "'t.pos'" in str(err.value)
    assert counts(sessions) == dict.fromkeys(["datasets", "posts", "entity_pairs", "grounded_crops"], 0)
    with sessions.begin() as session:
        report = import_mnre(session, root, skip_bad=True)
    assert report.new_pairs == 6 and len(report.skipped) == 1 and ":3:" in report.skipped[0]


def test_failure_while_writing_rolls_everything_back(sessions, mini_mnre, monkeypatch):
    real_insert = store_io.bulk_insert

    def failing_insert(session, model, rows):
        if model is GroundedCrop:  # after posts and pairs went in
            raise RuntimeError("disk full")
        real_insert(session, model, rows)

    monkeypatch.setattr(store_io, "bulk_insert", failing_insert)
    with pytest.raises(RuntimeError), sessions.begin() as session:
        import_mnre(session, mini_mnre)
    assert counts(sessions) == dict.fromkeys(["datasets", "posts", "entity_pairs", "grounded_crops"], 0)


def test_bad_image_fails_before_storing_with_its_record_line(sessions, mini_mnre):
    (mini_mnre / "img_org" / "train" / "img1.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DataFormatError) as err, sessions.begin() as session:
        import_mnre(session, mini_mnre)
    assert "ours_train.txt:1:" in str(err.value) and "'img_id'" in str(err.value)
    assert counts(sessions)["entity_pairs"] == 0
    with sessions.begin() as session:
        report = import_mnre(session, mini_mnre, skip_bad=True)
    assert report.with_image == 0 and report.new_pairs == 7  # stored as "no image", never another picture


def test_image_validation_limits(tmp_path, monkeypatch):
    good = tmp_path / "ok.png"
    Image.new("RGB", (20, 10)).save(good)
    assert len(validate_image(good)) == 64
    tiff = tmp_path / "x.tiff"
    Image.new("RGB", (20, 10)).save(tiff)
    with pytest.raises(DataFormatError, match="format TIFF"):
        validate_image(tiff)
    monkeypatch.setattr(store_io, "MAX_IMAGE_PIXELS", 199)
    with pytest.raises(DataFormatError, match="decompression bomb"):
        validate_image(good)
    monkeypatch.setattr(store_io, "MAX_IMAGE_BYTES", 10)
    with pytest.raises(DataFormatError, match="byte limit"):
        validate_image(good)
    with pytest.raises(DataFormatError, match="missing.png: field 'image' file not found"):
        validate_image(tmp_path / "missing.png")


def test_import_single_post_is_idempotent_and_validates(sessions, tmp_path):
    image = tmp_path / "p.png"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(image)
    with sessions.begin() as session:
        pair, created = import_post(session, "Obama meets Merkel in Berlin", (0, 1), (2, 3), image)
        assert (
            created and pair.head_name == "Obama" and pair.tail_name == "Merkel" and pair.gold_label is None
        )
        assert pair.post.has_image and pair.post.image_sha256 == validate_image(image)
    with sessions.begin() as session:
        again, created = import_post(session, "Obama meets Merkel in Berlin", (0, 1), (2, 3), image)
        assert not created and again.id == pair.id
    with pytest.raises(DataFormatError, match="field 'tail'"), sessions.begin() as session:
        import_post(session, "Obama meets Merkel", (0, 1), (2, 7))
    broken = tmp_path / "broken.gif"
    broken.write_bytes(b"GIF89a" + b"\xff" * 20)
    with pytest.raises(DataFormatError), sessions.begin() as session:
        import_post(session, "Obama meets Merkel", (0, 1), (2, 3), broken)
    assert counts(sessions)["entity_pairs"] == 1


def test_untouched_records_round_trip_byte_identical(sessions, mini_mnre, tmp_path):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
    with sessions() as session:
        report = export_labels(session, "mnre", tmp_path / "out")
    assert report.rows == 7
    for name in ("ours_train.txt", "ours_val.txt"):
        assert (tmp_path / "out" / "txt" / name).read_bytes() == (mini_mnre / "txt" / name).read_bytes()
    assert json.loads((tmp_path / "out" / "ours_rel2id.json").read_text()) == json.loads(
        (mini_mnre / "ours_rel2id.json").read_text()
    )


def test_export_applies_corrections_and_drops_rejected(sessions, mini_mnre, tmp_path):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
        record_annotation(
            session,
            pair_at(session, "train", 2).id,
            status="corrected",
            label="/loc/loc/contain",
            annotator="ann",
            expected_revision=0,
        )
        record_annotation(
            session, pair_at(session, "train", 5).id, status="rejected", annotator="ann", expected_revision=0
        )
    with sessions() as session:
        export_labels(session, "mnre", tmp_path / "out")
    lines = (tmp_path / "out" / "txt" / "ours_train.txt").read_text().splitlines()
    assert lines == [
        MINI_TRAIN[0],
        MINI_TRAIN[1].replace("'relation': 'None'", "'relation': '/loc/loc/contain'"),
        MINI_TRAIN[2],
        MINI_TRAIN[3],
    ]
    records, _, _ = load_split(tmp_path / "out", "train")  # the export is a valid MNRE folder again
    assert [r.relation for r in records] == [
        "/per/per/peer",
        "/loc/loc/contain",
        "/per/org/member_of",
        "/loc/loc/contain",
    ]


def test_tabular_exports_are_readable_by_pandas(sessions, mini_mnre, tmp_path):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
        record_annotation(
            session,
            pair_at(session, "val", 2).id,
            status="corrected",
            label="/loc/loc/contain",
            annotator="bob",
            expected_revision=0,
            note="Berlin is in Germany",
        )
    frames = {}
    with sessions() as session:
        for fmt in ("csv", "jsonl", "parquet"):
            export_labels(session, fmt, tmp_path / f"labels.{fmt}")
    # the CSV's labels are JSON strings, so plain read_csv keeps MNRE's "None" label (tests/db/test_exports.py)
    frames["csv"] = pd.read_csv(tmp_path / "labels.csv")
    for column in ("label", "gold_label"):
        frames["csv"][column] = [json.loads(v) for v in frames["csv"][column]]
    frames["jsonl"] = pd.read_json(tmp_path / "labels.jsonl", lines=True)
    frames["parquet"] = pd.read_parquet(tmp_path / "labels.parquet")
    for fmt, frame in frames.items():
        assert len(frame) == 7, fmt
        corrected = frame[frame["status"] == "corrected"].iloc[0]
        assert (corrected["label"], corrected["gold_label"], corrected["annotator"]) == (
            "/loc/loc/contain",
            "None",
            "bob",
        ), fmt
        assert corrected["text"] == "Berlin in Germany" and corrected["head_start"] == 2
    assert json.loads(frames["csv"]["tokens"][0]) == ["Obama", "meets", "Merkel", "in", "Berlin"]
    assert list(frames["parquet"]["tokens"][0]) == ["Obama", "meets", "Merkel", "in", "Berlin"]
    assert set(frames["parquet"]["status"]) == {"unreviewed", "corrected"}


def test_export_filters(sessions, mini_mnre, tmp_path):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
        import_post(session, "Alice visits Bob", (0, 1), (2, 3), dataset="posts", label=None)
        record_annotation(
            session, pair_at(session, "train", 1).id, status="accepted", annotator="ann", expected_revision=0
        )
        record_annotation(
            session,
            pair_at(session, "train", 2).id,
            status="corrected",
            label="/per/per/peer",
            annotator="bob",
            expected_revision=0,
        )
        record_annotation(
            session, pair_at(session, "val", 1).id, status="rejected", annotator="bob", expected_revision=0
        )
    cut = datetime.now(UTC)
    time.sleep(0.01)
    with sessions.begin() as session:
        record_annotation(
            session, pair_at(session, "train", 3).id, status="skipped", annotator="ann", expected_revision=0
        )

    def exported(**filters) -> list[tuple[str, int | None]]:
        with sessions() as session:
            rows = export_rows.curated_rows(session, ExportFilter(**filters))
        return [(r["split"], r["source_line"]) for r in rows]

    everything = [("train", i) for i in range(1, 6)] + [("val", 2)]  # rejected and unlabelled posts left out
    assert exported() == everything
    assert exported(dataset="mnre", split="val") == [("val", 2)]
    assert exported(statuses=["accepted", "corrected"]) == [("train", 1), ("train", 2)]
    assert exported(statuses=["unreviewed"]) == [("train", 4), ("train", 5), ("val", 2)]
    assert exported(annotator="bob") == [("train", 2)]
    assert exported(annotator="bob", include_rejected=True) == [("train", 2), ("val", 1)]
    assert exported(label="/per/per/peer") == [("train", 1), ("train", 2)]
    assert exported(since=cut) == [("train", 3)]
    assert exported(until=cut) == [("train", 1), ("train", 2)]
    assert exported(since=cut + timedelta(hours=1)) == []
    assert exported(dataset="posts") == []
    with sessions() as session:
        assert export_rows.curated_rows(session, ExportFilter(dataset="posts", include_rejected=True)) == []


def test_failed_export_leaves_no_partial_file(sessions, mini_mnre, tmp_path, monkeypatch):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
    target = tmp_path / "labels.jsonl"
    target.write_text("previous export\n")

    def crash_after_first_line(lines):
        def write(tmp):
            tmp.write_text(lines[0] + "\n")
            raise OSError("disk full")

        return write

    monkeypatch.setattr(export_rows, "write_text_lines", crash_after_first_line)
    with (
        pytest.raises(ExportTargetError, match="labels.jsonl: cannot be written .disk full"),
        sessions() as session,
    ):
        export_labels(session, "jsonl", target)
    assert target.read_text() == "previous export\n"
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_full_mnre_import_is_idempotent_and_round_trips(tmp_path, mnre_root):
    from db.schema import open_database

    engine, sessions = open_database(f"sqlite:///{tmp_path / 'full.db'}")
    try:
        # speed is measured by benchmarks/bench_db.py, not asserted here
        with sessions.begin() as session:
            report = import_mnre(session, mnre_root)
        assert report.new_pairs == report.records == 13871
        with sessions.begin() as session:
            assert import_mnre(session, mnre_root).new_pairs == 0
        with sessions() as session:
            export_labels(session, "mnre", tmp_path / "out")
        for split in ("train", "val"):
            exported = (tmp_path / "out" / "txt" / f"ours_{split}.txt").read_bytes()
            assert exported == (mnre_root / "txt" / f"ours_{split}.txt").read_bytes()
    finally:
        engine.dispose()
