"""Query strategies that pick from a model's representations rather than from a stored score: the diversity half of
active learning. The score-based orders (margin, entropy, image reliance, random, dataset order) are the Queue's
sorts (db.review_queue); app.services.annotation_loop compares them all.
"""

from __future__ import annotations

import numpy as np


def kmeans_positions(embeddings: np.ndarray, n: int, seed: int) -> list[int]:
    """BERT-KM (Yuan et al., EMNLP 2020) through small-text's EmbeddingKMeans: k-means with k = n over the
    L2-normalised rows, then the row nearest each centre. Seeded: the same rows for the same seed."""
    from small_text.query_strategies import EmbeddingKMeans

    rows = np.arange(len(embeddings))
    if n >= len(rows):
        return rows.tolist()
    # sklearn's KMeans inside small-text draws its initial centres from numpy's global generator
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        strategy = EmbeddingKMeans(normalize=True)
        picked = strategy.query(
            None, rows, rows, np.zeros(0, dtype=int), np.zeros(0, dtype=int), n=n, embeddings=embeddings
        )
    finally:
        np.random.set_state(state)
    return [int(i) for i in picked]
