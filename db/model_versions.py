"""A registered model version as every page, job and cache passes it: one frozen object with typed fields.

    ModelVersionInfo.of(row, job)          the model_versions row (and the job that made it) as plain values
    active_model(session)                  the active version, None when none is
    find_model(session, version_id)        a registered version (LabelStoreError when not registered)
    model_or_none(session, version_id)     the same, None when not registered
    registered_models(session)             every version, newest first, with the job that made it
    summarize_metrics(metrics)             what a version or an evaluation run stores of an evaluation

A version's val figures are `ValMetrics` (micro P/R/F1 over the non-None labels, accuracy, records, per label) and
where it came from is `TrainingOrigin` (job kind, dataset, epochs, records, parent, job). The two settings shapes
the store holds (a training job writes "train" + "config_file", a retraining "options" + "mnre" +
"train_records") are read here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.errors import LabelStoreError
from db.models import Job, ModelVersion

SUMMARY_FIELDS = ("accuracy", "precision", "recall", "f1", "records")
LABEL_FIELDS = ("precision", "recall", "f1", "support")


def summarize_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """What a model version (and an evaluation run) stores of model.evaluate.compute_metrics: accuracy, micro
    P/R/F1, the record count and per-label P/R/F1 and support; the confusion matrix and label list are dropped.
    Training, retraining and the experiments all store through this, so ValMetrics reads one shape."""
    out = {key: metrics[key] for key in SUMMARY_FIELDS if key in metrics}
    if "per_label" in metrics:
        out["per_label"] = {
            name: {key: figures[key] for key in LABEL_FIELDS if key in figures}
            for name, figures in metrics["per_label"].items()
        }
    return out


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class LabelMetrics:
    """One label's val figures (0..1) and its support (gold records of that label)."""

    precision: float | None
    recall: float | None
    f1: float | None
    support: int | None


@dataclass(frozen=True)
class ValMetrics:
    """A version's figures on val, each 0..1 (None: not stored): micro P/R/F1 over the non-None labels (the MNRE
    convention), accuracy over all records, the record count and per-label figures."""

    f1: float | None
    precision: float | None
    recall: float | None
    accuracy: float | None
    records: int | None
    per_label: Mapping[str, LabelMetrics] = field(default_factory=dict)

    @classmethod
    def of(cls, summary: Mapping[str, Any] | None) -> ValMetrics | None:
        """From a stored summary (summarize_metrics' shape); None when nothing was stored."""
        if not summary:
            return None
        per_label = {
            name: LabelMetrics(
                _number(figures.get("precision")),
                _number(figures.get("recall")),
                _number(figures.get("f1")),
                _count(figures.get("support")),
            )
            for name, figures in (summary.get("per_label") or {}).items()
            if isinstance(figures, Mapping)
        }
        return cls(
            f1=_number(summary.get("f1")),
            precision=_number(summary.get("precision")),
            recall=_number(summary.get("recall")),
            accuracy=_number(summary.get("accuracy")),
            records=_count(summary.get("records")),
            per_label=per_label,
        )

    def label_f1(self, label: str) -> float | None:
        figures = self.per_label.get(label)
        return figures.f1 if figures is not None else None

    def unlearned_labels(self, none_label: str = "None") -> list[str]:
        """Relations with val records that the model never gets right (F1 0), "None" aside."""
        return [
            name
            for name, figures in self.per_label.items()
            if name != none_label and (figures.support or 0) > 0 and not figures.f1
        ]

    def relations_with_support(self, none_label: str = "None") -> int:
        return sum(
            1 for name, figures in self.per_label.items() if name != none_label and (figures.support or 0) > 0
        )


@dataclass(frozen=True)
class TrainingOrigin:
    """Where a version came from. Every field None when not known (a checkpoint registered by hand)."""

    kind: str | None  # the job kind that trained it (first_model, default_model, retrain, ...)
    dataset: str | None  # the label-store dataset it trained on
    data: str | None  # the folder its records were read from
    epochs: int | None
    records: int | None  # training records used, when counted (a retraining counts its curated records)
    limit_train: int | None  # only the first N train records, when a limit was set
    parent: str | None  # version id of the model it was fine-tuned from
    job: int | None  # the jobs row that made it
    config_file: str | None  # the YAML config of a training job
    started_by: str | None = None  # who started that job

    @classmethod
    def of(
        cls, settings: Mapping[str, Any] | None, parent: str | None = None, job: Job | None = None
    ) -> TrainingOrigin:
        """The one reader of a version's settings. A training job writes {"kind", "config_file", "dataset",
        "train": TrainConfig as a dict, "history", "job"}; a retraining {"base", "dataset", "mnre", "epochs",
        "train_records", "options": {limit_train, ...}, "job"}."""
        settings = settings or {}
        train = settings.get("train") or {}
        options = settings.get("options") or {}
        kind = settings.get("kind") or ("retrain" if settings.get("base") else None)
        if kind is None and job is not None:
            kind = job.kind
        return cls(
            kind=kind,
            dataset=settings.get("dataset"),
            data=train.get("data") or settings.get("mnre"),
            epochs=_count(settings.get("epochs") or train.get("epochs")),
            records=_count(settings.get("train_records")),
            limit_train=_count(train.get("limit_train") or options.get("limit_train")),
            parent=parent or settings.get("base"),
            job=_count(settings.get("job")),
            config_file=settings.get("config_file"),
            started_by=job.started_by if job is not None else None,
        )

    def describe_data(self) -> str:
        """ "mnre, 1200 records, 3 epoch(s)": what it trained on, in words ("not recorded" for a version whose
        settings say nothing of it, e.g. one registered by hand: never a guess that reads like a value)."""
        data = self.dataset or self.data
        if not (data or self.records or self.limit_train or self.epochs):
            return "not recorded"
        data = data or "dataset not recorded"
        if self.records:
            size = f"{self.records} records"
        elif self.limit_train:
            size = f"first {self.limit_train} records"
        else:
            size = "full train split"
        return f"{data}, {size}" + (f", {self.epochs} epoch(s)" if self.epochs else "")


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered model version, usable after its session closed.

    `key` is the integer row key predictions, explanations and evaluation runs reference; `version_id` the
    checkpoint's version id string (the key of every cache); `folder` its checkpoint folder. The architecture and
    text encoder are config.json's at registration (None: not known), never read off the version id."""

    key: int
    version_id: str
    folder: str
    architecture: str | None
    variant: str
    text_encoder: str | None
    active: bool
    val: ValMetrics | None  # on val, as the training selected it
    val_before: ValMetrics | None  # a retraining's base model on the same val records
    origin: TrainingOrigin
    created_by: str | None
    created_at: datetime | None
    settings: Mapping[str, Any] = field(default_factory=dict)  # as stored, for showing in full

    @classmethod
    def of(cls, row: ModelVersion, job: Job | None = None) -> ModelVersionInfo:
        metrics = row.metrics or {}
        parent = row.parent.version_id if row.parent_id is not None and row.parent is not None else None
        return cls(
            key=row.id,
            version_id=row.version_id,
            folder=row.path,
            architecture=row.architecture,
            variant=row.variant,
            text_encoder=row.text_encoder,
            active=bool(row.is_active),
            val=ValMetrics.of(metrics.get("val")),
            val_before=ValMetrics.of(metrics.get("val_before")),
            origin=TrainingOrigin.of(row.settings, parent, job),
            created_by=row.created_by,
            created_at=row.created_at,
            settings=dict(row.settings or {}),
        )

    @property
    def val_f1(self) -> float | None:
        """Val micro-F1 (0..1), None when not stored."""
        return self.val.f1 if self.val is not None else None


def active_model(session: Session) -> ModelVersionInfo | None:
    row = session.scalar(select(ModelVersion).where(ModelVersion.is_active))
    return ModelVersionInfo.of(row) if row is not None else None


def model_or_none(session: Session, version_id: str) -> ModelVersionInfo | None:
    row = session.scalar(select(ModelVersion).where(ModelVersion.version_id == version_id))
    return ModelVersionInfo.of(row) if row is not None else None


def find_model(session: Session, version_id: str) -> ModelVersionInfo:
    info = model_or_none(session, version_id)
    if info is None:
        raise LabelStoreError(f"model version {version_id!r} is not registered")
    return info


def registered_models(session: Session) -> list[ModelVersionInfo]:
    """Every model version, newest first, each with the job that made it (settings["job"]) when there is one."""
    rows = list(
        session.scalars(select(ModelVersion).order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc()))
    )
    job_ids = {_count((row.settings or {}).get("job")) for row in rows} - {None}
    jobs = {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(job_ids)))} if job_ids else {}
    return [ModelVersionInfo.of(row, jobs.get(_count((row.settings or {}).get("job")))) for row in rows]
