"""Model versions and what they produced: registration, activation, predictions, crops, explanations and
evaluation runs, each row naming the model version (or source), method and settings that made it.

Functions here return ORM rows for db/'s own use; the app reads a model version as db.model_versions
.ModelVersionInfo (one frozen object with its val metrics and training origin typed).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from db.datasets import require_pair
from db.errors import LabelStoreError
from db.models import (
    EVALUATION_SETTINGS,
    EntityPair,
    EvaluationRun,
    Explanation,
    GroundedCrop,
    ModelVersion,
    Post,
    Prediction,
)
from db.roles import Actor, require_admin
from model.uncertainty import uncertainty

DEFAULT_PREDICTION_METHOD = "forward"


def active_model_version(session: Session) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.is_active))


def register_model_version(
    session: Session,
    version_id: str,
    path: str | Path,
    variant: str,
    metrics: dict[str, Any] | None = None,
    parent_version_id: str | None = None,
    created_by: str | None = None,
    settings: dict[str, Any] | None = None,
    architecture: str | None = None,
    text_encoder: str | None = None,
) -> ModelVersion:
    """Register a checkpoint; registering the same version_id and path again returns the existing row.

    `architecture` and `text_encoder` are the checkpoint's config.json values (register_checkpoint reads them);
    None records them as unknown."""
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
        architecture=architecture,
        text_encoder=text_encoder,
    )
    session.add(version)
    session.flush()
    return version


def register_checkpoint(session: Session, model_dir: str | Path, **kwargs: Any) -> ModelVersion:
    """Register a checkpoint folder from its config.json (version_id, variant, architecture, text encoder);
    metrics/parent as keywords."""
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
    text_encoder = config.get("text_encoder")
    return register_model_version(
        session,
        version_id,
        model_dir.resolve(),
        str(variant),
        architecture=config["architecture"],
        text_encoder=text_encoder if isinstance(text_encoder, str) else None,
        **kwargs,
    )


def find_model_version(session: Session, version_id: str) -> ModelVersion:
    version = session.scalar(select(ModelVersion).where(ModelVersion.version_id == version_id))
    if version is None:
        raise LabelStoreError(f"model version {version_id!r} is not registered")
    return version


def set_active(session: Session, version_id: str, actor: Actor | None = None) -> ModelVersion:
    """Make one model version the one whose predictions the queue shows (admins only, see db.roles)."""
    require_admin(actor, f"activate model version {version_id}")
    version = find_model_version(session, version_id)
    session.execute(update(ModelVersion).where(ModelVersion.id != version.id).values(is_active=False))
    version.is_active = True
    session.flush()
    return version


def save_predictions(
    session: Session,
    version_key: int,
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
                "model_version_id": version_key,
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
    pair_ids = [row["pair_id"] for row in values]
    for start in range(0, len(pair_ids), 5000):  # stay under the engines' bound-parameter limits
        session.execute(
            delete(Prediction).where(
                Prediction.model_version_id == version_key,
                Prediction.method == method,
                Prediction.pair_id.in_(pair_ids[start : start + 5000]),
            )
        )
    session.execute(insert(Prediction), values)
    return len(values)


def set_image_reliance(
    session: Session, pair_id: int, version_key: int, score: float, method: str = DEFAULT_PREDICTION_METHOD
) -> bool:
    """Keep a pair's image reliance under a model version (Inspect's test, explain.reliance) on that version's stored
    prediction of the pair, where the Queue's image-reliance sort reads it; False when the version has not scored
    the pair (nothing to keep it on)."""
    result = session.execute(
        update(Prediction)
        .where(
            Prediction.pair_id == pair_id,
            Prediction.model_version_id == version_key,
            Prediction.method == method,
        )
        .values(image_reliance=float(score))
    )
    return bool(result.rowcount)


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
        x0, y0, x1, y1 = (float(coordinate) for coordinate in box) if box is not None else (None,) * 4
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
    version_key: int | None = None,
    created_by: str | None = None,
) -> Explanation:
    require_pair(session, pair_id)
    explanation = Explanation(
        pair_id=pair_id,
        method=method,
        summary=summary,
        settings=settings,
        model_version_id=version_key,
        created_by=created_by,
    )
    session.add(explanation)
    session.flush()
    return explanation


def find_explanation(
    session: Session,
    pair_id: int,
    method: str,
    settings: dict[str, Any] | None,
    version_key: int | None,
) -> Explanation | None:
    """The newest explanation stored for (pair, model version, method, settings), or None. Settings are compared as
    JSON values in Python (JSON equality is not portable SQL); a pair has a handful of rows per method."""
    rows = session.scalars(
        select(Explanation)
        .where(
            Explanation.pair_id == pair_id,
            Explanation.method == method,
            Explanation.model_version_id == version_key,
        )
        .order_by(Explanation.created_at.desc(), Explanation.id.desc())
    )
    return next((row for row in rows if (row.settings or None) == (settings or None)), None)


def save_evaluation_run(
    session: Session,
    variant: str,
    setting: str,
    split: str,
    metrics: dict[str, Any],
    version_key: int | None = None,
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
        model_version_id=version_key,
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
