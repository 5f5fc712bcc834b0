"""The review queue and what the pages read about pairs: filters and sort orders, progress per status, one
pair's detail, and the values the filters offer.
"""

from __future__ import annotations

import hashlib
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
from db.label_errors import latest_run_ids_subquery
from db.models import (
    ANNOTATION_STATUSES,
    Annotation,
    Dataset,
    EntityPair,
    Explanation,
    GroundedCrop,
    ModelVersion,
    OutOfSamplePrediction,
    Post,
    Prediction,
)
from db.provenance import DEFAULT_PREDICTION_METHOD, active_model_version

# label_error: the latest cross-fit run's ranking (db.label_errors), most likely wrong gold label first;
# random: a seeded shuffle of the matching pairs (the baseline every other order has to beat)
QUEUE_SORTS = (
    "uncertainty",
    "entropy",
    "image_reliance",
    "disagreement",
    "label_error",
    "source_order",
    "random",
)
# The order the Queue and Review start in: the strategy that bought the most val micro-F1 per reviewed pair in the
# simulated annotation loop (benchmarks/loop.md); "random" when none beat random.
DEFAULT_QUEUE_SORT = "entropy"


@dataclass
class QueueFilter:
    dataset: str | None = None
    split: str | None = None
    predicted_label: str | None = None
    gold_label: str | None = None
    status: str | None = None  # an ANNOTATION_STATUSES value; "unreviewed" also matches pairs never annotated
    annotator: str | None = None  # the annotator of the current state
    text: str | None = None  # case-insensitive substring of the post text or entity names
    suspects: int | None = None  # only the N most likely label errors of the dataset's latest cross-fit run


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
    # the latest cross-fit run's view of the pair (None when no run scored it)
    suspect_rank: int | None = None
    suggested_label: str | None = None  # a model that never saw the pair
    suggested_probability: float | None = None
    given_probability: float | None = None  # that model's probability of the label the run scored
    label_quality: float | None = None  # cleanlab's label quality: low = likely wrong
    flagged: bool | None = None  # cleanlab.filter.find_label_issues

    @property
    def label_in_effect(self) -> str | None:
        """The label training and every export use (CurrentState.curated_label); None: the pair is dropped."""
        state = CurrentState(self.status, self.current_label, self.revision, self.annotator)
        return state.curated_label(self.gold_label)


def _apply_filters(stmt, queue_filter: QueueFilter, current, prediction, out_of_sample):
    if queue_filter.dataset:
        stmt = stmt.where(Dataset.name == queue_filter.dataset)
    if queue_filter.split:
        stmt = stmt.where(EntityPair.split == queue_filter.split)
    if queue_filter.gold_label:
        stmt = stmt.where(EntityPair.gold_label == queue_filter.gold_label)
    if queue_filter.predicted_label:
        stmt = stmt.where(prediction.predicted_label == queue_filter.predicted_label)
    if queue_filter.status:
        if queue_filter.status not in ANNOTATION_STATUSES:
            raise LabelStoreError(
                f"unknown status {queue_filter.status!r}; expected one of {', '.join(ANNOTATION_STATUSES)}"
            )
        if queue_filter.status == "unreviewed":
            stmt = stmt.where(or_(current.status.is_(None), current.status == "unreviewed"))
        else:
            stmt = stmt.where(current.status == queue_filter.status)
    if queue_filter.annotator:
        stmt = stmt.where(current.annotator == queue_filter.annotator)
    if queue_filter.suspects is not None:
        stmt = stmt.where(out_of_sample.rank <= queue_filter.suspects)
    if queue_filter.text:
        pattern = "%" + queue_filter.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            or_(
                Post.text.ilike(pattern, escape="\\"),
                EntityPair.head_name.ilike(pattern, escape="\\"),
                EntityPair.tail_name.ilike(pattern, escape="\\"),
            )
        )
    return stmt


@dataclass(frozen=True)
class RelianceSource:
    """The model version whose image reliance the queue shows and sorts by."""

    key: int
    version_id: str
    pairs: int  # pairs of posts with an image that have a stored image reliance under it


def image_reliance_source(
    session: Session, prefer: int | None = None, method: str = DEFAULT_PREDICTION_METHOD
) -> RelianceSource | None:
    """Whichever version computed image reliance (Inspect's test, kept on its predictions): `prefer` (the active
    version) when it has any, else the version with the most pairs (the newest among equals); None when no version
    has one. A text-only model is never one: it never reads the image, so the 0 its explanations store says nothing
    (sorting by it would silently keep pair order); nor are posts without an image counted, for the same reason."""
    rows = session.execute(
        select(Prediction.model_version_id, ModelVersion.version_id, func.count())
        .join(ModelVersion, ModelVersion.id == Prediction.model_version_id)
        .join(EntityPair, EntityPair.id == Prediction.pair_id)
        .join(Post, Post.id == EntityPair.post_id)
        .where(
            Prediction.image_reliance.is_not(None),
            Prediction.method == method,
            ModelVersion.variant != "text_only",
            Post.has_image,
        )
        .group_by(Prediction.model_version_id, ModelVersion.version_id)
    ).all()
    sources = [RelianceSource(key, version_id, pairs) for key, version_id, pairs in rows]
    preferred = [source for source in sources if source.key == prefer]
    if preferred:
        return preferred[0]
    return max(sources, key=lambda source: (source.pairs, source.key), default=None)


def random_order_key(seed: int, pair_id: int) -> bytes:
    """The place of a pair in the "random" order of `seed`: a hash of both, so it never depends on the other pairs."""
    return hashlib.blake2b(f"{seed}:{pair_id}".encode(), digest_size=8).digest()


def review_queue(
    session: Session,
    queue_filter: QueueFilter | None = None,
    sort: str = DEFAULT_QUEUE_SORT,
    limit: int = 50,
    offset: int = 0,
    version_key: int | None = None,
    method: str = DEFAULT_PREDICTION_METHOD,
    random_seed: int = 0,
    reliance_version_key: int | None = None,
) -> list[QueueItem]:
    """Pairs to review, with their current state and the predictions of one model version (`version_key`; by
    default the active one).

    sort: uncertainty (smallest top-2 margin first), entropy (highest first), image_reliance (highest first),
    disagreement (prediction != gold first, most confident first), label_error (the dataset's latest cross-fit run:
    lowest cleanlab label quality of out-of-sample probabilities first; pairs it did not score last),
    source_order (dataset, split, line), random (the matching pairs shuffled by `random_seed`: the same seed gives
    the same order, and pairs reviewed meanwhile drop out without moving the others).
    image_reliance (the column and the sort) is read from `reliance_version_key`'s predictions; by default from
    whichever version computed it (image_reliance_source: the active one when it has any); None for a post without
    an image.
    """
    queue_filter = queue_filter or QueueFilter()
    if sort not in QUEUE_SORTS:
        raise LabelStoreError(f"unknown sort {sort!r}; expected one of {', '.join(QUEUE_SORTS)}")
    if version_key is None:
        active = active_model_version(session)
        version_key = active.id if active else None
    if reliance_version_key is None:
        source = image_reliance_source(session, version_key, method)
        # no version computed one (a text-only version's stored zeros do not count): the column stays empty, never
        # the predictions' version's zeros (no version has key 0)
        reliance_version_key = source.key if source is not None else 0
    current = current_annotation_alias()
    prediction = aliased(Prediction, name="pred")
    # the image reliance of the version that computed it, which may be another than the predictions' one
    reliance = prediction if reliance_version_key == version_key else aliased(Prediction, name="rel")
    # a post without an image has no reliance to show or sort by: the 0 stored for it is a definition
    reliance_score = case((Post.has_image, reliance.image_reliance), else_=None)
    out_of_sample = aliased(OutOfSamplePrediction, name="oos")
    latest_run = latest_run_ids_subquery()
    stmt = (
        select(
            EntityPair.id,
            Dataset.name.label("dataset"),
            EntityPair.split,
            EntityPair.source_line,
            Post.text,
            # the names in effect: a span a decision fixed, else the pair's own
            func.coalesce(current.head_name, EntityPair.head_name).label("head_name"),
            func.coalesce(current.tail_name, EntityPair.tail_name).label("tail_name"),
            EntityPair.gold_label,
            Post.has_image,
            current.status,
            current.label,
            current.annotator,
            current.revision,
            prediction.predicted_label,
            prediction.confidence,
            prediction.margin,
            prediction.entropy,
            reliance_score.label("image_reliance"),
            out_of_sample.rank,
            out_of_sample.suggested_label,
            out_of_sample.suggested_probability,
            out_of_sample.given_probability,
            out_of_sample.quality,
            out_of_sample.flagged,
        )
        .join(Post, Post.id == EntityPair.post_id)
        .join(Dataset, Dataset.id == EntityPair.dataset_id)
        .outerjoin(latest_run, latest_run.c.dataset_id == EntityPair.dataset_id)
        .outerjoin(
            out_of_sample,
            and_(out_of_sample.pair_id == EntityPair.id, out_of_sample.run_id == latest_run.c.run_id),
        )
    )
    stmt = join_current_annotation(stmt, current).outerjoin(
        prediction,
        and_(
            prediction.pair_id == EntityPair.id,
            prediction.model_version_id == version_key,
            prediction.method == method,
        ),
    )
    if reliance is not prediction:
        stmt = stmt.outerjoin(
            reliance,
            and_(
                reliance.pair_id == EntityPair.id,
                reliance.model_version_id == reliance_version_key,
                reliance.method == method,
            ),
        )
    stmt = _apply_filters(stmt, queue_filter, current, prediction, out_of_sample)
    if sort == "random":
        # each pair's place is a seeded hash of its id, not an SQL random(): the same on SQLite and PostgreSQL, and
        # stable while the reviewer works through it
        matching = sorted(
            session.scalars(stmt.with_only_columns(EntityPair.id)),
            key=lambda pair_id: random_order_key(random_seed, pair_id),
        )
        page = matching[offset : offset + limit]
        position = {pair_id: i for i, pair_id in enumerate(page)}
        stmt, limit, offset = stmt.where(EntityPair.id.in_(page)), len(page), 0
    order = {
        "uncertainty": [prediction.margin.asc().nulls_last()],
        "entropy": [prediction.entropy.desc().nulls_last()],
        # measured reliance first, then the posts without an image it was computed for (0 by definition), then the
        # pairs it was not computed for
        "image_reliance": [reliance_score.desc().nulls_last(), reliance.image_reliance.desc().nulls_last()],
        "disagreement": [
            case(
                (prediction.predicted_label.is_(None), 2),
                (prediction.predicted_label != EntityPair.gold_label, 0),
                else_=1,
            ),
            prediction.confidence.desc().nulls_last(),
        ],
        "label_error": [out_of_sample.rank.asc().nulls_last()],
        "source_order": [Dataset.name, EntityPair.split, EntityPair.source_line],
        "random": [],
    }[sort]
    stmt = stmt.order_by(*order, EntityPair.id).limit(limit).offset(offset)
    items = [
        QueueItem(
            pair_id=row[0],
            dataset=row.dataset,
            split=row.split,
            source_line=row.source_line,
            text=row.text,
            head_name=row.head_name,
            tail_name=row.tail_name,
            gold_label=row.gold_label,
            has_image=row.has_image,
            status=row.status or "unreviewed",
            current_label=row.label,
            annotator=row.annotator,
            revision=row.revision or 0,
            predicted_label=row.predicted_label,
            confidence=row.confidence,
            margin=row.margin,
            entropy=row.entropy,
            image_reliance=row.image_reliance,
            suspect_rank=row.rank,
            suggested_label=row.suggested_label,
            suggested_probability=row.suggested_probability,
            given_probability=row.given_probability,
            label_quality=row.quality,
            flagged=row.flagged,
        )
        for row in session.execute(stmt)
    ]
    if sort == "random":
        items.sort(key=lambda item: position[item.pair_id])
    return items


def progress(
    session: Session, dataset: str | None = None, split: str | None = None, pair_ids: list[int] | None = None
) -> dict[str, int]:
    """Pairs per current status (every status key present, "total" included); of `pair_ids` only when given."""
    current = current_annotation_alias()
    status_column = func.coalesce(current.status, "unreviewed")
    stmt = join_current_annotation(
        select(status_column, func.count())
        .select_from(EntityPair)
        .join(Dataset, Dataset.id == EntityPair.dataset_id),
        current,
    ).group_by(status_column)
    if dataset:
        stmt = stmt.where(Dataset.name == dataset)
    if split:
        stmt = stmt.where(EntityPair.split == split)
    if pair_ids is not None:
        stmt = stmt.where(EntityPair.id.in_(pair_ids))
    counts = {status: 0 for status in ANNOTATION_STATUSES}
    counts.update({status: count for status, count in session.execute(stmt)})
    counts["total"] = sum(counts[status] for status in ANNOTATION_STATUSES)
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
