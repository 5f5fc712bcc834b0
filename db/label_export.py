"""Export curated labels: export_labels writes MNRE txt (a folder or one file) and CSV here, JSONL and Parquet through
db.hf_dataset, ERASER through db.eraser_export, all from db.export_rows' rows (the label in effect, the spans in
effect). Every write is atomic and checked against its target (model.safe_write): a source file is never
overwritten and a failed export leaves nothing half-written.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import export_rows
from db.datasets import check_filter_names
from db.eraser_export import ERASER_FORMAT, export_eraser
from db.errors import LabelStoreError
from db.export_rows import (
    ROW_COLUMNS,
    ExportFilter,
    ExportReport,
    atomic_write,
    curated_rows,
    public_rows,
    source_paths,
)
from db.hf_dataset import export_hf
from db.models import Dataset
from db.redact import csv_cell
from model.mnre_format import SPLIT_FILES, labels_by_id
from model.safe_write import Sources, UnsafeTargetError, atomic_files, check_target

EXPORT_FORMATS = ("mnre", "jsonl", "csv", "parquet", "eraser")
CSV_JSON_COLUMNS = ("gold_label", "label")  # written as JSON strings (see export_labels)


def mnre_line(row: dict[str, Any]) -> str:
    """The record in the MNRE txt layout: the source line itself when the label and spans are untouched; a fixed
    span replaces the record's `h` / `t` name and pos (DeepKE's layout: pos is [start, end), end exclusive)."""
    raw = row["_raw_line"]
    if raw is not None and row["label"] == row["gold_label"] and not row["spans_edited"]:
        return raw
    if raw is not None:
        record = ast.literal_eval(raw)  # keeps the source's keys, order and any extra fields
        record["relation"] = row["label"]
        if row["spans_edited"]:
            for key, role in (("h", "head"), ("t", "tail")):
                entity = record[key] if isinstance(record.get(key), dict) else {}
                record[key] = {
                    **entity,
                    "name": row[f"{role}_name"],
                    "pos": [row[f"{role}_start"], row[f"{role}_end"]],
                }
    else:
        record = {
            "token": row["tokens"],
            "h": {"name": row["head_name"], "pos": [row["head_start"], row["head_end"]]},
            "t": {"name": row["tail_name"], "pos": [row["tail_start"], row["tail_end"]]},
            "img_id": row["img_id"],
            "relation": row["label"],
        }
    return repr(record)


# An export target that cannot or must not be written (outside its folder, a source, a FIFO, device, read-only place)
ExportTargetError = UnsafeTargetError


def check_export_target(path: Path) -> None:
    """Refuse a target that exists and is not a regular file: a FIFO or device is never replaced by a file."""
    check_target(path)


def export_labels(
    session: Session, fmt: str, out: str | Path, export_filter: ExportFilter | None = None
) -> ExportReport:
    """Export curated labels. mnre: `out` is a folder (txt/ours_<split>.txt + ours_rel2id.json) or one .txt file."""
    if fmt not in EXPORT_FORMATS:
        raise LabelStoreError(f"unknown export format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out)
    export_filter = export_filter or ExportFilter()
    if fmt == "mnre" and export_filter.include_rejected:
        raise LabelStoreError(
            "the MNRE layout has no place for rejected pairs; export them as jsonl, csv or parquet"
        )
    check_filter_names(
        session, export_filter.dataset, export_filter.split, export_filter.annotator, export_filter.label
    )
    sources = source_paths(session)
    check_target(out, sources=sources, folder_ok=True)  # before the query; each writer checks again
    rows = curated_rows(session, export_filter)
    if fmt == "mnre":
        return export_mnre(session, rows, out, sources)
    if fmt in ("jsonl", "parquet"):  # typed Hugging Face features; a folder `out` gets a dataset card
        return export_hf(session, fmt, rows, out, sources)
    if fmt == ERASER_FORMAT:  # a folder: docs/ and <split>.jsonl with the rationales as ERASER evidences
        return export_eraser(rows, out, sources)
    import pandas as pd

    frame = pd.DataFrame(public_rows(rows), columns=[k for k in ROW_COLUMNS if not k.startswith("_")])
    frame["tokens"] = [json.dumps(tokens, ensure_ascii=False) for tokens in frame["tokens"]]
    for column in ("rationale_tokens", "rationale_box", "rationale_image_size"):  # JSON lists; empty: none
        frame[column] = [json.dumps(value) if value is not None else None for value in frame[column]]
    # Labels are JSON strings: plain pandas.read_csv turns a bare None (MNRE's no-relation label) into NaN, but
    # reads '"None"' as a string; an empty cell is "no label" (NaN). json.loads gives the label back.
    for column in CSV_JSON_COLUMNS:
        frame[column] = [
            json.dumps(label, ensure_ascii=False) if label is not None else None for label in frame[column]
        ]
    # a cell a spreadsheet would run as a formula (= + - @ tab CR) starts with an apostrophe (OWASP)
    for column in frame.columns:
        if any(isinstance(value, str) for value in frame[column]):
            frame[column] = [csv_cell(value) for value in frame[column]]
    atomic_write(out, lambda tmp: frame.to_csv(tmp, index=False), sources)
    return ExportReport(len(rows), [out])


def export_mnre(session: Session, rows: list[dict[str, Any]], out: Path, sources: Sources) -> ExportReport:
    by_split: dict[str, list[str]] = {}
    for row in rows:
        by_split.setdefault(row["split"], []).append(mnre_line(row))
    if out.suffix == ".txt":
        if len(by_split) <= 1:
            atomic_write(out, export_rows.write_text_lines(next(iter(by_split.values()), [])), sources)
            return ExportReport(len(rows), [out])
        # several splits asked for one file: one file per split beside it, so no split is mixed into another
        files = {
            f"{out.stem}_{split}{out.suffix}": export_rows.write_text_lines(lines)
            for split, lines in by_split.items()
        }
        return ExportReport(len(rows), atomic_files(out.parent, files, sources=sources))
    label_maps = {
        json.dumps(label_map, sort_keys=True)
        for label_map in session.scalars(
            select(Dataset.label_map).where(Dataset.name.in_({row["dataset"] for row in rows}))
        )
        if label_map
    }
    if len(label_maps) > 1:
        raise LabelStoreError(
            "the exported datasets have different label maps; export one dataset at a time (--dataset)"
        )
    files = {}
    for split, lines in by_split.items():
        name = SPLIT_FILES[split][0] if split in SPLIT_FILES else f"ours_{split}.txt"
        files[f"txt/{name}"] = export_rows.write_text_lines(lines)
    if label_maps:
        label_map = json.loads(label_maps.pop())
        ordered = {name: label_map[name] for name in labels_by_id(label_map)}
        files["ours_rel2id.json"] = export_rows.write_text_lines([json.dumps(ordered, ensure_ascii=False)])
    return ExportReport(len(rows), atomic_files(out, files, sources=sources))
