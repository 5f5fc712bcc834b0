"""Curated labels with their rationales in the ERASER layout (DeYoung et al., ACL 2020, eraserbenchmark.com):

    out/docs/<docid>        one post's words, separated by spaces, on one line (one "sentence")
    out/<split>.jsonl       one line per pair: {"annotation_id", "classification", "docids", "query", "query_type",
                            "evidences": [[{"docid", "start_token", "end_token", "start_sentence", "end_sentence",
                            "text"}, ...]], "image_evidence"}

`docid` is per post (post_<first 16 hex digits of its content key>: several pairs of one post share it);
`annotation_id` is <dataset>/<split>/<pair id>; `query` is "<head> || <tail>" (the pair the label is about);
`classification` is the curated label. `evidences` holds one group (the rationale in effect,
db.rationales.rationale_in_effect): one entry per run of consecutive evidence words, `end_token` exclusive as in ERASER;
an empty list when the pair has no rationale. ERASER is text only: the evidence box is an MRE Lens extension,
`image_evidence` = {"img_id", "box": [x0, y0, x1, y1] in the original image's pixels, "image_size": [width, height]}
or null. The split files and the docs folder are written as one export (model.safe_write.atomic_files).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from db.export_rows import ExportReport, write_text_lines
from db.label_studio_format import word_runs
from model.safe_write import Sources, atomic_files

ERASER_FORMAT = "eraser"


def docid(row: dict[str, Any]) -> str:
    """post_ + the post's content key (db.io.content_key: sha256 of its words and image), first 16 hex digits."""
    key = hashlib.sha256(json.dumps([row["tokens"], row["img_id"]], ensure_ascii=False).encode()).hexdigest()
    return "post_" + key[:16]


def eraser_line(row: dict[str, Any]) -> dict[str, Any]:
    doc = docid(row)
    tokens = row["rationale_tokens"] or []
    evidences = [
        {
            "docid": doc,
            "start_token": start,
            "end_token": end,
            "start_sentence": 0,
            "end_sentence": 1,
            "text": " ".join(row["tokens"][start:end]),
        }
        for start, end in word_runs(tokens)
    ]
    image = None
    if row["rationale_box"] is not None:
        image = {
            "img_id": row["img_id"],
            "box": row["rationale_box"],
            "image_size": row["rationale_image_size"],
        }
    return {
        "annotation_id": f"{row['dataset']}/{row['split']}/{row['pair_id']}",
        "classification": row["label"],
        "docids": [doc],
        "query": f"{row['head_name']} || {row['tail_name']}",
        "query_type": None,
        "evidences": [evidences] if evidences else [],
        "image_evidence": image,
        "rationale_source": row["rationale_source"],
    }


def export_eraser(rows: list[dict[str, Any]], out: str | Path, sources: Sources = ()) -> ExportReport:
    """Write `rows` (db.export_rows.curated_rows) as an ERASER folder: docs/ and one <split>.jsonl per split."""
    by_split: dict[str, list[str]] = {}
    docs: dict[str, str] = {}
    for row in rows:
        by_split.setdefault(row["split"], []).append(json.dumps(eraser_line(row), ensure_ascii=False))
        docs[docid(row)] = " ".join(row["tokens"])
    files = {f"{split}.jsonl": write_text_lines(lines) for split, lines in by_split.items()}
    for doc, text in docs.items():
        files[f"docs/{doc}"] = write_text_lines([text])
    return ExportReport(len(rows), atomic_files(Path(out), files, sources=sources))
