"""Reads for comparing two model versions: their stored predictions on the same pairs."""

from __future__ import annotations

from sqlalchemy import and_, select
from sqlalchemy.orm import Session, aliased

from db.models import EntityPair, Post, Prediction
from db.provenance import DEFAULT_PREDICTION_METHOD


def prediction_changes(
    session: Session,
    version_key_a: int,
    version_key_b: int,
    split: str = "val",
    method: str = DEFAULT_PREDICTION_METHOD,
) -> tuple[int, list[dict]]:
    """(pairs of `split` both versions scored, those whose predicted label differs: pair, gold, a, b, text)."""
    prediction_a, prediction_b = aliased(Prediction), aliased(Prediction)
    rows = session.execute(
        select(
            EntityPair.id,
            EntityPair.gold_label,
            prediction_a.predicted_label,
            prediction_b.predicted_label,
            Post.text,
        )
        .join(
            prediction_a,
            and_(
                prediction_a.pair_id == EntityPair.id,
                prediction_a.model_version_id == version_key_a,
                prediction_a.method == method,
            ),
        )
        .join(
            prediction_b,
            and_(
                prediction_b.pair_id == EntityPair.id,
                prediction_b.model_version_id == version_key_b,
                prediction_b.method == method,
            ),
        )
        .join(Post, Post.id == EntityPair.post_id)
        .where(EntityPair.split == split)
        .order_by(EntityPair.id)
    ).all()
    changed = [
        {"pair": pair_id, "gold": gold, "before": label_a, "after": label_b, "text": text[:120]}
        for pair_id, gold, label_a, label_b, text in rows
        if label_a != label_b
    ]
    return len(rows), changed


def scored_pairs(
    session: Session, version_key: int, split: str = "val", method: str = DEFAULT_PREDICTION_METHOD
) -> int:
    return len(
        session.scalars(
            select(Prediction.id)
            .join(EntityPair, EntityPair.id == Prediction.pair_id)
            .where(
                Prediction.model_version_id == version_key,
                Prediction.method == method,
                EntityPair.split == split,
            )
        ).all()
    )
