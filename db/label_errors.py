"""Likely label errors: the pairs a cross-fit run scores, its out-of-sample predictions with cleanlab's scores,
the suspects list, and how far the audit of them has come.

A run (CrossfitRun) is stored whole, in one transaction, once every fold has finished: the Queue, Review and the
exports read only complete runs, the latest one per dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.annotations import current_states
from db.errors import LabelStoreError
from db.models import Annotation, CrossfitRun, Dataset, EntityPair, OutOfSamplePrediction, Post

AUDIT_ORIGIN = "audit"  # Annotation.origin of a decision made in the label-error audit
DEFAULT_SUSPECTS = 200  # suspects exported and counted by default


@dataclass(frozen=True)
class LabelledPair:
    pair_id: int
    split: str
    label: str  # the label in effect: the curated one if reviewed, else the gold label


def labelled_pairs(session: Session, dataset: str) -> list[LabelledPair]:
    """Every pair of `dataset` that has a label in effect (rejected pairs and pairs without a label are left
    out), in split and source order; the label is CurrentState.curated_label, the one the exports write."""
    dataset_id = require_dataset_id(session, dataset)
    rows = session.execute(
        select(EntityPair.id, EntityPair.split, EntityPair.gold_label)
        .where(EntityPair.dataset_id == dataset_id)
        .order_by(EntityPair.split, EntityPair.source_line, EntityPair.id)
    ).all()
    states = current_states(session, [row.id for row in rows])
    out = []
    for pair_id, split, gold in rows:
        state = states.get(pair_id)
        label = state.curated_label(gold) if state is not None else gold
        if label is not None:
            out.append(LabelledPair(pair_id, split, label))
    return out


def require_dataset_id(session: Session, dataset: str) -> int:
    dataset_id = session.scalar(select(Dataset.id).where(Dataset.name == dataset))
    if dataset_id is None:
        raise LabelStoreError(f"no dataset named {dataset!r} in the label store")
    return dataset_id


def dataset_labels(session: Session, dataset: str) -> list[str]:
    """The dataset's label names in label-map order (the columns of its models' probabilities)."""
    label_map = session.scalar(select(Dataset.label_map).where(Dataset.name == dataset))
    if not label_map:
        raise LabelStoreError(f"dataset {dataset!r} has no label map; label errors need one")
    return [name for name, _ in sorted(label_map.items(), key=lambda item: item[1])]


def save_crossfit_run(
    session: Session,
    dataset: str,
    *,
    folds: int,
    method: str,
    settings: dict[str, Any],
    rows: Sequence[dict[str, Any]],
    job_id: int | None = None,
    created_by: str | None = None,
) -> CrossfitRun:
    """Store a complete run: `rows` are per pair (pair_id, source, fold, model_version, probabilities, given_label,
    given_probability, suggested_label, suggested_probability, quality, loss, flagged, scores); the rank is
    given here, lowest quality first (ties by pair id)."""
    dataset_id = require_dataset_id(session, dataset)
    if not rows:
        raise LabelStoreError(f"dataset {dataset!r}: no labelled pair to score")
    run = CrossfitRun(
        dataset_id=dataset_id,
        job_id=job_id,
        folds=folds,
        method=method,
        settings=settings,
        pairs=len(rows),
        flagged=sum(bool(row["flagged"]) for row in rows),
        created_by=created_by,
    )
    session.add(run)
    session.flush()
    ordered = sorted(rows, key=lambda row: (row["quality"], row["pair_id"]))
    session.add_all(
        OutOfSamplePrediction(run_id=run.id, rank=rank, **row) for rank, row in enumerate(ordered, start=1)
    )
    session.flush()
    return run


def latest_run_ids_subquery():
    """(dataset_id, run id) of every dataset's latest complete run."""
    return (
        select(CrossfitRun.dataset_id, func.max(CrossfitRun.id).label("run_id"))
        .group_by(CrossfitRun.dataset_id)
        .subquery("latest_crossfit_run")
    )


def latest_run(session: Session, dataset: str) -> CrossfitRun | None:
    dataset_id = require_dataset_id(session, dataset)
    return session.scalars(
        select(CrossfitRun)
        .where(CrossfitRun.dataset_id == dataset_id)
        .order_by(CrossfitRun.id.desc())
        .limit(1)
    ).first()


def out_of_sample_prediction(session: Session, pair_id: int) -> OutOfSamplePrediction | None:
    """The pair's row in the latest run of its dataset, None when no run has scored it."""
    latest = latest_run_ids_subquery()
    return session.scalars(
        select(OutOfSamplePrediction)
        .join(latest, latest.c.run_id == OutOfSamplePrediction.run_id)
        .where(OutOfSamplePrediction.pair_id == pair_id)
    ).first()


@dataclass(frozen=True)
class Suspect:
    rank: int
    pair_id: int
    dataset: str
    split: str
    source_line: int | None
    text: str
    head: str
    tail: str
    gold_label: str | None
    given_label: str  # the label the run scored
    suggested_label: str
    suggested_probability: float
    given_probability: float
    quality: float
    flagged: bool
    source: str
    model_version: str


def suspects(session: Session, dataset: str, top: int = DEFAULT_SUSPECTS) -> list[Suspect]:
    """The `top` most likely label errors of the dataset's latest run, most likely first."""
    run = latest_run(session, dataset)
    if run is None:
        raise LabelStoreError(
            f"dataset {dataset!r} has no label-error run yet: run Find label errors (a crossfit job) first"
        )
    rows = session.execute(
        select(OutOfSamplePrediction, EntityPair, Post.text)
        .join(EntityPair, EntityPair.id == OutOfSamplePrediction.pair_id)
        .join(Post, Post.id == EntityPair.post_id)
        .where(OutOfSamplePrediction.run_id == run.id, OutOfSamplePrediction.rank <= top)
        .order_by(OutOfSamplePrediction.rank)
    ).all()
    return [
        Suspect(
            rank=oos.rank,
            pair_id=pair.id,
            dataset=dataset,
            split=pair.split,
            source_line=pair.source_line,
            text=text,
            head=pair.head_name,
            tail=pair.tail_name,
            gold_label=pair.gold_label,
            given_label=oos.given_label,
            suggested_label=oos.suggested_label,
            suggested_probability=oos.suggested_probability,
            given_probability=oos.given_probability,
            quality=oos.quality,
            flagged=oos.flagged,
            source=oos.source,
            model_version=oos.model_version,
        )
        for oos, pair, text in rows
    ]


@dataclass(frozen=True)
class AuditProgress:
    run_id: int
    suspects: int  # the top-N pairs of the run
    reviewed: int  # accepted, corrected or rejected since (skipped is not a review)
    changed: int  # of those, a label in effect that differs from the gold label, or rejected
    in_audit: int  # decisions on them made in the audit (origin "audit")


def audit_progress(session: Session, dataset: str, top: int = DEFAULT_SUSPECTS) -> AuditProgress | None:
    """How many of the latest run's top suspects were reviewed and how many gold labels that changed."""
    run = latest_run(session, dataset)
    if run is None:
        return None
    rows = session.execute(
        select(OutOfSamplePrediction.pair_id, EntityPair.gold_label)
        .join(EntityPair, EntityPair.id == OutOfSamplePrediction.pair_id)
        .where(OutOfSamplePrediction.run_id == run.id, OutOfSamplePrediction.rank <= top)
    ).all()
    gold = dict(rows)
    states = current_states(session, list(gold))
    reviewed = changed = 0
    for pair_id, state in states.items():
        if state.status not in ("accepted", "corrected", "rejected"):
            continue
        reviewed += 1
        changed += state.status == "rejected" or state.curated_label(gold[pair_id]) != gold[pair_id]
    in_audit = (
        session.scalar(
            select(func.count(func.distinct(Annotation.pair_id))).where(
                Annotation.pair_id.in_(list(gold)), Annotation.origin == AUDIT_ORIGIN
            )
        )
        or 0
    )
    return AuditProgress(run.id, len(gold), reviewed, changed, in_audit)


SUSPECT_FORMATS = ("csv", "labelstudio")


def export_suspects(session: Session, dataset: str, out, fmt: str = "csv", top: int = DEFAULT_SUSPECTS):
    """The `top` suspects of the dataset's latest run for expert review, with both labels, the score and the post:
    a CSV table, or Label Studio tasks (the pair's decisions as annotations, the active model's prediction and the
    out-of-sample suggestion as predictions, the run's figures under data.label_error). Atomic, never onto a
    dataset's source files."""
    from pathlib import Path

    from db.export_rows import ExportFilter, ExportReport, atomic_write, source_paths

    if fmt not in SUSPECT_FORMATS:
        raise LabelStoreError(f"format {fmt!r}: expected one of {', '.join(SUSPECT_FORMATS)}")
    out = Path(out)
    rows = suspects(session, dataset, top)
    if fmt == "csv":
        import pandas as pd

        from db.redact import csv_cell

        # post text and entity names come from social media: a cell starting like a formula is neutralised (OWASP)
        frame = pd.DataFrame([suspect.__dict__ for suspect in rows]).map(csv_cell)
        atomic_write(out, lambda tmp: frame.to_csv(tmp, index=False), source_paths(session))
        return ExportReport(len(rows), [out])
    import json

    from db.label_studio import label_studio_pair_result, label_studio_tasks

    by_pair = {suspect.pair_id: suspect for suspect in rows}
    tasks = label_studio_tasks(session, ExportFilter(dataset=dataset, pair_ids=list(by_pair)))
    for task in tasks:
        suspect = by_pair[task["data"]["mrelens"]["pair_id"]]
        task["data"]["label_error"] = {
            "rank": suspect.rank,
            "given_label": suspect.given_label,
            "suggested_label": suspect.suggested_label,
            "suggested_probability": suspect.suggested_probability,
            "given_probability": suspect.given_probability,
            "label_quality": suspect.quality,
            "flagged": suspect.flagged,
        }
        task["predictions"].append(
            {
                "model_version": f"out-of-sample {suspect.source} {suspect.model_version}",
                "score": suspect.suggested_probability,
                "result": label_studio_pair_result(task["data"]["mrelens"], suspect.suggested_label),
            }
        )
    tasks.sort(key=lambda task: task["data"]["label_error"]["rank"])
    text = json.dumps(tasks, ensure_ascii=False, indent=1)
    atomic_write(out, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"), source_paths(session))
    return ExportReport(len(tasks), [out])
