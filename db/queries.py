"""Every write to the label store, and the reads the app needs.

Functions take a Session and leave committing to the caller (`with sessionmaker.begin() as session:`), so a caller
can group several writes into one transaction. A lost optimistic-lock race in record_annotation or undo_last raises
ConcurrentEditError with the caller's transaction still usable (the losing insert inserts nothing, see _append).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased, selectinload

from db.models import (
    ANNOTATION_STATUSES,
    EVALUATION_SETTINGS,
    Annotation,
    Dataset,
    EntityPair,
    EvaluationRun,
    Explanation,
    GroundedCrop,
    ModelVersion,
    Post,
    Prediction,
)

if TYPE_CHECKING:  # db.roles imports this module (LabelStoreError)
    from db.roles import Actor

REVIEW_STATUSES = ("accepted", "corrected", "rejected", "skipped")  # what a reviewer can choose
QUEUE_SORTS = ("uncertainty", "entropy", "image_reliance", "disagreement", "source_order")
DEFAULT_PREDICTION_METHOD = "forward"


class LabelStoreError(ValueError):
    """A request the store refuses (unknown pair, label or status); the message says what to change."""


class ConcurrentEditError(LabelStoreError):
    """The pair was saved by someone else after the caller loaded it; reload and decide again."""

    def __init__(self, pair_id: int, annotator: str, revision: int, saved_at: datetime | None):
        self.pair_id, self.annotator, self.revision, self.saved_at = pair_id, annotator, revision, saved_at
        when = f" at {saved_at:%Y-%m-%d %H:%M:%S} UTC" if saved_at else ""
        super().__init__(
            f"pair {pair_id} was changed by {annotator} meanwhile (revision {revision}{when}); "
            "reload it and save again"
        )


# ----------------------------------------------------------------------------------------------------------------
# Datasets


def get_or_create_dataset(
    session: Session, name: str, source_path: str | None = None, label_map: dict[str, int] | None = None
) -> Dataset:
    dataset = session.scalar(select(Dataset).where(Dataset.name == name))
    if dataset is None:
        dataset = Dataset(name=name, source_path=source_path, label_map=label_map)
        session.add(dataset)
        session.flush()
    elif label_map is not None and dataset.label_map not in (None, label_map):
        raise LabelStoreError(
            f"dataset {name!r} already exists with a different label map; import under another --dataset name"
        )
    elif label_map is not None and dataset.label_map is None:
        dataset.label_map = label_map
    return dataset


def list_datasets(session: Session) -> list[Dataset]:
    return list(session.scalars(select(Dataset).order_by(Dataset.name)))


# ----------------------------------------------------------------------------------------------------------------
# Annotations: append-only history, current state = the highest revision


@dataclass(frozen=True)
class CurrentState:
    status: str  # one of ANNOTATION_STATUSES; "unreviewed" when there is no annotation
    label: str | None  # the reviewer's label (None: no decision on the label, the gold label stands)
    revision: int  # 0 when there is no annotation
    annotator: str | None

    def curated_label(self, gold_label: str | None) -> str | None:
        """The label to train on / export: None means the pair is dropped (rejected, or no label at all)."""
        if self.status == "rejected":
            return None
        return self.label if self.label is not None else gold_label


UNREVIEWED = CurrentState(status="unreviewed", label=None, revision=0, annotator=None)


def current_state(history: Sequence[Annotation]) -> CurrentState:
    """The state a history leads to: its last revision (rows are never edited, so this is the whole derivation)."""
    if not history:
        return UNREVIEWED
    last = max(history, key=lambda a: a.revision)
    return CurrentState(
        status=last.status, label=last.label, revision=last.revision, annotator=last.annotator
    )


def pair_history(session: Session, pair_id: int) -> list[Annotation]:
    return list(
        session.scalars(select(Annotation).where(Annotation.pair_id == pair_id).order_by(Annotation.revision))
    )


def _require_pair(session: Session, pair_id: int) -> EntityPair:
    pair = session.get(EntityPair, pair_id)
    if pair is None:
        raise LabelStoreError(f"no entity pair with id {pair_id}")
    return pair


def _check_label(session: Session, pair: EntityPair, label: str) -> None:
    label_map = session.scalar(select(Dataset.label_map).where(Dataset.id == pair.dataset_id))
    if label_map and label not in label_map:
        raise LabelStoreError(
            f"unknown label {label!r}; expected one of the dataset's {len(label_map)} labels"
        )


def _append(session: Session, pair: EntityPair, expected_revision: int, **values: Any) -> Annotation:
    latest = session.scalars(
        select(Annotation).where(Annotation.pair_id == pair.id).order_by(Annotation.revision.desc()).limit(1)
    ).first()
    current_revision = latest.revision if latest else 0
    if current_revision != expected_revision:
        if latest is None:
            raise LabelStoreError(f"pair {pair.id} has no revision {expected_revision}; reload it")
        raise ConcurrentEditError(pair.id, latest.annotator, latest.revision, latest.created_at)
    # INSERT ... ON CONFLICT DO NOTHING on the (pair, revision) key: a save that loses the race between the check
    # above and this insert inserts nothing and raises no database error, so the caller's transaction stays usable
    # (no rollback inside its `sessions.begin()`) and no savepoint is needed (pysqlite would commit at its release).
    dialect_insert = {"postgresql": postgresql_insert, "sqlite": sqlite_insert}[
        session.get_bind().dialect.name
    ]
    new_id = session.scalar(
        dialect_insert(Annotation)
        .values(pair_id=pair.id, revision=expected_revision + 1, **values)
        .on_conflict_do_nothing(index_elements=["pair_id", "revision"])
        .returning(Annotation.id)
    )
    if new_id is None:
        winner = session.scalars(
            select(Annotation)
            .where(Annotation.pair_id == pair.id, Annotation.revision > expected_revision)
            .order_by(Annotation.revision.desc())
            .limit(1)
        ).first()
        if winner is None:  # not visible to this transaction's snapshot: still a conflict, who is unknown
            raise ConcurrentEditError(pair.id, "another reviewer", expected_revision + 1, None)
        raise ConcurrentEditError(pair.id, winner.annotator, winner.revision, winner.created_at)
    return session.get_one(Annotation, new_id)


def record_annotation(
    session: Session,
    pair_id: int,
    *,
    status: str,
    annotator: str,
    expected_revision: int,
    label: str | None = None,
    note: str | None = None,
) -> Annotation:
    """Append a review decision made on top of `expected_revision` (the revision the reviewer saw).

    accepted: the label shown is right (label defaults to the gold label); corrected: `label` replaces it;
    rejected: the pair itself is wrong and leaves the curated data; skipped: no decision, the previous label stays.
    Raises ConcurrentEditError when someone saved the pair after `expected_revision`: never a silent overwrite.
    """
    if status not in REVIEW_STATUSES:
        raise LabelStoreError(f"unknown status {status!r}; expected one of {', '.join(REVIEW_STATUSES)}")
    if not annotator or not annotator.strip():
        raise LabelStoreError("an annotation needs the annotator's name")
    pair = _require_pair(session, pair_id)
    if status == "accepted" and label is None:
        label = pair.gold_label
    if status in ("accepted", "corrected"):
        if label is None:
            raise LabelStoreError(f"status {status!r} needs a label")
        _check_label(session, pair, label)
    elif status == "skipped":
        label = current_state(pair_history(session, pair_id)).label  # carry the previous decision forward
    else:
        label = None
    return _append(
        session, pair, expected_revision, label=label, status=status, annotator=annotator.strip(), note=note
    )


def undo_last(
    session: Session, pair_id: int, *, annotator: str, expected_revision: int, note: str | None = None
) -> Annotation:
    """Restore the state before the latest decision that is still in effect, by appending a new row.

    Repeated undos walk further back; an undo is itself never undone by undo (record a new decision instead).
    """
    pair = _require_pair(session, pair_id)
    history = pair_history(session, pair_id)
    undone = {a.undoes_id for a in history if a.undoes_id is not None}
    in_effect = [a for a in history if a.undoes_id is None and a.id not in undone]
    if not in_effect:
        raise LabelStoreError(f"pair {pair_id} has nothing to undo")
    target = in_effect[-1]
    restored = current_state([a for a in history if a.revision < target.revision])
    return _append(
        session,
        pair,
        expected_revision,
        label=restored.label,
        status=restored.status,
        annotator=annotator.strip(),
        note=note or f"undo revision {target.revision}",
        undoes_id=target.id,
    )


def latest_annotation_subquery():
    """(pair_id, revision) of every pair's current annotation."""
    return (
        select(Annotation.pair_id, func.max(Annotation.revision).label("revision"))
        .group_by(Annotation.pair_id)
        .subquery("latest_revision")
    )


def current_annotation_alias():
    """The Annotation alias ("cur") that join_current_annotation fills with each pair's current annotation."""
    return aliased(Annotation, name="cur")


def join_current_annotation(stmt, cur, pair_id_column=EntityPair.id):
    """`stmt` outer-joined to each pair's current annotation (highest revision) as `cur`.

    The one place the "current annotation" join is written: the queue, progress, current states, exports and
    curation read the current state through it. `cur` columns are NULL for pairs never annotated (unreviewed).
    """
    latest = latest_annotation_subquery()
    return stmt.outerjoin(latest, latest.c.pair_id == pair_id_column).outerjoin(
        cur, and_(cur.pair_id == pair_id_column, cur.revision == latest.c.revision)
    )


def current_states(session: Session, pair_ids: Iterable[int] | None = None) -> dict[int, CurrentState]:
    """Current state of many pairs in one query (pairs without annotations are absent: they are UNREVIEWED)."""
    cur = current_annotation_alias()
    stmt = join_current_annotation(
        select(cur.pair_id, cur.status, cur.label, cur.revision, cur.annotator).select_from(EntityPair), cur
    ).where(cur.revision.is_not(None))
    if pair_ids is not None:
        stmt = stmt.where(EntityPair.id.in_(list(pair_ids)))
    return {
        row.pair_id: CurrentState(row.status, row.label, row.revision, row.annotator)
        for row in session.execute(stmt)
    }


# ----------------------------------------------------------------------------------------------------------------
# Review queue, progress, pair detail


@dataclass
class QueueFilter:
    dataset: str | None = None
    split: str | None = None
    predicted_label: str | None = None
    gold_label: str | None = None
    status: str | None = None  # an ANNOTATION_STATUSES value; "unreviewed" also matches pairs never annotated
    annotator: str | None = None  # the annotator of the current state
    text: str | None = None  # case-insensitive substring of the post text or entity names


@dataclass
class QueueItem:
    pair_id: int
    dataset: str
    split: str
    source_line: int | None
    text: str
    head_name: str
    tail_name: str
    gold_label: str | None
    has_image: bool
    status: str
    current_label: str | None
    annotator: str | None
    revision: int
    predicted_label: str | None
    confidence: float | None
    margin: float | None
    entropy: float | None
    image_reliance: float | None


def _apply_filters(stmt, flt: QueueFilter, cur, pred):
    if flt.dataset:
        stmt = stmt.where(Dataset.name == flt.dataset)
    if flt.split:
        stmt = stmt.where(EntityPair.split == flt.split)
    if flt.gold_label:
        stmt = stmt.where(EntityPair.gold_label == flt.gold_label)
    if flt.predicted_label:
        stmt = stmt.where(pred.predicted_label == flt.predicted_label)
    if flt.status:
        if flt.status not in ANNOTATION_STATUSES:
            raise LabelStoreError(
                f"unknown status {flt.status!r}; expected one of {', '.join(ANNOTATION_STATUSES)}"
            )
        if flt.status == "unreviewed":
            stmt = stmt.where(or_(cur.status.is_(None), cur.status == "unreviewed"))
        else:
            stmt = stmt.where(cur.status == flt.status)
    if flt.annotator:
        stmt = stmt.where(cur.annotator == flt.annotator)
    if flt.text:
        pattern = "%" + flt.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            or_(
                Post.text.ilike(pattern, escape="\\"),
                EntityPair.head_name.ilike(pattern, escape="\\"),
                EntityPair.tail_name.ilike(pattern, escape="\\"),
            )
        )
    return stmt


def active_model_version(session: Session) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.is_active))


def review_queue(
    session: Session,
    flt: QueueFilter | None = None,
    sort: str = "uncertainty",
    limit: int = 50,
    offset: int = 0,
    model_version_id: int | None = None,
    method: str = DEFAULT_PREDICTION_METHOD,
) -> list[QueueItem]:
    """Pairs to review, with their current state and the predictions of one model version (the active one).

    sort: uncertainty (smallest top-2 margin first), entropy (highest first), image_reliance (highest first),
    disagreement (prediction != gold first, most confident first), source_order (dataset, split, line).
    """
    flt = flt or QueueFilter()
    if sort not in QUEUE_SORTS:
        raise LabelStoreError(f"unknown sort {sort!r}; expected one of {', '.join(QUEUE_SORTS)}")
    if model_version_id is None:
        active = active_model_version(session)
        model_version_id = active.id if active else None
    cur = current_annotation_alias()
    pred = aliased(Prediction, name="pred")
    stmt = (
        select(
            EntityPair.id,
            Dataset.name.label("dataset"),
            EntityPair.split,
            EntityPair.source_line,
            Post.text,
            EntityPair.head_name,
            EntityPair.tail_name,
            EntityPair.gold_label,
            Post.has_image,
            cur.status,
            cur.label,
            cur.annotator,
            cur.revision,
            pred.predicted_label,
            pred.confidence,
            pred.margin,
            pred.entropy,
            pred.image_reliance,
        )
        .join(Post, Post.id == EntityPair.post_id)
        .join(Dataset, Dataset.id == EntityPair.dataset_id)
    )
    stmt = join_current_annotation(stmt, cur).outerjoin(
        pred,
        and_(
            pred.pair_id == EntityPair.id,
            pred.model_version_id == model_version_id,
            pred.method == method,
        ),
    )
    stmt = _apply_filters(stmt, flt, cur, pred)
    order = {
        "uncertainty": [pred.margin.asc().nulls_last()],
        "entropy": [pred.entropy.desc().nulls_last()],
        "image_reliance": [pred.image_reliance.desc().nulls_last()],
        "disagreement": [
            case(
                (pred.predicted_label.is_(None), 2),
                (pred.predicted_label != EntityPair.gold_label, 0),
                else_=1,
            ),
            pred.confidence.desc().nulls_last(),
        ],
        "source_order": [Dataset.name, EntityPair.split, EntityPair.source_line],
    }[sort]
    stmt = stmt.order_by(*order, EntityPair.id).limit(limit).offset(offset)
    return [
        QueueItem(
            pair_id=r[0],
            dataset=r.dataset,
            split=r.split,
            source_line=r.source_line,
            text=r.text,
            head_name=r.head_name,
            tail_name=r.tail_name,
            gold_label=r.gold_label,
            has_image=r.has_image,
            status=r.status or "unreviewed",
            current_label=r.label,
            annotator=r.annotator,
            revision=r.revision or 0,
            predicted_label=r.predicted_label,
            confidence=r.confidence,
            margin=r.margin,
            entropy=r.entropy,
            image_reliance=r.image_reliance,
        )
        for r in session.execute(stmt)
    ]


def progress(session: Session, dataset: str | None = None, split: str | None = None) -> dict[str, int]:
    """Pairs per current status (every status key present, "total" included)."""
    cur = current_annotation_alias()
    status = func.coalesce(cur.status, "unreviewed")
    stmt = join_current_annotation(
        select(status, func.count())
        .select_from(EntityPair)
        .join(Dataset, Dataset.id == EntityPair.dataset_id),
        cur,
    ).group_by(status)
    if dataset:
        stmt = stmt.where(Dataset.name == dataset)
    if split:
        stmt = stmt.where(EntityPair.split == split)
    counts = {s: 0 for s in ANNOTATION_STATUSES}
    counts.update({s: n for s, n in session.execute(stmt)})
    counts["total"] = sum(counts[s] for s in ANNOTATION_STATUSES)
    return counts


@dataclass
class PairDetail:
    pair: EntityPair
    post: Post
    dataset: Dataset
    history: list[Annotation]
    current: CurrentState
    predictions: list[Prediction]
    crops: list[GroundedCrop]
    explanations: list[Explanation]


def pair_detail(session: Session, pair_id: int) -> PairDetail:
    pair = _require_pair(session, pair_id)
    history = pair_history(session, pair_id)
    return PairDetail(
        pair=pair,
        post=pair.post,
        dataset=session.get(Dataset, pair.dataset_id),
        history=history,
        current=current_state(history),
        predictions=list(
            session.scalars(
                select(Prediction).where(Prediction.pair_id == pair_id).order_by(Prediction.created_at.desc())
            )
        ),
        crops=list(
            session.scalars(
                select(GroundedCrop).where(GroundedCrop.post_id == pair.post_id).order_by(GroundedCrop.id)
            )
        ),
        explanations=list(
            session.scalars(
                select(Explanation)
                .where(Explanation.pair_id == pair_id)
                .order_by(Explanation.created_at.desc())
            )
        ),
    )


# ----------------------------------------------------------------------------------------------------------------
# Model versions, predictions, crops, explanations, evaluation runs


def register_model_version(
    session: Session,
    version_id: str,
    path: str | Path,
    variant: str,
    metrics: dict[str, Any] | None = None,
    parent_version_id: str | None = None,
    created_by: str | None = None,
    settings: dict[str, Any] | None = None,
) -> ModelVersion:
    """Register a checkpoint; registering the same version_id and path again returns the existing row."""
    existing = session.scalar(select(ModelVersion).where(ModelVersion.version_id == version_id))
    if existing is not None:
        if existing.path != str(path):
            raise LabelStoreError(f"model version {version_id!r} is already registered for {existing.path}")
        return existing
    parent_id = None
    if parent_version_id is not None:
        parent = session.scalar(select(ModelVersion).where(ModelVersion.version_id == parent_version_id))
        if parent is None:
            raise LabelStoreError(f"parent model version {parent_version_id!r} is not registered")
        parent_id = parent.id
    version = ModelVersion(
        version_id=version_id,
        path=str(path),
        variant=variant,
        metrics=metrics,
        settings=settings,
        parent_id=parent_id,
        created_by=created_by,
    )
    session.add(version)
    session.flush()
    return version


def register_checkpoint(session: Session, model_dir: str | Path, **kwargs: Any) -> ModelVersion:
    """Register a checkpoint folder from its config.json (version_id, variant); metrics/parent as keywords."""
    from model.checkpoint import CheckpointError, read_checkpoint_config

    model_dir = Path(model_dir)
    config_path = model_dir / "config.json"
    try:
        config = read_checkpoint_config(model_dir)
    except CheckpointError as err:
        raise LabelStoreError(str(err)) from err
    version_id = config.get("version_id")
    if not isinstance(version_id, str) or not version_id:
        raise LabelStoreError(f"{config_path}: field 'version_id' must be a non-empty string")
    variant = config.get("variant") or "unknown"
    return register_model_version(session, version_id, model_dir.resolve(), str(variant), **kwargs)


def find_model_version(session: Session, version_id: str) -> ModelVersion:
    version = session.scalar(select(ModelVersion).where(ModelVersion.version_id == version_id))
    if version is None:
        raise LabelStoreError(f"model version {version_id!r} is not registered")
    return version


def set_active(session: Session, version_id: str, actor: Actor | None = None) -> ModelVersion:
    """Make one model version the one whose predictions the queue shows (admins only, see db.roles)."""
    # imported here: db.roles imports this module for LabelStoreError
    from db.roles import require_admin

    require_admin(actor, f"activate model version {version_id}")
    version = find_model_version(session, version_id)
    session.execute(update(ModelVersion).where(ModelVersion.id != version.id).values(is_active=False))
    version.is_active = True
    session.flush()
    return version


def uncertainty(probabilities: dict[str, float]) -> tuple[str, float, float, float]:
    """(predicted label, confidence, top-2 margin, entropy in nats) of one probability distribution."""
    if not probabilities:
        raise LabelStoreError("empty probability distribution")
    ranked = sorted(probabilities.items(), key=lambda kv: kv[1], reverse=True)
    top_label, top = ranked[0]
    second = ranked[1][1] if len(ranked) > 1 else 0.0
    entropy = -sum(p * math.log(p) for p in probabilities.values() if p > 0)
    return top_label, float(top), float(top - second), float(entropy)


def save_predictions(
    session: Session,
    model_version_id: int,
    rows: Iterable[dict[str, Any]],
    method: str = DEFAULT_PREDICTION_METHOD,
    settings: dict[str, Any] | None = None,
) -> int:
    """Store one model version's predictions: rows of {pair_id, probabilities, image_reliance (optional)}.

    A pair's earlier prediction by the same version and method is replaced (the same model gives the same output).
    """
    values = []
    for row in rows:
        label, confidence, margin, entropy = uncertainty(row["probabilities"])
        values.append(
            {
                "pair_id": row["pair_id"],
                "model_version_id": model_version_id,
                "method": method,
                "settings": settings,
                "probabilities": row["probabilities"],
                "predicted_label": label,
                "confidence": min(max(confidence, 0.0), 1.0),
                "margin": margin,
                "entropy": entropy,
                "image_reliance": row.get("image_reliance"),
            }
        )
    if not values:
        return 0
    pair_ids = [v["pair_id"] for v in values]
    for start in range(0, len(pair_ids), 5000):  # stay under the engines' bound-parameter limits
        session.execute(
            delete(Prediction).where(
                Prediction.model_version_id == model_version_id,
                Prediction.method == method,
                Prediction.pair_id.in_(pair_ids[start : start + 5000]),
            )
        )
    session.execute(insert(Prediction), values)
    return len(values)


def save_crops(
    session: Session,
    post_id: int,
    crops: Iterable[dict[str, Any]],
    source: str,
    settings: dict[str, Any] | None = None,
) -> list[GroundedCrop]:
    """Store grounded crops of a post: dicts with box (x0, y0, x1, y1), label, score and optionally path.

    Crops from the same source replace that source's earlier crops of the post.
    """
    if session.get(Post, post_id) is None:
        raise LabelStoreError(f"no post with id {post_id}")
    session.execute(
        delete(GroundedCrop).where(GroundedCrop.post_id == post_id, GroundedCrop.source == source)
    )
    stored = []
    for crop in crops:
        box = crop.get("box")
        x0, y0, x1, y1 = (float(v) for v in box) if box is not None else (None,) * 4
        stored.append(
            GroundedCrop(
                post_id=post_id,
                box_x0=x0,
                box_y0=y0,
                box_x1=x1,
                box_y1=y1,
                label=crop.get("label"),
                score=crop.get("score"),
                source=source,
                path=str(crop["path"]) if crop.get("path") else None,
                settings=settings,
            )
        )
    session.add_all(stored)
    session.flush()
    return stored


def save_explanation(
    session: Session,
    pair_id: int,
    method: str,
    summary: dict[str, Any],
    settings: dict[str, Any] | None = None,
    model_version_id: int | None = None,
    created_by: str | None = None,
) -> Explanation:
    _require_pair(session, pair_id)
    explanation = Explanation(
        pair_id=pair_id,
        method=method,
        summary=summary,
        settings=settings,
        model_version_id=model_version_id,
        created_by=created_by,
    )
    session.add(explanation)
    session.flush()
    return explanation


def save_evaluation_run(
    session: Session,
    variant: str,
    setting: str,
    split: str,
    metrics: dict[str, Any],
    model_version_id: int | None = None,
    settings: dict[str, Any] | None = None,
) -> EvaluationRun:
    if setting not in EVALUATION_SETTINGS:
        raise LabelStoreError(
            f"unknown setting {setting!r}; expected one of {', '.join(EVALUATION_SETTINGS)}"
        )
    run = EvaluationRun(
        variant=variant,
        setting=setting,
        split=split,
        metrics=metrics,
        model_version_id=model_version_id,
        settings=settings,
    )
    session.add(run)
    session.flush()
    return run


def evaluation_runs(session: Session, split: str | None = None) -> list[EvaluationRun]:
    stmt = select(EvaluationRun).order_by(
        EvaluationRun.variant, EvaluationRun.setting, EvaluationRun.created_at
    )
    if split:
        stmt = stmt.where(EvaluationRun.split == split)
    return list(session.scalars(stmt))


def evaluation_runs_with_versions(
    session: Session, split: str | None = None
) -> list[tuple[EvaluationRun, ModelVersion | None]]:
    """Evaluation runs (ordered as evaluation_runs) with the model version each evaluated, in one query."""
    stmt = (
        select(EvaluationRun, ModelVersion)
        .outerjoin(ModelVersion, ModelVersion.id == EvaluationRun.model_version_id)
        .order_by(EvaluationRun.variant, EvaluationRun.setting, EvaluationRun.created_at)
    )
    if split:
        stmt = stmt.where(EvaluationRun.split == split)
    return [(run, version) for run, version in session.execute(stmt)]


def model_versions_newest_first(session: Session) -> list[ModelVersion]:
    """Every registered model version, newest first, with its parent loaded (no lazy load after the session)."""
    return list(
        session.scalars(
            select(ModelVersion)
            .options(selectinload(ModelVersion.parent))
            .order_by(ModelVersion.created_at.desc())
        )
    )


def check_filter_names(
    session: Session,
    dataset: str | None = None,
    split: str | None = None,
    annotator: str | None = None,
    label: str | None = None,
) -> None:
    """Refuse a --dataset, --split, --annotator or --label the store does not have: a typo must not pass as an empty
    result (an export would replace a good file with an empty one)."""
    if dataset is not None and session.scalar(select(Dataset.id).where(Dataset.name == dataset)) is None:
        names = ", ".join(d.name for d in list_datasets(session)) or "none"
        raise LabelStoreError(f"--dataset {dataset!r}: no such dataset in the store (it has: {names})")
    if split is not None:
        stmt = select(EntityPair.split).distinct()
        if dataset is not None:
            stmt = stmt.join(Dataset, Dataset.id == EntityPair.dataset_id).where(Dataset.name == dataset)
        splits = sorted(session.scalars(stmt))
        if split not in splits:
            raise LabelStoreError(
                f"--split {split!r}: no such split (there are: {', '.join(splits) or 'none'})"
            )
    if (
        annotator is not None
        and session.scalar(select(Annotation.id).where(Annotation.annotator == annotator).limit(1)) is None
    ):
        raise LabelStoreError(
            f"--annotator {annotator!r}: nobody of that name has decided anything in the store"
        )
    if label is not None:
        known = any(label in (label_map or {}) for label_map in session.scalars(select(Dataset.label_map)))
        known = known or session.scalar(select(EntityPair.id).where(EntityPair.gold_label == label).limit(1))
        known = known or session.scalar(select(Annotation.id).where(Annotation.label == label).limit(1))
        if not known:
            raise LabelStoreError(f"--label {label!r}: no dataset in the store has this label")


def queue_filter_values(session: Session) -> dict[str, list[str]]:
    """Values the queue and export filters offer: splits, gold labels and annotators present in the store."""
    return {
        "split": sorted(session.scalars(select(EntityPair.split).distinct())),
        "gold_label": sorted(x for x in session.scalars(select(EntityPair.gold_label).distinct()) if x),
        "annotator": sorted(session.scalars(select(Annotation.annotator).distinct())),
    }


# ----------------------------------------------------------------------------------------------------------------
# Curated training data


@dataclass
class CurationReport:
    records: int = 0
    corrected: int = 0  # label changed from the source label
    dropped: int = 0  # rejected pairs
    not_in_store: int = 0  # records with no pair in the dataset (not imported)
    changes: Counter = field(default_factory=Counter)  # (source label, curated label) -> count

    def summary(self) -> str:
        return (
            f"{self.records} records: {self.corrected} relabelled, {self.dropped} dropped (rejected), "
            f"{self.not_in_store} not in the label store"
        )


def curated_training_records(
    session: Session, records: Sequence, dataset: str, split: str, report: CurationReport | None = None
) -> list:
    """Apply the store's curated labels to records read from `split` of the dataset's source files.

    Records are matched by their source line. Corrections (and accepted labels) override the source label,
    rejected pairs are dropped, unreviewed and skipped pairs keep their previous label. The input is not modified.
    """
    from dataclasses import replace

    report = report if report is not None else CurationReport()
    dataset_row = session.scalar(select(Dataset).where(Dataset.name == dataset))
    if dataset_row is None:
        raise LabelStoreError(f"no dataset named {dataset!r} in the label store; import it first")
    pairs = {
        line: (pair_id, raw_line)
        for line, pair_id, raw_line in session.execute(
            select(EntityPair.source_line, EntityPair.id, EntityPair.raw_line).where(
                EntityPair.dataset_id == dataset_row.id, EntityPair.split == split
            )
        )
    }
    states = current_states(session, None)
    curated = []
    for record in records:
        report.records += 1
        pair_id, stored_line = pairs.get(record.line, (None, None))
        if pair_id is None:
            report.not_in_store += 1
            curated.append(record)
            continue
        if record.raw_line and stored_line is not None and stored_line != record.raw_line:
            # a changed source file: labels reviewed for one record must not land on another
            raise LabelStoreError(
                f"{split} line {record.line} differs from the record stored in dataset "
                f"{dataset!r}; re-import the changed file under a new dataset name"
            )
        label = states.get(pair_id, UNREVIEWED).curated_label(record.relation)
        if label is None:
            report.dropped += 1
            continue
        if label != record.relation:
            report.corrected += 1
            report.changes[(record.relation, label)] += 1
            record = replace(record, relation=label)
        curated.append(record)
    return curated
