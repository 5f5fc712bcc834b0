"""Label Studio tasks JSON out of the store: one task per curated pair.

`data` holds the post text, the image URL and an `mrelens` block (dataset, split, source key, word tokens and the
pair's own spans, gold label; who added it and when for a pair added on Review), so that an import
(db.label_studio_import) puts every pair back where it came from. Each annotation's head and tail regions are the
spans in effect after its decision (a span fixed on Review moves them; the regions keep their ids h<pair>, t<pair>,
which is how the import tells a fixed span of the task's pair from a new pair drawn in Label Studio). Each annotator's
latest decision still in effect becomes one annotation (`completed_by`, `created_at`; a skip is `was_cancelled`, a
rejection the "reject pair" choice); the active model's output becomes a prediction with its `model_version` and
`score`. The result shapes are db.label_studio_format's.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.export_rows import ExportFilter, ExportReport, atomic_write, curated_rows, source_paths
from db.label_studio_format import (
    EVIDENCE,
    EVIDENCE_BOX_CONTROL,
    EVIDENCE_CONTROL,
    HEAD,
    IMAGE_OBJECT,
    NOTE_CONTROL,
    REJECT_CHOICE,
    REJECT_CONTROL,
    SPAN_CONTROL,
    TAIL,
    TEXT_OBJECT,
    iso_time,
    word_offsets,
    word_runs,
)
from db.models import Annotation, EntityPair, Post, Prediction
from db.provenance import DEFAULT_PREDICTION_METHOD, active_model_version
from db.rationales import Rationale, decision_rationales, source_rationales

DEFAULT_IMAGE_PREFIX = "/data/local-files/?d="  # Label Studio's local-files storage URL


def span_region(
    region_id: str, role: str, tokens: list[str], start: int, end: int, control: str = SPAN_CONTROL
) -> dict[str, Any]:
    offsets = word_offsets(tokens)
    c0, c1 = offsets[start][0], offsets[end - 1][1]
    return {
        "id": region_id,
        "from_name": control,
        "to_name": TEXT_OBJECT,
        "type": "labels",
        "value": {"start": c0, "end": c1, "text": " ".join(tokens)[c0:c1], "labels": [role]},
    }


def pair_result(row: dict[str, Any], relation: str | None) -> list[dict[str, Any]]:
    head_id, tail_id = f"h{row['pair_id']}", f"t{row['pair_id']}"
    return [
        span_region(head_id, HEAD, row["tokens"], row["head_start"], row["head_end"]),
        span_region(tail_id, TAIL, row["tokens"], row["tail_start"], row["tail_end"]),
        {
            "from_id": head_id,
            "to_id": tail_id,
            "type": "relation",
            "direction": "right",
            "labels": [relation] if relation is not None else [],
        },
    ]


def label_studio_pair_result(meta: dict[str, Any], relation: str | None) -> list[dict[str, Any]]:
    """The head span, tail span and relation of a task's pair (`meta`: the task's data.mrelens) labelled
    `relation`, as an annotation or prediction result (e.g. a label-error run's suggestion)."""
    row = {
        "pair_id": meta["pair_id"],
        "tokens": meta["tokens"],
        "head_start": meta["head"][0],
        "head_end": meta["head"][1],
        "tail_start": meta["tail"][0],
        "tail_end": meta["tail"][1],
    }
    return pair_result(row, relation)


def decisions_in_effect(session: Session, pair_ids: list[int]) -> dict[int, list[Annotation]]:
    """pair id -> each annotator's latest decision that no undo took back, in revision order. Undo rows are left
    out, except one that is the pair's current state: it stands for its author's last word."""
    rows: list[Annotation] = []
    for start in range(0, len(pair_ids), 5000):
        rows.extend(
            session.scalars(
                select(Annotation)
                .where(Annotation.pair_id.in_(pair_ids[start : start + 5000]))
                .order_by(Annotation.pair_id, Annotation.revision)
            )
        )
    undone = {annotation.undoes_id for annotation in rows if annotation.undoes_id is not None}
    latest: dict[int, dict[str, Annotation]] = defaultdict(dict)
    last: dict[int, Annotation] = {}
    for annotation in rows:
        last[annotation.pair_id] = annotation
        if annotation.undoes_id is None and annotation.id not in undone and annotation.status != "unreviewed":
            latest[annotation.pair_id][annotation.annotator] = annotation
    for pair_id, annotation in last.items():
        # an undo that is the current state is its author's last word (the restored label, with its time)
        if annotation.undoes_id is not None and annotation.status != "unreviewed":
            latest[pair_id][annotation.annotator] = annotation
    return {
        pair_id: sorted(by_annotator.values(), key=lambda annotation: annotation.revision)
        for pair_id, by_annotator in latest.items()
    }


def rationale_result(row: dict[str, Any], rationale: Rationale, tag: str) -> list[dict[str, Any]]:
    """A rationale as Label Studio regions: one "evidence" span per run of consecutive evidence words, and the box
    as a "rectanglelabels" region in percent of the image (x, y: top left; width, height)."""
    result = [
        span_region(f"e{tag}_{start}", EVIDENCE, row["tokens"], start, end, EVIDENCE_CONTROL)
        for start, end in word_runs(rationale.tokens)
    ]
    if rationale.box is not None:
        (x0, y0, x1, y1), (width, height) = rationale.box, rationale.image_size
        result.append(
            {
                "id": f"b{tag}",
                "from_name": EVIDENCE_BOX_CONTROL,
                "to_name": IMAGE_OBJECT,
                "type": "rectanglelabels",
                "original_width": width,
                "original_height": height,
                "image_rotation": 0,
                "value": {
                    "x": 100 * x0 / width,
                    "y": 100 * y0 / height,
                    "width": 100 * (x1 - x0) / width,
                    "height": 100 * (y1 - y0) / height,
                    "rotation": 0,
                    "rectanglelabels": [EVIDENCE],
                },
            }
        )
    return result


def decision_row(row: dict[str, Any], own: dict[str, Any], decision: Annotation) -> dict[str, Any]:
    """`row` with the spans in effect after `decision` (a span it or an earlier decision fixed, else the pair's own
    spans `own`): each annotation shows the spans it was made on."""
    spans = dict(own)
    if decision.head_start is not None:
        spans |= {"head_start": decision.head_start, "head_end": decision.head_end}
    if decision.tail_start is not None:
        spans |= {"tail_start": decision.tail_start, "tail_end": decision.tail_end}
    return row | spans


def _annotation(
    row: dict[str, Any], decision: Annotation, rationale: Rationale | None = None
) -> dict[str, Any]:
    result = pair_result(row, decision.label if decision.status != "rejected" else None)
    if rationale is not None:
        result.extend(rationale_result(row, rationale, str(decision.id)))
    if decision.status == "rejected":
        result.append(
            {
                "from_name": REJECT_CONTROL,
                "to_name": TEXT_OBJECT,
                "type": "choices",
                "value": {"choices": [REJECT_CHOICE]},
            }
        )
    if decision.note:
        result.append(
            {
                "from_name": NOTE_CONTROL,
                "to_name": TEXT_OBJECT,
                "type": "textarea",
                "value": {"text": [decision.note]},
            }
        )
    when = iso_time(decision.created_at)
    return {
        "result": result,
        "completed_by": {"email": decision.annotator},
        "was_cancelled": decision.status == "skipped",
        "ground_truth": False,
        "created_at": when,
        "updated_at": when,
        # a correction to the label the source already had reads as "accepted" from the labels alone; the box in
        # pixels, exactly (the percent box is what Label Studio edits: the import uses this one while they agree)
        "mrelens": {"status": decision.status}
        | ({"evidence_box": list(rationale.box)} if rationale is not None and rationale.box else {}),
    }


def label_studio_tasks(
    session: Session, export_filter: ExportFilter | None = None, image_prefix: str = DEFAULT_IMAGE_PREFIX
) -> list[dict[str, Any]]:
    """Label Studio tasks for the curated pairs `export_filter` selects (rejected pairs included: their rejection is an
    annotation). `data.image` is `image_prefix` + the post's img_id."""
    base = export_filter or ExportFilter()
    rows = curated_rows(session, ExportFilter(**{**base.__dict__, "include_rejected": True}))
    pair_ids = [row["pair_id"] for row in rows]
    decisions = decisions_in_effect(session, pair_ids)
    rationales = decision_rationales(session, [d.id for ds in decisions.values() for d in ds])
    evidence = source_rationales(session, pair_ids)  # the dataset's own (synthetic), in data.mrelens
    stored: dict[int, tuple[str, str | None]] = {}  # pair id -> (source key, image path)
    # pair id -> the pair's own spans (the rows hold the spans in effect) and who added it, when
    own: dict[int, dict[str, Any]] = {}
    for start in range(0, len(pair_ids), 5000):
        for pair, image_path in session.execute(
            select(EntityPair, Post.image_path)
            .join(Post, Post.id == EntityPair.post_id)
            .where(EntityPair.id.in_(pair_ids[start : start + 5000]))
        ):
            stored[pair.id] = (pair.source_key, image_path)
            own[pair.id] = {
                "head_start": pair.head_start,
                "head_end": pair.head_end,
                "head_name": pair.head_name,
                "tail_start": pair.tail_start,
                "tail_end": pair.tail_end,
                "tail_name": pair.tail_name,
                "added": (pair.added_by, pair.added_at),
            }
    version = active_model_version(session)
    predictions: dict[int, Prediction] = {}
    if version is not None and pair_ids:
        for start in range(0, len(pair_ids), 5000):
            for pred in session.scalars(
                select(Prediction).where(
                    Prediction.model_version_id == version.id,
                    Prediction.method == DEFAULT_PREDICTION_METHOD,
                    Prediction.pair_id.in_(pair_ids[start : start + 5000]),
                )
            ):
                predictions[pred.pair_id] = pred
    tasks = []
    for row in rows:
        spans = own[row["pair_id"]]
        added_by, added_at = spans.pop("added")
        original = row | spans  # the pair as stored: data.mrelens and the model's prediction are about it
        meta = {
            "pair_id": row["pair_id"],
            "dataset": row["dataset"],
            "split": row["split"],
            "source_key": stored[row["pair_id"]][0],
            "source_line": row["source_line"],
            "tokens": row["tokens"],
            "head": [spans["head_start"], spans["head_end"]],
            "tail": [spans["tail_start"], spans["tail_end"]],
            "head_name": spans["head_name"],
            "tail_name": spans["tail_name"],
            "img_id": row["img_id"],
            "image_path": stored[row["pair_id"]][1],
            "gold_label": row["gold_label"],
            "raw_line": row["_raw_line"],
        }
        if added_by is not None:  # a pair a reviewer added on Review (db.annotations.add_pair)
            meta |= {"added_by": added_by, "added_at": iso_time(added_at)}
        if row["pair_id"] in evidence:
            meta["evidence"] = evidence[row["pair_id"]].to_json()
        task: dict[str, Any] = {
            "data": {
                "text": row["text"],
                "image": f"{image_prefix}{row['img_id']}" if row["img_id"] else None,
                "mrelens": meta,
            },
            "annotations": [
                _annotation(decision_row(row, spans, d), d, rationales.get(d.id))
                for d in decisions.get(row["pair_id"], [])
            ],
            "predictions": [],
        }
        pred = predictions.get(row["pair_id"])
        if pred is not None:
            task["predictions"].append(
                {
                    "model_version": version.version_id,
                    "score": float(pred.confidence),
                    "result": pair_result(original, pred.predicted_label),
                }
            )
        tasks.append(task)
    return tasks


def export_label_studio(
    session: Session,
    out: str | Path,
    export_filter: ExportFilter | None = None,
    image_prefix: str = DEFAULT_IMAGE_PREFIX,
) -> ExportReport:
    """Write the tasks as one JSON array (Label Studio's import format), atomically, never into a folder or onto a
    file a dataset was imported from."""
    out = Path(out)
    tasks = label_studio_tasks(session, export_filter, image_prefix)
    text = json.dumps(tasks, ensure_ascii=False, indent=1)
    atomic_write(out, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"), source_paths(session))
    return ExportReport(len(tasks), [out])
