"""Datasets, posts and entity pairs as imported: creation, look-ups and counts, and the check that a
filter names something the store has (a typo must not pass as an empty result).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.errors import LabelStoreError
from db.models import Annotation, Dataset, EntityPair, Post


def get_or_create_dataset(
    session: Session, name: str, source_path: str | None = None, label_map: dict[str, int] | None = None
) -> Dataset:
    dataset = session.scalar(select(Dataset).where(Dataset.name == name))
    if dataset is None:
        dataset = Dataset(name=name, source_path=source_path, label_map=label_map)
        session.add(dataset)
        session.flush()
    elif label_map is not None and dataset.label_map not in (None, label_map):
        raise LabelStoreError(
            f"dataset {name!r} already exists with a different label map; import under another --dataset name"
        )
    elif label_map is not None and dataset.label_map is None:
        dataset.label_map = label_map
    return dataset


def list_datasets(session: Session) -> list[Dataset]:
    return list(session.scalars(select(Dataset).order_by(Dataset.name)))


def require_dataset(session: Session, name: str) -> Dataset:
    """The dataset called `name`, or a LabelStoreError that names it and the ones there are."""
    dataset = session.scalar(select(Dataset).where(Dataset.name == name))
    if dataset is None:
        known = ", ".join(session.scalars(select(Dataset.name).order_by(Dataset.name))) or "none yet"
        raise LabelStoreError(f"no dataset named {name!r} in the label store (datasets: {known})")
    return dataset


def require_pair(session: Session, pair_id: int) -> EntityPair:
    pair = session.get(EntityPair, pair_id)
    if pair is None:
        raise LabelStoreError(f"no entity pair with id {pair_id}")
    return pair


def check_filter_names(
    session: Session,
    dataset: str | None = None,
    split: str | None = None,
    annotator: str | None = None,
    label: str | None = None,
) -> None:
    """Refuse a --dataset, --split, --annotator or --label the store does not have: a typo must not pass as an empty
    result (an export would replace a good file with an empty one)."""
    if dataset is not None and session.scalar(select(Dataset.id).where(Dataset.name == dataset)) is None:
        names = ", ".join(dataset_row.name for dataset_row in list_datasets(session)) or "none"
        raise LabelStoreError(f"--dataset {dataset!r}: no such dataset in the store (it has: {names})")
    if split is not None:
        stmt = select(EntityPair.split).distinct()
        if dataset is not None:
            stmt = stmt.join(Dataset, Dataset.id == EntityPair.dataset_id).where(Dataset.name == dataset)
        splits = sorted(session.scalars(stmt))
        if split not in splits:
            raise LabelStoreError(
                f"--split {split!r}: no such split (there are: {', '.join(splits) or 'none'})"
            )
    if (
        annotator is not None
        and session.scalar(select(Annotation.id).where(Annotation.annotator == annotator).limit(1)) is None
    ):
        raise LabelStoreError(
            f"--annotator {annotator!r}: nobody of that name has decided anything in the store"
        )
    if label is not None:
        known = any(label in (label_map or {}) for label_map in session.scalars(select(Dataset.label_map)))
        known = known or session.scalar(select(EntityPair.id).where(EntityPair.gold_label == label).limit(1))
        known = known or session.scalar(select(Annotation.id).where(Annotation.label == label).limit(1))
        if not known:
            raise LabelStoreError(f"--label {label!r}: no dataset in the store has this label")


def count_pairs(session: Session) -> int:
    """Entity pairs in the store, every dataset and split."""
    return session.scalar(select(func.count()).select_from(EntityPair)) or 0


def get_post(session: Session, post_id: int) -> Post:
    post = session.get(Post, post_id)
    if post is None:
        raise LabelStoreError(f"no post with id {post_id}")
    return post


def pairs_with_posts(session: Session, pair_ids: list[int]) -> dict[int, tuple[EntityPair, Post]]:
    """pair id -> (pair, its post) for many pairs in one query; unknown ids are absent."""
    rows = session.execute(
        select(EntityPair, Post).join(Post, Post.id == EntityPair.post_id).where(EntityPair.id.in_(pair_ids))
    ).all()
    return {pair.id: (pair, post) for pair, post in rows}


def other_pairs_with_image(session: Session, pair_id: int, limit: int) -> list[int]:
    """Up to `limit` other pairs of the same dataset whose post has an image, in id order."""
    dataset_id = select(EntityPair.dataset_id).where(EntityPair.id == pair_id).scalar_subquery()
    return list(
        session.scalars(
            select(EntityPair.id)
            .join(Post, Post.id == EntityPair.post_id)
            .where(EntityPair.dataset_id == dataset_id, Post.has_image, EntityPair.id != pair_id)
            .order_by(EntityPair.id)
            .limit(limit)
        )
    )


def image_counts(session: Session, dataset: str) -> tuple[int, int]:
    """(posts with an image, posts) of the dataset called `dataset`; (0, 0) when it has none or does not exist.
    The training recipe is chosen from it (app.services.model_jobs.default_recipe)."""
    with_image, total = session.execute(
        select(func.count(Post.id).filter(Post.has_image), func.count(Post.id))
        .join(Dataset, Dataset.id == Post.dataset_id)
        .where(Dataset.name == dataset)
    ).one()
    return int(with_image or 0), int(total or 0)
