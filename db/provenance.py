"""Model versions and what they produced: registration, activation, predictions, crops, explanations and
evaluation runs, each row naming the model version (or source), method and settings that made it."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import EntityPair, GroundedCrop, ModelVersion, Prediction
from db.queries import DEFAULT_PREDICTION_METHOD

# the order scoring works through the splits: val first (the split reviewers start with), then the rest
SCORING_SPLIT_ORDER = {"val": 0, "test": 1, "new": 2, "train": 3}


def model_version_or_none(session: Session, version_id: str) -> ModelVersion | None:
    """The registered version with this version id string, None when it is not registered."""
    return session.scalar(select(ModelVersion).where(ModelVersion.version_id == version_id))


def latest_model_version(session: Session) -> ModelVersion | None:
    """The most recently registered model version, active or not."""
    return session.scalar(select(ModelVersion).order_by(ModelVersion.created_at.desc()).limit(1))


def pairs_without_prediction(
    session: Session, version_key: int, method: str = DEFAULT_PREDICTION_METHOD
) -> list[int]:
    """Pair ids the model version (its integer key) has not scored yet, in SCORING_SPLIT_ORDER, then id order."""
    done = select(Prediction.pair_id).where(
        Prediction.model_version_id == version_key, Prediction.method == method
    )
    rows = session.execute(
        select(EntityPair.id, EntityPair.split).where(EntityPair.id.not_in(done)).order_by(EntityPair.id)
    ).all()
    return [
        pair_id
        for pair_id, _ in sorted(rows, key=lambda row: (SCORING_SPLIT_ORDER.get(row.split, 2), row.id))
    ]


def crops_of_posts(session: Session, post_ids: Iterable[int]) -> dict[int, list[GroundedCrop]]:
    """post id -> its grounded crops in storage order, for many posts in one query (posts without crops absent)."""
    crops: dict[int, list[GroundedCrop]] = {}
    for crop in session.scalars(
        select(GroundedCrop).where(GroundedCrop.post_id.in_(list(post_ids))).order_by(GroundedCrop.id)
    ):
        crops.setdefault(crop.post_id, []).append(crop)
    return crops
