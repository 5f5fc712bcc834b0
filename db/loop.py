"""What the annotation loop of a dataset looks like in the store: decisions per day and reviewer, how often the
review changed a label or found the model wrong, how many reviewed labels each model version had when it was
registered, and the schedule that starts a retraining by itself every N new decisions.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from db.annotations import current_annotation_alias, join_current_annotation
from db.datasets import require_dataset
from db.errors import LabelStoreError
from db.models import Annotation, Dataset, EntityPair, Prediction, RetrainSchedule
from db.provenance import DEFAULT_PREDICTION_METHOD

# decisions that put a label on a pair (skipped is no decision; an undo row takes one back)
LABEL_DECISIONS = ("accepted", "corrected", "rejected")


@dataclass(frozen=True)
class DecisionCount:
    day: date
    annotator: str
    status: str
    count: int


def decision_counts(session: Session, dataset: str) -> list[DecisionCount]:
    """Every review row of `dataset` (undo rows excluded), counted per UTC day, annotator and status."""
    dataset_id = require_dataset(session, dataset).id
    rows = session.execute(
        select(Annotation.created_at, Annotation.annotator, Annotation.status)
        .join(EntityPair, EntityPair.id == Annotation.pair_id)
        .where(EntityPair.dataset_id == dataset_id, Annotation.undoes_id.is_(None))
    )
    # grouping by day in Python: date functions differ between SQLite and PostgreSQL
    counts = Counter((created.date(), annotator, status) for created, annotator, status in rows)
    return [DecisionCount(day, who, status, n) for (day, who, status), n in sorted(counts.items())]


@dataclass(frozen=True)
class ReviewOutcomes:
    """The current state of the reviewed pairs of a dataset, against the gold label and one model's predictions."""

    reviewed: int  # pairs whose current state is a label decision
    corrected: (
        int  # of those, pairs whose label in effect differs from the gold label (or that were rejected)
    )
    with_prediction: int  # reviewed pairs the model has a stored prediction for
    model_wrong: int  # of those, pairs whose label in effect differs from the model's predicted label

    @property
    def correction_share(self) -> float | None:
        return self.corrected / self.reviewed if self.reviewed else None

    @property
    def model_error_share(self) -> float | None:
        return self.model_wrong / self.with_prediction if self.with_prediction else None


def review_outcomes(
    session: Session, dataset: str, version_key: int | None, method: str = DEFAULT_PREDICTION_METHOD
) -> ReviewOutcomes:
    dataset_id = require_dataset(session, dataset).id
    current = current_annotation_alias()
    stmt = select(EntityPair.gold_label, current.status, current.label, Prediction.predicted_label).where(
        EntityPair.dataset_id == dataset_id
    )
    stmt = join_current_annotation(stmt, current).outerjoin(
        Prediction,
        and_(
            Prediction.pair_id == EntityPair.id,
            Prediction.model_version_id == version_key,
            Prediction.method == method,
        ),
    )
    reviewed = corrected = with_prediction = model_wrong = 0
    for gold, status, label, predicted in session.execute(stmt.where(current.status.in_(LABEL_DECISIONS))):
        reviewed += 1
        in_effect = None if status == "rejected" else (label if label is not None else gold)
        corrected += in_effect != gold
        if predicted is not None and in_effect is not None:
            with_prediction += 1
            model_wrong += predicted != in_effect
    return ReviewOutcomes(reviewed, corrected, with_prediction, model_wrong)


def reviewed_labels_at(session: Session, dataset: str, moments: list[datetime]) -> list[int]:
    """For each moment: how many pairs of `dataset` had a label decision (accepted, corrected, rejected) made at or
    before it, by the first such decision of each pair: the reviewed labels a model registered then could use."""
    dataset_id = require_dataset(session, dataset).id
    first_decisions = sorted(
        session.scalars(
            select(func.min(Annotation.created_at))
            .join(EntityPair, EntityPair.id == Annotation.pair_id)
            .where(
                EntityPair.dataset_id == dataset_id,
                Annotation.status.in_(LABEL_DECISIONS),
                Annotation.undoes_id.is_(None),
            )
            .group_by(Annotation.pair_id)
        )
    )
    from bisect import bisect_right

    return [bisect_right(first_decisions, moment) for moment in moments]


# ---------------------------------------------------------------------------------------------------------------
# The retraining schedule


@dataclass(frozen=True)
class Schedule:
    dataset: str
    every: int | None  # None: off
    epochs: int
    new_decisions: int  # label decisions since the last scheduled retraining (or ever)
    last_job_id: int | None
    set_by: str | None

    @property
    def due(self) -> bool:
        return self.every is not None and self.new_decisions >= self.every


def _decisions_after(session: Session, dataset_id: int, after_id: int) -> tuple[int, int]:
    """(label decisions of the dataset with an annotation id above `after_id`, the highest such id)."""
    count, highest = session.execute(
        select(func.count(Annotation.id), func.max(Annotation.id))
        .join(EntityPair, EntityPair.id == Annotation.pair_id)
        .where(
            EntityPair.dataset_id == dataset_id,
            Annotation.id > after_id,
            Annotation.status.in_(LABEL_DECISIONS),
            Annotation.undoes_id.is_(None),
        )
    ).one()
    return int(count), int(highest or after_id)


def retrain_schedule(session: Session, dataset: str) -> Schedule:
    dataset_row = require_dataset(session, dataset)
    row = session.scalar(select(RetrainSchedule).where(RetrainSchedule.dataset_id == dataset_row.id))
    new, _ = _decisions_after(session, dataset_row.id, row.counted_through if row else 0)
    if row is None:
        return Schedule(dataset, None, 1, new, None, None)
    return Schedule(dataset, row.every, row.epochs, new, row.last_job_id, row.set_by)


def set_retrain_schedule(
    session: Session, dataset: str, every: int | None, epochs: int, set_by: str
) -> Schedule:
    """Turn the schedule on (`every` > 0 new decisions) or off (None); counting starts from now when it is turned
    on, so decisions made before do not start a retraining at once."""
    if every is not None and (not isinstance(every, int) or isinstance(every, bool) or every < 1):
        raise LabelStoreError(f"retrain every: {every!r} is not a positive whole number of decisions")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or not 1 <= epochs <= 20:
        raise LabelStoreError(f"retrain epochs: {epochs!r} is not a whole number from 1 to 20")
    dataset_row = require_dataset(session, dataset)
    row = session.scalar(select(RetrainSchedule).where(RetrainSchedule.dataset_id == dataset_row.id))
    if row is None:
        row = RetrainSchedule(dataset_id=dataset_row.id, counted_through=0)
        session.add(row)
    if every is not None and row.every is None:
        row.counted_through = _decisions_after(session, dataset_row.id, 0)[1]
    row.every, row.epochs, row.set_by, row.updated_at = every, epochs, set_by, datetime.now().astimezone()
    session.flush()
    return retrain_schedule(session, dataset)


def due_schedules(session: Session) -> list[tuple[str, str | None, Schedule]]:
    """(dataset, its source folder, schedule) of every dataset whose schedule is due."""
    due = []
    for name, source in session.execute(
        select(Dataset.name, Dataset.source_path)
        .join(RetrainSchedule, RetrainSchedule.dataset_id == Dataset.id)
        .where(RetrainSchedule.every.is_not(None))
    ):
        schedule = retrain_schedule(session, name)
        if schedule.due:
            due.append((name, source, schedule))
    return due


def mark_scheduled(session: Session, dataset: str, job_id: int | None) -> None:
    """The retraining for the decisions counted so far is queued (job_id), or could not be (None): either way
    counting starts again, so a failing schedule does not queue a job on every poll."""
    dataset_row = require_dataset(session, dataset)
    row = session.scalar(select(RetrainSchedule).where(RetrainSchedule.dataset_id == dataset_row.id))
    if row is None:
        raise LabelStoreError(f"dataset {dataset!r} has no retraining schedule")
    row.counted_through = _decisions_after(session, dataset_row.id, row.counted_through)[1]
    row.last_job_id = job_id
