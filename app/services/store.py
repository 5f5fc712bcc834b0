"""Label-store reads and writes the pages need, as plain data (picklable, cacheable, no lazy ORM loads in pages).

No SQL here: every query is a db/ function; this module turns their rows into what a page shows.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.services.rationales import describe
from db.annotations import (
    OwnDecision,
    add_pair,
    current_state,
    own_decisions_in_effect,
    pair_history,
    undo_last,
)
from db.datasets import list_datasets, require_pair
from db.io import import_post
from db.leases import record_decision, release_for
from db.model_versions import ModelVersionInfo, active_model, registered_models
from db.models import Annotation
from db.provenance import active_model_version, evaluation_runs_with_versions
from db.rationales import Rationale, decision_rationales
from db.review_queue import QueueFilter, pair_detail, progress, queue_filter_values, review_queue
from db.roles import Actor
from model.images import DEFAULT_MAX_IMAGE_BYTES, ImageError, decode_image
from model.mnre_format import DataFormatError


def all_labels(label_map: dict[str, int] | None) -> list[str]:
    """The dataset's labels in id order; the 23 MNRE labels for datasets imported without a label map."""
    if label_map:
        from model.mnre_format import labels_by_id

        return labels_by_id(label_map)
    from model.synthetic import MNRE_LABELS

    return list(MNRE_LABELS)


@dataclass
class CropView:
    box: tuple[float, float, float, float] | None
    label: str | None
    score: float | None
    source: str
    path: str | None


@dataclass
class PairView:
    """Everything the Review page shows about one pair that does not change when someone reviews it."""

    pair_id: int
    dataset: str
    split: str
    source_line: int | None
    tokens: list[str]
    head: tuple[int, int, str]
    tail: tuple[int, int, str]
    gold_label: str | None
    labels: list[str]
    image_path: str | None  # None: the post has no image here
    image_missing: bool  # the post names an image that is not on this machine
    crops: list[CropView] = field(default_factory=list)
    probabilities: dict[str, float] | None = None  # the active model's stored prediction
    model_version: str | None = None


def load_pair_view(session: Session, pair_id: int) -> PairView:
    detail = pair_detail(session, pair_id)
    pair, post = detail.pair, detail.post
    active = active_model_version(session)
    prediction = next(
        (
            prediction
            for prediction in detail.predictions
            if active is not None
            and prediction.model_version_id == active.id
            and prediction.method == "forward"
        ),
        None,
    )
    image_ok = bool(post.has_image and post.image_path and Path(post.image_path).is_file())
    return PairView(
        pair_id=pair.id,
        dataset=detail.dataset.name,
        split=pair.split,
        source_line=pair.source_line,
        tokens=list(post.tokens),
        head=(pair.head_start, pair.head_end, pair.head_name),
        tail=(pair.tail_start, pair.tail_end, pair.tail_name),
        gold_label=pair.gold_label,
        labels=all_labels(detail.dataset.label_map),
        image_path=post.image_path if image_ok else None,
        image_missing=bool(post.img_id) and not image_ok,
        crops=[
            CropView(
                (crop.box_x0, crop.box_y0, crop.box_x1, crop.box_y1) if crop.box_x0 is not None else None,
                crop.label,
                crop.score,
                crop.source,
                crop.path if crop.path and Path(crop.path).is_file() else None,
            )
            for crop in detail.crops
        ],
        probabilities=dict(prediction.probabilities) if prediction else None,
        model_version=active.version_id if active else None,
    )


@dataclass
class ReviewState:
    """A pair's decisions as the Review page shows them; every label here is the label in effect, by the store's
    one rule (db.annotations.CurrentState.curated_label): what training and every export use."""

    status: str
    label_in_effect: str | None  # None: no label (rejected, or a post added here that nobody labelled)
    revision: int
    annotator: str | None  # who made the current state (after an undo: who undid)
    undone: bool  # the current state is an undo's restoration
    note: str | None  # the note of the decision in effect (None after an undo back to unreviewed)
    history: list[dict[str, Any]]  # newest first; "label" is the label in effect after that row
    # the rationale of the decision in effect (undo brings the restored decision's back); None: no evidence marked
    rationale: Rationale | None = None
    # the head and tail in effect, (start, end exclusive, words): a span a decision fixed, else the pair's own
    head: tuple[int, int, str] | None = None
    tail: tuple[int, int, str] | None = None
    # a decision fixed a span: the stored prediction was made for the pair's own spans, so it is stale
    spans_fixed: bool = False


def load_review_state(session: Session, pair_id: int) -> ReviewState:
    pair = require_pair(session, pair_id)
    gold = pair.gold_label
    history = pair_history(session, pair_id)
    current = current_state(history)
    head, tail = current.spans(pair)
    rationales = decision_rationales(session, [annotation.id for annotation in history]) if history else {}
    rows = [
        {
            "revision": annotation.revision,
            "status": annotation.status,
            "label": current_state([annotation]).curated_label(gold),
            "annotator": annotation.annotator,
            "note": annotation.note,
            "undo": annotation.undoes_id is not None,
            "rationale": describe(rationales.get(annotation.id)),
            "at": annotation.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        }
        for annotation in reversed(history)
    ]
    return ReviewState(
        status=current.status,
        label_in_effect=current.curated_label(gold),
        revision=current.revision,
        annotator=current.annotator,
        undone=bool(history) and history[-1].undoes_id is not None,
        note=_note_in_effect(history, current.status),
        history=rows,
        rationale=rationales.get(history[-1].id) if history else None,
        head=(head.start, head.end, head.text),
        tail=(tail.start, tail.end, tail.text),
        spans_fixed=current.head is not None or current.tail is not None,
    )


def _note_in_effect(history: list[Annotation], status: str) -> str | None:
    """The note of the decision the pair's state comes from: an undo restores the decision before the one it took
    back, and brings that decision's note back with it."""
    if status == "unreviewed":
        return None
    undone = {annotation.undoes_id for annotation in history if annotation.undoes_id is not None}
    in_effect = [
        a for a in history if a.undoes_id is None and a.id not in undone and a.status != "unreviewed"
    ]
    return in_effect[-1].note if in_effect else None


def decide(
    sessions: sessionmaker,
    pair_id: int,
    status: str,
    annotator: str,
    expected_revision: int,
    label: str | None = None,
    note: str | None = None,
    origin: str | None = None,
    rationale: Rationale | None = None,
) -> Annotation:
    """One review decision in its own transaction (ConcurrentEditError if the pair changed since it was shown,
    unless only reviewers holding other overlap slots of it decided since: db.leases.record_decision records it
    on the current revision then); origin "audit" marks a decision made in the label-error audit; `rationale`
    (app.services.rationales.marked_rationale) is stored with the decision, checked first (a bad one:
    LabelStoreError, nothing stored). A decision keeps the reviewer's lease slot, a skip frees it."""
    with sessions.begin() as session:
        return record_decision(
            session,
            pair_id,
            status=status,
            annotator=annotator,
            expected_revision=expected_revision,
            label=label,
            note=note or None,
            origin=origin,
            rationale=rationale,
        )


def fix_spans(
    sessions: sessionmaker,
    pair_id: int,
    annotator: str,
    expected_revision: int,
    head: tuple[int, int],
    tail: tuple[int, int],
    label: str,
    note: str | None = None,
) -> Annotation:
    """Fix the pair's head and tail spans (word positions, end exclusive) with a decision for `label` on them
    (db.annotations.record_annotation: "corrected", recorded as "accepted" when it is the gold label), in its own
    transaction and under the leases like any decision (db.leases.record_decision); a bad span or a stale revision
    raises and stores nothing."""
    with sessions.begin() as session:
        return record_decision(
            session,
            pair_id,
            status="corrected",
            annotator=annotator,
            expected_revision=expected_revision,
            label=label,
            note=note or None,
            head=head,
            tail=tail,
        )


def add_pair_beside(
    sessions: sessionmaker,
    pair_id: int,
    dataset: str,
    annotator: str,
    head: tuple[int, int],
    tail: tuple[int, int],
    label: str,
    note: str | None = None,
) -> int:
    """Add a pair (head, tail, label) to the post of pair `pair_id` of `dataset`, in the same split
    (db.annotations.add_pair: a post of another dataset is refused); returns the new pair's id."""
    with sessions.begin() as session:
        shown = require_pair(session, pair_id)
        pair, _ = add_pair(
            session,
            shown.post_id,
            dataset=dataset,
            head=head,
            tail=tail,
            label=label,
            annotator=annotator,
            split=shown.split,
            note=note or None,
        )
        return pair.id


def undo(
    sessions: sessionmaker, pair_id: int, annotator: str, expected_revision: int, actor: Actor | None = None
) -> Annotation:
    """Undo the latest decision still in effect on the pair, if the pair is still at `expected_revision`.

    `expected_revision` is the revision the reviewer saw (after their own save: the revision it created), so an
    undo never cancels a decision someone else made meanwhile (ConcurrentEditError instead). `actor`: a reviewer
    undoes only their own decision, an admin anyone's (PermissionDeniedError); None is the local single user.
    """
    with sessions.begin() as session:
        annotation = undo_last(
            session, pair_id, annotator=annotator, expected_revision=expected_revision, actor=actor
        )
        release_for(session, annotation)  # the undone decision's slot is free again
        return annotation


def own_undo_stack(sessions: sessionmaker, annotator: str, limit: int = 20) -> list[OwnDecision]:
    """The reviewer's own decisions still in effect, most recent first (db.annotations.own_decisions_in_effect):
    what their undo takes back, read from the store's history so it survives a reload."""
    if not annotator or not annotator.strip():
        return []
    with sessions() as session:
        return own_decisions_in_effect(session, annotator, limit=limit)


@dataclass(frozen=True)
class UploadedImage:
    data: bytes
    name: str  # the user's own file name: what every error about it names


@dataclass(frozen=True)
class AddedPost:
    pair_id: int
    post_id: int
    created: bool  # False: the same post and spans were stored before
    image_path: Path | None  # the stored upload


IMAGE_SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "BMP": ".bmp", "WEBP": ".webp"}


def upload_limit() -> int:
    """Bytes an uploaded image may have: MRELENS_MAX_UPLOAD_BYTES, default the label store's image limit."""
    value = os.environ.get("MRELENS_MAX_UPLOAD_BYTES", "")
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_MAX_IMAGE_BYTES


def add_post(
    sessions: sessionmaker,
    text: str,
    head: tuple[int, int],
    tail: tuple[int, int],
    upload: UploadedImage | None,
    folder: Path,
    max_upload_bytes: int | None = None,
) -> AddedPost:
    """Store a post from the Add post page, its image saved under `folder` by content digest.

    The image is checked in memory (model.images.decode_image) before a byte is written; a file this call wrote is
    removed again when the post is refused. Errors are DataFormatError naming the user's file name, never the
    stored path. The file is written to a temporary name and renamed, so a FIFO in the folder never blocks.
    """
    image_path, written = None, False
    if upload is not None:
        limit = max_upload_bytes or upload_limit()
        if len(upload.data) > limit:
            raise DataFormatError(
                upload.name, None, "image", f"{len(upload.data)} bytes is over the {limit} byte upload limit"
            )
        try:
            image = decode_image(upload.data, name=upload.name)
        except ImageError as err:
            raise DataFormatError(upload.name, None, "image", err.problem) from err
        suffix = IMAGE_SUFFIXES[image.format]
        image.close()
        folder.mkdir(parents=True, exist_ok=True)
        image_path = folder / f"{hashlib.sha256(upload.data).hexdigest()[:24]}{suffix}"
        # a regular file there is the same upload, stored for an earlier post: it is not ours to remove
        written = not image_path.is_file()
        if written:
            _write_new_file(image_path, upload.data)
    try:
        with sessions.begin() as session:
            pair, created = import_post(
                session, text, head, tail, image_path, image_name=upload.name if upload else None
            )
            return AddedPost(pair.id, pair.post_id, created, image_path)
    except BaseException:
        if written:
            image_path.unlink(missing_ok=True)
        raise


def _write_new_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def filter_options(session: Session) -> dict[str, list[str]]:
    """Values the queue filters offer (splits, gold labels, annotators present in the store)."""
    return queue_filter_values(session)


def store_filter_options(sessions: sessionmaker) -> dict[str, list[str]]:
    """filter_options in its own session."""
    with sessions() as session:
        return filter_options(session)


def evaluation_run_rows(session: Session, split: str | None = None) -> list[dict[str, Any]]:
    """Stored evaluation runs as the rows explain.shuffle_table / ablation_table read (one per run)."""
    rows = []
    for run, version in evaluation_runs_with_versions(session, split):
        name = version.version_id if version else run.variant
        # the architecture the version's config.json named at registration, or the one the run's job recorded;
        # "" when neither is known (a version id says nothing about its architecture)
        architecture = (version.architecture if version else (run.settings or {}).get("architecture")) or ""
        metrics = run.metrics or {}
        if not all(k in metrics for k in ("accuracy", "precision", "recall", "f1")):
            continue  # a run stored without the four summary metrics cannot enter the tables
        rows.append(
            {
                "model": name,
                "architecture": architecture,
                "variant": run.variant,
                "setting": run.setting.replace("-", "_"),
                "eval_split": run.split,
                "model_version": version.version_id if version else "",
                "purpose": (run.settings or {}).get("purpose", ""),
                **{k: float(metrics[k]) for k in ("accuracy", "precision", "recall", "f1")},
            }
        )
    return rows


@dataclass(frozen=True)
class AuditView:
    """What the label-error audit shows of a pair: the label the run scored and what a model that never saw the
    pair suggests."""

    run_id: int
    rank: int
    given_label: str
    given_probability: float
    suggested_label: str
    suggested_probability: float
    flagged: bool
    source: str  # "fold" or "active_model"
    model_version: str


def load_audit_view(session: Session, pair_id: int) -> AuditView | None:
    """The pair in its dataset's latest Find label errors run, None when no run scored it."""
    from db.label_errors import out_of_sample_prediction

    row = out_of_sample_prediction(session, pair_id)
    if row is None:
        return None
    return AuditView(
        row.run_id,
        row.rank,
        row.given_label,
        row.given_probability,
        row.suggested_label,
        row.suggested_probability,
        row.flagged,
        row.source,
        row.model_version,
    )


def review_state(
    sessions: sessionmaker, pair_id: int, with_audit: bool = False
) -> tuple[ReviewState, AuditView | None]:
    """A pair's decisions (and, for the label-error audit, what the latest run says of it) read in one session."""
    with sessions() as session:
        state = load_review_state(session, pair_id)
        audit = load_audit_view(session, pair_id) if with_audit else None
    return state, audit


def pair_view(sessions: sessionmaker, pair_id: int) -> PairView:
    """load_pair_view in its own session (a LabelStoreError names a pair that is not there)."""
    with sessions() as session:
        return load_pair_view(session, pair_id)


def active_version(sessions: sessionmaker) -> ModelVersionInfo | None:
    """The active model version (the one frozen db.model_versions.ModelVersionInfo), read in its own session."""
    with sessions() as session:
        return active_model(session)


def registered_versions(sessions: sessionmaker) -> dict[str, ModelVersionInfo]:
    """Every registered model version by its version id, registration order."""
    with sessions() as session:
        return {version.version_id: version for version in registered_models(session)}


def unreviewed_pairs(sessions: sessionmaker, limit: int = 500) -> list[int]:
    """The pair ids Review walks when nothing was picked on the Queue: unreviewed pairs in the queue's default order."""
    with sessions() as session:
        return [item.pair_id for item in review_queue(session, QueueFilter(status="unreviewed"), limit=limit)]


# a decision on the label: a skip keeps the pair for later, so it is not "reviewed" (nor is an undo back to unreviewed)
REVIEWED_STATUSES = ("accepted", "corrected", "rejected")


@dataclass(frozen=True)
class Progress:
    """How far a set of pairs is: reviewed (accepted, corrected or rejected), skipped, and still to go."""

    counts: dict[str, int]  # pairs per current status, "total" included (db.review_queue.progress)

    @property
    def total(self) -> int:
        return self.counts["total"]

    @property
    def reviewed(self) -> int:
        return sum(self.counts[status] for status in REVIEWED_STATUSES)

    @property
    def skipped(self) -> int:
        return self.counts["skipped"]

    @property
    def to_go(self) -> int:
        return self.counts["unreviewed"]

    def sentence(self) -> str:
        """ "3 of 24 pairs reviewed (1 skipped, 20 to go)": the one wording Queue and Review use."""
        pairs = "pair" if self.total == 1 else "pairs"
        return (
            f"{self.reviewed:,} of {self.total:,} {pairs} reviewed "
            f"({self.skipped:,} skipped, {self.to_go:,} to go)"
        )


def queue_progress(sessions: sessionmaker, pair_ids: list[int]) -> Progress:
    """The progress of the pairs in a Review queue (their current statuses, whoever decided them)."""
    with sessions() as session:
        return Progress(progress(session, pair_ids=list(pair_ids)))


def dataset_names(sessions: sessionmaker) -> list[str]:
    """The names of the datasets in the store."""
    with sessions() as session:
        return [dataset.name for dataset in list_datasets(session)]
