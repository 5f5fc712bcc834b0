"""Label-issue scores: how likely each given label is wrong, from out-of-sample probabilities (model.crossfit).

The scores come from cleanlab (confident learning; Northcutt et al., JAIR 2021), not hand-written:
`cleanlab.rank.get_label_quality_scores` (low = likely wrong) and `cleanlab.filter.find_label_issues` (the set of
pairs confident learning flags). The per-pair loss -log p(given label) is the simple baseline of Chong, Hong and
Manning (EMNLP 2022). On out-of-sample probabilities the loss and cleanlab's plain self-confidence give the same
order (the loss is -log of it); both are kept because the loss is also used on in-sample probabilities.

Imports no torch: the label store, the worker's merge step and the benchmarks call it with numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# cleanlab's ranking methods offered; DEFAULT_METHOD orders the Queue's "likely label error" sort
# (benchmarks/label_errors.md measures each on noisy copies of MNRE v2 train)
QUALITY_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
DEFAULT_METHOD = "self_confidence"
# probabilities are clipped before the log so that a model's hard zero gives a large finite loss
MIN_PROBABILITY = 1e-12


@dataclass
class LabelIssues:
    """Per pair, in the order given: the scores, the flag and what a model that never saw the pair suggests."""

    quality: np.ndarray  # cleanlab label quality of the given label under `method` (low = likely wrong)
    method: str
    adjusted: bool  # quality computed with cleanlab's per-class threshold adjustment
    scores: dict[str, np.ndarray]  # every QUALITY_METHODS score, and "loss"
    flagged: np.ndarray  # bool: cleanlab.filter.find_label_issues
    given_probability: np.ndarray
    suggested: np.ndarray  # index of the most probable label
    suggested_probability: np.ndarray

    def ranking(self) -> np.ndarray:
        """Indices from the most to the least suspect (lowest quality first; ties by position)."""
        return np.lexsort((np.arange(len(self.quality)), self.quality))


def _check(labels: np.ndarray, pred_probs: np.ndarray) -> None:
    if pred_probs.ndim != 2 or len(labels) != len(pred_probs):
        raise ValueError(f"{len(labels)} labels against probabilities of shape {pred_probs.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= pred_probs.shape[1]):
        raise ValueError("a label index is outside the probability columns")
    if not np.isfinite(pred_probs).all():
        raise ValueError(
            "probabilities contain NaN or infinity (a record without an out-of-sample prediction?)"
        )


def loss_scores(labels, pred_probs) -> np.ndarray:
    """-log p(given label): high = likely wrong (Chong et al., 2022)."""
    labels, pred_probs = np.asarray(labels, dtype=np.int64), np.asarray(pred_probs, dtype=np.float64)
    _check(labels, pred_probs)
    given = pred_probs[np.arange(len(labels)), labels]
    return -np.log(np.clip(given, MIN_PROBABILITY, 1.0))


def find_label_issues(
    labels, pred_probs, method: str = DEFAULT_METHOD, adjust_pred_probs: bool = False
) -> LabelIssues:
    """cleanlab's scores and flags for `labels` (label indices) under out-of-sample `pred_probs` (N x labels).

    Labels that no pair carries are allowed (their columns only ever suggest); probabilities are renormalised
    over the columns as cleanlab expects rows that sum to 1.
    """
    from cleanlab.filter import find_label_issues as cleanlab_find_label_issues
    from cleanlab.rank import get_label_quality_scores

    if method not in QUALITY_METHODS:
        raise ValueError(f"method: {method!r} is not one of {', '.join(QUALITY_METHODS)}")
    labels, pred_probs = np.asarray(labels, dtype=np.int64), np.asarray(pred_probs, dtype=np.float64)
    _check(labels, pred_probs)
    pred_probs = np.clip(pred_probs, 0.0, 1.0)
    pred_probs = pred_probs / pred_probs.sum(axis=1, keepdims=True)
    scores = {
        name: get_label_quality_scores(labels, pred_probs, method=name, adjust_pred_probs=adjust_pred_probs)
        for name in QUALITY_METHODS
    }
    scores["loss"] = loss_scores(labels, pred_probs)
    # one process: the worker and the page's threads must not fork
    flagged = cleanlab_find_label_issues(labels, pred_probs, filter_by="prune_by_noise_rate", n_jobs=1)
    rows = np.arange(len(labels))
    suggested = pred_probs.argmax(axis=1)
    return LabelIssues(
        quality=scores[method],
        method=method,
        adjusted=adjust_pred_probs,
        scores=scores,
        flagged=np.asarray(flagged, dtype=bool),
        given_probability=pred_probs[rows, labels],
        suggested=suggested,
        suggested_probability=pred_probs[rows, suggested],
    )


def average_precision(is_error: np.ndarray, suspicion: np.ndarray) -> float:
    """Area under the precision-recall curve of ranking by `suspicion` (high first) against the known errors."""
    from sklearn.metrics import average_precision_score

    is_error = np.asarray(is_error, dtype=bool)
    if not is_error.any():
        return float("nan")
    return float(average_precision_score(is_error, np.asarray(suspicion, dtype=np.float64)))


def precision_at(is_error: np.ndarray, order: np.ndarray, k: int) -> float:
    """Share of known errors among the first k of `order` (indices, most suspect first)."""
    if k <= 0:
        return float("nan")
    return float(np.asarray(is_error, dtype=bool)[np.asarray(order)[:k]].mean())
