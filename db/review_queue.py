"""The review queue and what the pages read about pairs: filters and sort orders, progress per status, one
pair's detail, and the values the filters offer.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session, aliased

from db.annotations import (
    CurrentState,
    current_annotation_alias,
    current_state,
    join_current_annotation,
    pair_history,
)
from db.datasets import require_pair
from db.errors import LabelStoreError
from db.models import (
    ANNOTATION_STATUSES,
    Annotation,
    Dataset,
    EntityPair,
    Explanation,
    GroundedCrop,
    Post,
    Prediction,
)
from db.provenance import DEFAULT_PREDICTION_METHOD, active_model_version

QUEUE_SORTS = ("uncertainty", "entropy", "image_reliance", "disagreement", "source_order")


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
    pair = require_pair(session, pair_id)
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


def queue_filter_values(session: Session) -> dict[str, list[str]]:
    """Values the queue and export filters offer: splits, gold labels and annotators present in the store."""
    return {
        "split": sorted(session.scalars(select(EntityPair.split).distinct())),
        "gold_label": sorted(x for x in session.scalars(select(EntityPair.gold_label).distinct()) if x),
        "annotator": sorted(session.scalars(select(Annotation.annotator).distinct())),
    }
