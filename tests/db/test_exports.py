"""Exports that read back as written: CSV through plain pandas.read_csv, MNRE with its splits kept apart."""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy import select

from db.annotations import record_annotation
from db.export_rows import ExportFilter
from db.io import import_mnre
from db.label_export import export_labels
from db.models import EntityPair
from tests.db.conftest import MINI_TRAIN, MINI_VAL


def _imported(sessions, mini_mnre) -> dict[tuple[str, int], int]:
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
    with sessions() as session:
        return {(pair.split, pair.source_line): pair.id for pair in session.scalars(select(EntityPair))}


def test_csv_keeps_the_none_relation_apart_from_no_label_with_plain_read_csv(sessions, mini_mnre, tmp_path):
    ids = _imported(sessions, mini_mnre)
    with sessions.begin() as session:
        record_annotation(session, ids[("train", 4)], status="rejected", annotator="ann", expected_revision=0)
    out = tmp_path / "labels.csv"
    with sessions() as session:
        export_labels(session, "csv", out, ExportFilter(include_rejected=True))
    frame = pd.read_csv(out)  # the defaults people use: "None", "NA", "null" ... would become NaN
    by_line = {(row.split, row.source_line): row for row in frame.itertuples()}
    none_pair = by_line[("train", 2)]
    assert isinstance(none_pair.label, str) and json.loads(none_pair.label) == "None"
    assert json.loads(none_pair.gold_label) == "None"
    assert json.loads(by_line[("train", 1)].label) == "/per/per/peer"
    rejected = by_line[("train", 4)]
    assert pd.isna(rejected.label) and json.loads(rejected.gold_label) == "/loc/loc/contain"
    assert json.loads(none_pair.tokens) == ["Obama", "meets", "Merkel", "in", "Berlin"]


def test_mnre_export_of_all_splits_to_one_txt_name_keeps_one_file_per_split(sessions, mini_mnre, tmp_path):
    _imported(sessions, mini_mnre)
    out = tmp_path / "curated.txt"
    with sessions() as session:
        report = export_labels(session, "mnre", out, ExportFilter())
    assert sorted(p.name for p in report.paths) == ["curated_train.txt", "curated_val.txt"]
    assert (tmp_path / "curated_train.txt").read_text(encoding="utf-8").splitlines() == MINI_TRAIN
    assert (tmp_path / "curated_val.txt").read_text(encoding="utf-8").splitlines() == MINI_VAL
    assert not out.exists()
    # one split asked for: the file has exactly the name given
    with sessions() as session:
        report = export_labels(session, "mnre", out, ExportFilter(split="val"))
    assert report.paths == [out] and out.read_text(encoding="utf-8").splitlines() == MINI_VAL
