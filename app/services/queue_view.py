"""What the Queue page shows, without Streamlit: the filters' choices, the model the predictions come from, the
pairs in the chosen order with the review progress, and the table's rows with every missing value said in words.

    queue_context(sessions) -> QueueContext                                   datasets, filter values, active model
    queue_page(sessions, queue_filter, sort, limit, reliance) -> QueuePage    progress counts and the pairs shown
    queue_columns(items) -> dict[str, list]                                   the table, column by column
    missing_reliance_reason(items, reliance, active) -> str | None            why no pair shown has an image reliance
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import sessionmaker

from app.services.model_status import ModelStatus, model_status
from app.services.store import filter_options
from db import review_queue as queue_rules
from db.datasets import list_datasets
from db.model_versions import ModelVersionInfo, active_model
from db.models import ANNOTATION_STATUSES
from db.review_queue import (
    QUEUE_SORTS,
    QueueFilter,
    RelianceSource,
    image_reliance_source,
    progress,
    review_queue,
)

__all__ = ["ANNOTATION_STATUSES", "QUEUE_SORTS", "QueueFilter", "default_sort", "queue_context", "queue_page"]

SORT_NAMES = {
    "uncertainty": "uncertainty: smallest top-2 margin first",
    "entropy": "uncertainty: highest entropy first",
    "image_reliance": "image reliance: highest first",
    "disagreement": "disagreement with the gold label first",
    "label_error": "likely label error first (a model that never saw the pair)",
    "source_order": "source order",
    "random": "random (a seeded shuffle: the baseline)",
}


def default_sort() -> str:
    """The queue's default order (db.review_queue.DEFAULT_QUEUE_SORT, read when asked)."""
    return queue_rules.DEFAULT_QUEUE_SORT


@dataclass(frozen=True)
class QueueContext:
    datasets: list[str]
    options: dict[str, list[str]]  # split, gold_label, annotator values present in the store
    active: ModelVersionInfo | None
    status: ModelStatus  # the sidebar's source: what is active and what is training
    reliance_source: (
        RelianceSource | None
    )  # whose image reliance the queue shows (the active one when it has)


def queue_context(sessions: sessionmaker) -> QueueContext:
    with sessions() as session:
        active = active_model(session)
        return QueueContext(
            [dataset.name for dataset in list_datasets(session)],
            filter_options(session),
            active,
            model_status(session),
            image_reliance_source(session, active.key if active else None),
        )


@dataclass(frozen=True)
class QueuePage:
    counts: dict[str, int]  # pairs per current status, "total" included
    items: list[Any]  # db.review_queue's queue items, in the chosen order


def queue_page(
    sessions: sessionmaker, queue_filter: QueueFilter, sort: str, limit: int, reliance: RelianceSource | None
) -> QueuePage:
    with sessions() as session:
        return QueuePage(
            progress(session, queue_filter.dataset, queue_filter.split),
            review_queue(
                session,
                queue_filter,
                sort=sort,
                limit=limit,
                reliance_version_key=reliance.key if reliance else None,
            ),
        )


def percent(probability: float | None) -> float | None:
    """A probability in percent (0..100), as the Queue's columns show it with one decimal."""
    return None if probability is None else 100 * probability


def queue_columns(items: list) -> dict[str, list]:
    """The Queue table's columns. "None" is an MNRE relation: a missing gold label, prediction or label is said in
    words."""
    return {
        "pair": [i.pair_id for i in items],
        "split": [i.split for i in items],
        "text": [i.text for i in items],
        "head": [i.head_name for i in items],
        "tail": [i.tail_name for i in items],
        "gold": [i.gold_label if i.gold_label is not None else "no gold label" for i in items],
        "predicted": [i.predicted_label if i.predicted_label is not None else "no prediction" for i in items],
        "confidence": [percent(i.confidence) for i in items],
        "margin": [i.margin for i in items],
        "entropy": [i.entropy for i in items],
        "image reliance": [i.image_reliance for i in items],
        "status": [i.status for i in items],
        # the label in effect, by the store's one rule (the label every export writes); "no label": dropped
        "label": [i.label_in_effect if i.label_in_effect is not None else "no label" for i in items],
        "annotator": [i.annotator for i in items],
        "image": [i.has_image for i in items],
        # the latest Find label errors run: what a model that never saw the pair says, and how sure
        "suspect rank": [i.suspect_rank for i in items],
        "out-of-sample": [
            f"{i.suggested_label} ({i.suggested_probability:.0%})"
            if i.suggested_label is not None
            else "not scored"
            for i in items
        ],
        "p(gold) out-of-sample": [percent(i.given_probability) for i in items],
    }


def missing_reliance_reason(
    items: list,
    reliance: RelianceSource | None,
    active: ModelVersionInfo | None,
    name: Callable[[str], str] = str,
) -> str | None:
    """Why no pair shown has an image reliance (None when one has): said on the page rather than an empty column
    and a sort that silently falls back to pair order. `name` writes a version id (the page escapes it)."""
    if any(i.image_reliance is not None for i in items):
        return None
    if items and not any(i.has_image for i in items):
        return "no post shown has an image: reliance is 0 by definition there"
    if reliance is not None:
        return f"{name(reliance.version_id)} computed it for other pairs only"
    if active is not None and active.variant == "text_only":
        return (
            f"the active model {name(active.version_id)} is text-only: it never reads the image, and no image model has "
            "computed one (Inspect, through an image model's version, computes it per post; on Models, an image "
            "model's Explain the top of the queue fills it)"
        )
    return (
        "no model version has computed one yet (Inspect computes it per post; the worker for the top of the queue "
        "after each activation; or on Models: Explain the top of the queue)"
    )


def reliance_source_text(
    reliance: RelianceSource, active: ModelVersionInfo | None, name: Callable[[str], str] = str
) -> str:
    """Whose image reliance the column shows, how many pairs it covers so far, and why some are blank."""
    whose = (
        "the active model" if active is not None and reliance.key == active.key else "not the active model"
    )
    pairs = f"{reliance.pairs:,} pair{'' if reliance.pairs == 1 else 's'} of posts with an image"
    return (
        f"Image reliance as computed by {name(reliance.version_id)} ({whose}; {pairs} so far; blank for a post "
        "without one)."
    )
