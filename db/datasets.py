"""Datasets, posts and entity pairs as imported: look-ups and counts."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import EntityPair, Post
from db.queries import LabelStoreError


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
