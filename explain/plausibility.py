"""Plausibility: does an explanation point where the evidence is? Every explanation method the app shows, scored
against rationales (the words and the image box that say why a label holds).

Plausibility and faithfulness (explain.faithfulness) are different questions: a faithful explanation says what the
model used, a plausible one agrees with a person's (or the data generator's) reason. They are reported side by side,
never blended (Carton et al., 2020).

Token level, ERASER (DeYoung et al., ACL 2020), per post over the candidate words (the post's words without the head
and tail entities; entity markers, [CLS] and [SEP] are never words), then averaged over posts:
    token_f1      precision / recall / F1 of the top-k words by score, k = the rationale's length
    iou_f1        the top-k words as contiguous spans (in word order; an excluded word breaks a span); a predicted span
                  matches a gold span when |intersection| / |union| >= 0.5; F1 of matched predicted and gold spans
    auprc         average precision of the soft (signed) scores against the marked words
Image level, on a map over the image in pixels, per post, then averaged:
    pointing_game the map's maximum lies inside the evidence box (Zhang et al., ECCV 2016; their tolerance of 15 px
                  is a parameter, 0 here by default); a maximum shared by several pixels (a plateau, a constant map)
                  hits when most of those pixels lie inside the box
    mass_in_box   the share of the map's positive mass inside the box (0 when the map has no positive mass)

The metric functions take numpy arrays and return floats (no torch). The rest of the module scores the methods of
explain/ on a model and posts with rationales (model.synthetic.read_rationales) and is what
`python -m explain.plausibility` and benchmarks/bench_plausibility.py call.
"""

from __future__ import annotations

import numpy as np

IOU_THRESHOLD = 0.5


# ----------------------------------------------------------------------------------------------------------------
# Token level (ERASER)


def _as_masks(scores, gold, candidates) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    gold = np.asarray(gold, dtype=bool)
    candidates = (
        np.ones(len(scores), dtype=bool) if candidates is None else np.asarray(candidates, dtype=bool)
    )
    if not (scores.shape == gold.shape == candidates.shape) or scores.ndim != 1:
        raise ValueError(
            f"scores, gold and candidates must be 1-d of one length: {scores.shape}, {gold.shape}, "
            f"{candidates.shape}"
        )
    if (gold & ~candidates).any():
        raise ValueError("a gold word is not a candidate (entities are not evidence here)")
    if not np.isfinite(scores[candidates]).all():
        raise ValueError("candidate scores must be finite")
    return scores, gold, candidates


def top_k_mask(scores, k: int, candidates=None) -> np.ndarray:
    """(N,) bool: the k candidates with the highest scores; ties go to the earlier position (a stable sort)."""
    scores = np.asarray(scores, dtype=np.float64)
    candidates = (
        np.ones(len(scores), dtype=bool) if candidates is None else np.asarray(candidates, dtype=bool)
    )
    index = np.flatnonzero(candidates)
    order = index[np.argsort(-scores[index], kind="stable")][:k]
    mask = np.zeros(len(scores), dtype=bool)
    mask[order] = True
    return mask


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def token_f1(scores, gold, candidates=None) -> dict[str, float]:
    """Precision, recall and F1 of the top-k candidates (k = number of gold words) against the gold words."""
    scores, gold, candidates = _as_masks(scores, gold, candidates)
    k = int(gold.sum())
    if k == 0:
        raise ValueError("the rationale marks no word")
    predicted = top_k_mask(scores, k, candidates)
    hits = int((predicted & gold).sum())
    precision, recall = hits / int(predicted.sum()), hits / k
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def spans(mask, candidates=None) -> list[tuple[int, int]]:
    """Maximal runs [start, end) of True in mask; a position that is not a candidate ends a run."""
    mask = np.asarray(mask, dtype=bool)
    if candidates is not None:
        mask = mask & np.asarray(candidates, dtype=bool)
    out, start = [], None
    for i, on in enumerate(mask):
        if on and start is None:
            start = i
        elif not on and start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(mask)))
    return out


def span_iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union else 0.0


def iou_f1(scores, gold, candidates=None, threshold: float = IOU_THRESHOLD) -> dict[str, float]:
    """ERASER's IOU F1: the top-k candidates (k = number of gold words) as spans; a predicted span counts when its
    IOU with some gold span is >= threshold, a gold span when some predicted span reaches it."""
    scores, gold, candidates = _as_masks(scores, gold, candidates)
    k = int(gold.sum())
    if k == 0:
        raise ValueError("the rationale marks no word")
    predicted = spans(top_k_mask(scores, k, candidates), candidates)
    marked = spans(gold, candidates)
    pred_hits = sum(any(span_iou(p, g) >= threshold for g in marked) for p in predicted)
    gold_hits = sum(any(span_iou(p, g) >= threshold for p in predicted) for g in marked)
    precision, recall = pred_hits / len(predicted), gold_hits / len(marked)
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def auprc(scores, gold, candidates=None) -> float:
    """Average precision of the candidates' soft scores against the gold words (sklearn's
    average_precision_score: the step-wise area under the precision-recall curve)."""
    from sklearn.metrics import average_precision_score

    scores, gold, candidates = _as_masks(scores, gold, candidates)
    if not gold.any():
        raise ValueError("the rationale marks no word")
    return float(average_precision_score(gold[candidates], scores[candidates]))


def token_metrics(scores, gold, candidates=None) -> dict[str, float]:
    """{'token_f1', 'iou_f1', 'auprc'} of one post."""
    return {
        "token_f1": token_f1(scores, gold, candidates)["f1"],
        "iou_f1": iou_f1(scores, gold, candidates)["f1"],
        "auprc": auprc(scores, gold, candidates),
    }


# ----------------------------------------------------------------------------------------------------------------
# Image level


def _box_mask(shape: tuple[int, int], box, tolerance: int = 0) -> np.ndarray:
    """(H, W) bool: pixels inside box = (x0, y0, x1, y1), right and bottom exclusive (PIL's crop box), grown by
    tolerance pixels on each side and clipped to the image."""
    height, width = shape
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    if not (x0 < x1 and y0 < y1):
        raise ValueError(f"box {box} is empty (x0 < x1 and y0 < y1 needed)")
    mask = np.zeros((height, width), dtype=bool)
    mask[max(0, y0 - tolerance) : max(0, y1 + tolerance), max(0, x0 - tolerance) : max(0, x1 + tolerance)] = (
        True
    )
    return mask


def _as_map(heatmap) -> np.ndarray:
    heatmap = np.asarray(heatmap, dtype=np.float64)
    if heatmap.ndim != 2 or not np.isfinite(heatmap).all():
        raise ValueError(f"a heat map is a finite (height, width) array, got shape {heatmap.shape}")
    return heatmap


def pointing_game(heatmap, box, tolerance: int = 0) -> bool:
    """True when the map's maximum lies inside box (image pixels, (x0, y0, x1, y1)); with several maximal pixels,
    when more than half of them do."""
    heatmap = _as_map(heatmap)
    inside = _box_mask(heatmap.shape, box, tolerance)
    top = heatmap == heatmap.max()
    return bool(2 * int((top & inside).sum()) > int(top.sum()))


def mass_in_box(heatmap, box) -> float:
    """Share of the map's positive mass inside box; 0.0 when no pixel is positive."""
    heatmap = _as_map(heatmap)
    positive = np.clip(heatmap, 0.0, None)
    total = float(positive.sum())
    if total == 0.0:
        return 0.0
    return float(positive[_box_mask(heatmap.shape, box)].sum() / total)


def box_area_share(box, image_size: tuple[int, int]) -> float:
    """The box's share of the image (width, height): what a uniformly random point hits."""
    width, height = image_size
    return float(_box_mask((height, width), box).mean())


def upsample_grid(grid, image_size: tuple[int, int]) -> np.ndarray:
    """A (g, g) map over the whole image (the 7x7 grid of the global image) -> (height, width) by bilinear
    interpolation, as explain.attribution.VisualAttribution.heatmap draws it over the image. The image is fed to
    the model resized whole to a square (model.visual_features.to_tensor), so grid cell (r, c) covers the same share
    of the original image in pixels at any size."""
    import torch
    import torch.nn.functional as F

    width, height = image_size
    t = torch.from_numpy(np.asarray(grid, dtype=np.float64))[None, None]
    return F.interpolate(t, size=(int(height), int(width)), mode="bilinear", align_corners=False)[
        0, 0
    ].numpy()


def image_metrics(heatmap, box) -> dict[str, float]:
    """{'pointing_game' (0 or 1), 'mass_in_box'} of one post's map over the image."""
    return {"pointing_game": float(pointing_game(heatmap, box)), "mass_in_box": mass_in_box(heatmap, box)}


# ----------------------------------------------------------------------------------------------------------------
# Words: word-piece scores -> one score per word of the post


def word_scores(piece_scores, word_index: list[int], n_words: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_words,) sum of each word's piece scores, and (n_words,) bool: the word was read by the model (a word cut
    by truncation has no piece). Positions with word index -1 ([CLS], [SEP], entity markers) belong to no word."""
    piece_scores = np.asarray(piece_scores, dtype=np.float64)
    if len(piece_scores) != len(word_index):
        raise ValueError(f"{len(piece_scores)} piece scores for {len(word_index)} positions")
    scores, seen = np.zeros(n_words), np.zeros(n_words, dtype=bool)
    for score, w in zip(piece_scores, word_index, strict=True):
        if w >= 0:
            scores[w] += score
            seen[w] = True
    return scores, seen


def candidate_words(n_words: int, entity_spans: list[tuple[int, int]], seen=None) -> np.ndarray:
    """(n_words,) bool: words that can be evidence: not inside an entity span [start, end) (entities are not
    evidence by default) and, when `seen` is given, read by the model."""
    mask = np.ones(n_words, dtype=bool) if seen is None else np.asarray(seen, dtype=bool).copy()
    for start, end in entity_spans:
        mask[start:end] = False
    return mask
