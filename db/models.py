"""The label store schema (SQLAlchemy 2.0 typed ORM).

Provenance rules: every prediction, crop and explanation names its model version (or source), method and settings;
every annotation names its annotator. Annotations are append-only: a pair's current label is its annotation with
the highest revision (see annotations.current_state), and undo appends a row restoring the previous state.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from db.base import Base
from db.job_kinds import JOB_KINDS  # the job kinds' one table (db.job_kinds.JOB_KIND_TABLE)

# "unreviewed" is written only by undo (back to the state before a pair's first decision)
ANNOTATION_STATUSES = (
    "accepted",
    "corrected",
    "rejected",
    "skipped",
    "unreviewed",
)
EVALUATION_SETTINGS = ("standard", "shuffle-train", "shuffle-test")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every engine (SQLite would hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware value")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


intpk = Annotated[int, mapped_column(primary_key=True)]
created_at_utc = Annotated[datetime, mapped_column(UTCDateTime(), default=utcnow)]
name_str = Annotated[str, mapped_column(String(200))]


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[intpk]
    name: Mapped[name_str] = mapped_column(unique=True)
    source_path: Mapped[str | None] = mapped_column(Text)
    label_map: Mapped[dict[str, int] | None] = mapped_column(JSON)  # ours_rel2id.json of the source
    created_at: Mapped[created_at_utc]

    posts: Mapped[list[Post]] = relationship(back_populates="dataset")


class Post(Base):
    """A social-media post: tokens + (maybe) one image. Several entity pairs can share a post."""

    __tablename__ = "posts"
    __table_args__ = (
        UniqueConstraint("dataset_id", "content_key"),
        CheckConstraint("NOT has_image OR image_sha256 IS NOT NULL", name="image_hashed"),
    )

    id: Mapped[intpk]
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    # sha256 of tokens + image identity: makes import idempotent
    content_key: Mapped[str] = mapped_column(String(64))
    tokens: Mapped[list[str]] = mapped_column(JSON)
    text: Mapped[str] = mapped_column(Text)  # tokens joined by spaces, for search
    img_id: Mapped[str | None] = mapped_column(String(300))
    image_path: Mapped[str | None] = mapped_column(Text)
    image_sha256: Mapped[str | None] = mapped_column(String(64))
    has_image: Mapped[bool]
    created_at: Mapped[created_at_utc]

    dataset: Mapped[Dataset] = relationship(back_populates="posts")
    pairs: Mapped[list[EntityPair]] = relationship(back_populates="post")
    crops: Mapped[list[GroundedCrop]] = relationship(back_populates="post")


class EntityPair(Base):
    """One head/tail pair of a post, with the gold label of its source (None for posts imported without one)."""

    __tablename__ = "entity_pairs"
    __table_args__ = (
        UniqueConstraint("dataset_id", "source_key"),
        CheckConstraint("head_start >= 0 AND head_start < head_end", name="head_span"),
        CheckConstraint("tail_start >= 0 AND tail_start < tail_end", name="tail_span"),
        CheckConstraint("(added_by IS NULL) = (added_at IS NULL)", name="added_together"),
        Index("ix_entity_pairs_dataset_split_line", "dataset_id", "split", "source_line"),
    )

    id: Mapped[intpk]
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"), index=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    split: Mapped[str] = mapped_column(String(32))
    # "train:17" for file lines, "post:<hash>" for single posts
    source_key: Mapped[str] = mapped_column(String(200))
    source_line: Mapped[int | None]  # 1-based line in the source txt file
    head_name: Mapped[str] = mapped_column(Text)
    head_start: Mapped[int]
    head_end: Mapped[int]  # exclusive
    tail_name: Mapped[str] = mapped_column(Text)
    tail_start: Mapped[int]
    tail_end: Mapped[int]
    gold_label: Mapped[str | None] = mapped_column(String(100))
    # the source line verbatim: untouched records export byte-exact
    raw_line: Mapped[str | None] = mapped_column(Text)
    # a pair a reviewer added to the post (db.annotations.add_pair): who and when; NULL for imported pairs
    added_by: Mapped[str | None] = mapped_column(String(200))
    added_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[created_at_utc]

    post: Mapped[Post] = relationship(back_populates="pairs")
    annotations: Mapped[list[Annotation]] = relationship(
        back_populates="pair", order_by="Annotation.revision"
    )
    predictions: Mapped[list[Prediction]] = relationship(back_populates="pair")


class GroundedCrop(Base):
    """A local image region for a post: from visual grounding (box, phrase, score) or shipped with the dataset."""

    __tablename__ = "grounded_crops"
    __table_args__ = (
        CheckConstraint("box_x0 IS NULL OR (box_x0 < box_x1 AND box_y0 < box_y1)", name="box_ordered"),
    )

    id: Mapped[intpk]
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"), index=True)
    box_x0: Mapped[float | None] = mapped_column(Float)
    box_y0: Mapped[float | None] = mapped_column(Float)
    box_x1: Mapped[float | None] = mapped_column(Float)
    box_y1: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(Text)  # the grounded phrase
    score: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(100))  # "mnre_vg" or the grounding model that produced it
    path: Mapped[str | None] = mapped_column(Text)
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[created_at_utc]

    post: Mapped[Post] = relationship(back_populates="crops")


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[intpk]
    # config.json "version_id" of the checkpoint
    version_id: Mapped[str] = mapped_column(String(200), unique=True)
    path: Mapped[str] = mapped_column(Text)
    variant: Mapped[str] = mapped_column(String(100))
    # config.json "architecture" and "text_encoder", stored at registration; NULL only for a version registered
    # before they were stored whose checkpoint folder was gone when the store was upgraded
    architecture: Mapped[str | None] = mapped_column(String(32))
    text_encoder: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # training settings, curated-data counts
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    is_active: Mapped[bool] = mapped_column(default=False)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[created_at_utc]

    parent: Mapped[ModelVersion | None] = relationship(remote_side="ModelVersion.id")


class Prediction(Base):
    """A model's probabilities for one pair, with the uncertainty figures the review queue sorts by."""

    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("pair_id", "model_version_id", "method"),
        CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence_range"),
        Index("ix_predictions_version_margin", "model_version_id", "margin"),
    )

    id: Mapped[intpk]
    pair_id: Mapped[int] = mapped_column(ForeignKey("entity_pairs.id"), index=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    method: Mapped[str] = mapped_column(String(100))  # e.g. "forward", "shuffled-image"
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    probabilities: Mapped[dict[str, float]] = mapped_column(JSON)  # label -> probability
    predicted_label: Mapped[str] = mapped_column(String(100))
    confidence: Mapped[float] = mapped_column(Float)  # top probability
    margin: Mapped[float] = mapped_column(Float)  # top - second probability: small = uncertain
    entropy: Mapped[float] = mapped_column(Float)  # nats
    # how much the prediction changes without the image
    image_reliance: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[created_at_utc]

    pair: Mapped[EntityPair] = relationship(back_populates="predictions")
    model_version: Mapped[ModelVersion] = relationship()


class Annotation(Base):
    """One review decision. Rows are never updated or deleted; (pair, revision) is the optimistic-lock key."""

    __tablename__ = "annotations"
    __table_args__ = (
        UniqueConstraint("pair_id", "revision"),
        CheckConstraint("revision >= 1", name="revision_positive"),
        CheckConstraint("status IN ('" + "', '".join(ANNOTATION_STATUSES) + "')", name="status_known"),
        CheckConstraint("status NOT IN ('accepted', 'corrected') OR label IS NOT NULL", name="label_given"),
        CheckConstraint(
            "(head_start IS NULL AND head_end IS NULL AND head_name IS NULL) OR "
            "(head_name IS NOT NULL AND head_start >= 0 AND head_start < head_end)",
            name="head_span",
        ),
        CheckConstraint(
            "(tail_start IS NULL AND tail_end IS NULL AND tail_name IS NULL) OR "
            "(tail_name IS NOT NULL AND tail_start >= 0 AND tail_start < tail_end)",
            name="tail_span",
        ),
        Index("ix_annotations_annotator", "annotator"),
    )

    id: Mapped[intpk]
    pair_id: Mapped[int] = mapped_column(ForeignKey("entity_pairs.id"))
    revision: Mapped[int]  # 1, 2, ... per pair; the highest one is the current state
    label: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    annotator: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    undoes_id: Mapped[int | None] = mapped_column(ForeignKey("annotations.id"))  # set on rows written by undo
    # where the decision was made when not in the plain review flow: "audit" = the label-error audit (Review showed
    # a cross-fit model's suggestion against the gold label)
    origin: Mapped[str | None] = mapped_column(String(32))
    # the spans in effect after this decision (db.spans): word positions (end exclusive) and the words' text; NULL:
    # the pair's own span. A span edit writes them; later decisions carry them forward; undo restores the earlier ones
    head_start: Mapped[int | None]
    head_end: Mapped[int | None]
    head_name: Mapped[str | None] = mapped_column(Text)
    tail_start: Mapped[int | None]
    tail_end: Mapped[int | None]
    tail_name: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[created_at_utc]

    pair: Mapped[EntityPair] = relationship(back_populates="annotations")


# reviewer: marked with a decision; synthetic: the evidence model.synthetic's generator writes
RATIONALE_SOURCES = ("reviewer", "synthetic")


class Rationale(Base):
    """Why a label holds: evidence words (indices into the post's tokens, never the entities') and/or one evidence box
    in the original image's pixels (x0, y0, x1, y1; right and bottom exclusive) on an image of image_width x
    image_height. Rows are never updated or deleted (db/rationales.py writes them).

    A reviewer's rationale belongs to one decision (annotation_id): saved with it, undone with it (the undo row gets a
    copy of the restored decision's rationale), so a pair's current rationale is its current decision's. A
    `synthetic` rationale has no decision: it is the dataset's own evidence for the gold label, as gold_label is the
    dataset's own label (annotation_id NULL, one per pair).
    """

    __tablename__ = "rationales"
    __table_args__ = (
        CheckConstraint("source IN ('" + "', '".join(RATIONALE_SOURCES) + "')", name="source_known"),
        CheckConstraint("source <> 'reviewer' OR annotation_id IS NOT NULL", name="reviewer_decision"),
        CheckConstraint(
            "(box_x0 IS NULL AND box_y0 IS NULL AND box_x1 IS NULL AND box_y1 IS NULL) OR "
            "(box_x0 >= 0 AND box_y0 >= 0 AND box_x0 < box_x1 AND box_y0 < box_y1 "
            "AND image_width IS NOT NULL AND box_x1 <= image_width "
            "AND image_height IS NOT NULL AND box_y1 <= image_height)",
            name="box_in_image",
        ),
        CheckConstraint("image_width IS NULL OR image_width > 0", name="width_positive"),
        CheckConstraint("image_height IS NULL OR image_height > 0", name="height_positive"),
    )

    id: Mapped[intpk]
    pair_id: Mapped[int] = mapped_column(ForeignKey("entity_pairs.id"), index=True)
    # the decision this rationale was recorded with; NULL for a dataset's own (synthetic) evidence
    annotation_id: Mapped[int | None] = mapped_column(ForeignKey("annotations.id"), unique=True)
    source: Mapped[str] = mapped_column(String(32))
    tokens: Mapped[list[int]] = mapped_column(JSON)  # sorted, unique word indices; [] when only a box
    box_x0: Mapped[float | None] = mapped_column(Float)
    box_y0: Mapped[float | None] = mapped_column(Float)
    box_x1: Mapped[float | None] = mapped_column(Float)
    box_y1: Mapped[float | None] = mapped_column(Float)
    image_width: Mapped[int | None]
    image_height: Mapped[int | None]
    created_at: Mapped[created_at_utc]


class Explanation(Base):
    __tablename__ = "explanations"

    id: Mapped[intpk]
    pair_id: Mapped[int] = mapped_column(ForeignKey("entity_pairs.id"), index=True)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    method: Mapped[str] = mapped_column(String(100))  # e.g. "integrated_gradients", "attention_rollout"
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)  # summary numbers (image share, faithfulness, ...)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[created_at_utc]


class EvaluationRun(Base):
    """One row of the shuffle / ablation tables: a variant evaluated under a setting on a split."""

    __tablename__ = "evaluation_runs"
    __table_args__ = (
        CheckConstraint("setting IN ('" + "', '".join(EVALUATION_SETTINGS) + "')", name="setting_known"),
        Index("ix_evaluation_runs_variant_setting", "variant", "setting"),
    )

    id: Mapped[intpk]
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    variant: Mapped[str] = mapped_column(String(100))
    setting: Mapped[str] = mapped_column(String(32))
    split: Mapped[str] = mapped_column(String(32))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[created_at_utc]


JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


class Job(Base):
    """A piece of long work run by the worker (python -m app.worker): its request, progress and outcome.

    The row is the job's state for every process: the app reads it, the worker writes it, and a browser refresh or
    an app restart loses nothing. The queue library (huey) only carries the job id.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("status IN ('" + "', '".join(JOB_STATUSES) + "')", name="status_known"),
        CheckConstraint("kind IN ('" + "', '".join(JOB_KINDS) + "')", name="kind_known"),
        Index("ix_jobs_status_created", "status", "created_at"),
    )

    id: Mapped[intpk]
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # what the job was asked to do
    started_by: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    priority: Mapped[int] = mapped_column(default=0)  # higher runs first among queued jobs
    queue_task_id: Mapped[str | None] = mapped_column(String(64))  # the huey task carrying this job
    worker: Mapped[str | None] = mapped_column(String(200))  # host:pid of the worker running it
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # fraction, step, epoch, eta_s, val_f1, message
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    log_tail: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    # e.g. {"model_version": ..., "activated": ...}
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[created_at_utc]
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # last progress write by the worker
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CrossfitRun(Base):
    """One "Find label errors" run over a dataset: out-of-sample predictions for its labelled pairs (K-fold
    cross-fitting of the training split, the active model for the other splits) and cleanlab's label-issue scores.

    settings holds the provenance: the fold recipe, the seed, each fold model (version id, checkpoint, records it
    trained on and predicted, val F1) and the active model version used for the pairs it never trained on.
    """

    __tablename__ = "crossfit_runs"

    id: Mapped[intpk]
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    folds: Mapped[int]
    method: Mapped[str] = mapped_column(String(64))  # the cleanlab quality score that ranks the suspects
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    pairs: Mapped[int]  # pairs scored
    flagged: Mapped[int]  # pairs cleanlab.filter.find_label_issues flags
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[created_at_utc]


class RetrainSchedule(Base):
    """Retraining that starts by itself once a dataset has `every` new review decisions (off when there is no row
    or `every` is None). `counted_through` is the last annotation id counted when the last retraining was queued:
    decisions with a higher id are the new ones."""

    __tablename__ = "retrain_schedules"
    __table_args__ = (CheckConstraint("every IS NULL OR every > 0", name="every_positive"),)

    id: Mapped[intpk]
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), unique=True)
    every: Mapped[int | None]
    epochs: Mapped[int] = mapped_column(default=1)
    counted_through: Mapped[int] = mapped_column(default=0)
    last_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    set_by: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[created_at_utc]


class OutOfSamplePrediction(Base):
    """A pair's probabilities from a model that never trained on it, and how likely its label is wrong.

    The prediction method beside `predictions` (the active model's, in-sample on the pairs it trained on):
    `source` "fold" (a fold model of the run; `fold` says which) or "active_model" (a split the active model never
    trained on). given_label is the label in effect when the run started (the curated one if reviewed, else gold).
    """

    __tablename__ = "out_of_sample_predictions"
    __table_args__ = (
        UniqueConstraint("run_id", "pair_id"),
        Index("ix_out_of_sample_predictions_run_rank", "run_id", "rank"),
    )

    id: Mapped[intpk]
    run_id: Mapped[int] = mapped_column(ForeignKey("crossfit_runs.id"))
    pair_id: Mapped[int] = mapped_column(ForeignKey("entity_pairs.id"), index=True)
    source: Mapped[str] = mapped_column(String(32))
    fold: Mapped[int | None]
    model_version: Mapped[str] = mapped_column(String(200))  # version id of the model that predicted it
    probabilities: Mapped[dict[str, float]] = mapped_column(JSON)
    given_label: Mapped[str] = mapped_column(String(100))
    given_probability: Mapped[float] = mapped_column(Float)
    suggested_label: Mapped[str] = mapped_column(String(100))  # the most probable label
    suggested_probability: Mapped[float] = mapped_column(Float)
    quality: Mapped[float] = mapped_column(Float)  # cleanlab label quality of given_label: low = likely wrong
    loss: Mapped[float] = mapped_column(Float)  # -log given_probability
    flagged: Mapped[bool]  # cleanlab.filter.find_label_issues
    rank: Mapped[int]  # 1 = the most likely label error of the run
    scores: Mapped[dict[str, float] | None] = mapped_column(JSON)  # every cleanlab quality score


class ReviewSettings(Base):
    """How a dataset is shared out among reviewers (db/leases.py): `overlap` distinct reviewers decide each pair (1:
    one decision by anyone finishes a pair; 2 or more: for agreement), and a lease on a pair lapses after
    `lease_minutes` without activity. No row: overlap 1, 10 minutes."""

    __tablename__ = "review_settings"
    __table_args__ = (
        CheckConstraint("overlap >= 1", name="overlap_positive"),
        CheckConstraint("lease_minutes >= 1", name="lease_minutes_positive"),
    )

    id: Mapped[intpk]
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), unique=True)
    overlap: Mapped[int] = mapped_column(default=1)
    lease_minutes: Mapped[int] = mapped_column(default=10)
    set_by: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[created_at_utc]


class ReviewAssignment(Base):
    """The queue filter an admin assigned to a reviewer (db.review_queue.QueueFilter fields, as JSON): the pairs their
    Review hands out, in the queue's usual order."""

    __tablename__ = "review_assignments"

    id: Mapped[intpk]
    reviewer: Mapped[str] = mapped_column(String(200), unique=True)
    queue_filter: Mapped[dict[str, Any]] = mapped_column(JSON)
    set_by: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[created_at_utc]


LEASE_STATES = ("held", "decided")


class ReviewLease(Base):
    """A pair handed to a reviewer. A pair has `overlap` slots (0 .. overlap-1); a reviewer's row takes one, and the
    unique (pair, slot) key is what stops two reviewers who race for the last free slot from both winning it. A
    `held` row lapses at `expires_at` (renewed on activity; the next reviewer to take the slot deletes it); a skip
    deletes it; a decision turns it `decided`, which keeps the slot for good (undo frees it)."""

    __tablename__ = "review_leases"
    __table_args__ = (
        UniqueConstraint("pair_id", "slot"),
        UniqueConstraint("pair_id", "reviewer"),
        CheckConstraint("slot >= 0", name="slot_non_negative"),
        CheckConstraint("state IN ('" + "', '".join(LEASE_STATES) + "')", name="state_known"),
        Index("ix_review_leases_reviewer_state", "reviewer", "state"),
        Index("ix_review_leases_dataset_state", "dataset_id", "state"),
    )

    id: Mapped[intpk]
    pair_id: Mapped[int] = mapped_column(ForeignKey("entity_pairs.id"))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    slot: Mapped[int]
    reviewer: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default="held")
    leased_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
