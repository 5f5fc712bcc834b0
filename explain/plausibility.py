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
    pointing_game the map's maximum lies inside the evidence box (Zhang et al., ECCV 2016); a maximum shared by
                  several pixels (a plateau, a constant map) hits when most of those pixels lie inside the box;
                  pointing_game_15px: within 15 pixels of the box, Zhang et al.'s tolerance
    mass_in_box   the share of the map's positive mass inside the box (0 when the map has no positive mass)

The metric functions take numpy arrays and return floats (no torch). The rest of the module scores the methods of
explain/ on a model and posts with rationales (model.rationale_file.read_rationales) and is what
`python -m explain.plausibility` and benchmarks/bench_plausibility.py call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

EFFICIENTNET_GRID = (
    7  # the global image's grid (model.explainable.EFFICIENTNET_GRID; this module imports no torch)
)

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


ZHANG_TOLERANCE = 15  # pixels: the pointing game's tolerance in Zhang et al. (ECCV 2016)


def image_metrics(heatmap, box) -> dict[str, float]:
    """{'pointing_game' (0 or 1, the maximum inside the box itself), 'pointing_game_15px' (within 15 pixels of it,
    Zhang et al.'s tolerance), 'mass_in_box'} of one post's map over the image."""
    return {
        "pointing_game": float(pointing_game(heatmap, box)),
        "pointing_game_15px": float(pointing_game(heatmap, box, ZHANG_TOLERANCE)),
        "mass_in_box": mass_in_box(heatmap, box),
    }


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


# ----------------------------------------------------------------------------------------------------------------
# Scoring the methods of explain/ on a model and posts with rationales

TOKEN_METRICS = ("token_f1", "iou_f1", "auprc")
IMAGE_METRICS = ("pointing_game", "pointing_game_15px", "mass_in_box")
# beside the image metrics, not a plausibility metric: the share of a visual method's positive mass on the crops,
# which the map over the global image leaves out
CROP_SHARE = "crop_share"
RANDOM_TOKENS, RANDOM_MAP = "random scores", "random map"
NOT_SCORED = {
    "image reliance": "one number per post (p without the image, with swapped images): no map over the image",
    "crop scores": "the crops' boxes are not known to the model's inputs (MNRE ships crops without boxes); only "
    "the global image's 7x7 map is placed over the image, and the share of each method's positive mass on the "
    "crops is reported beside it ('on crops')",
}


@dataclass
class MethodScore:
    """One method's plausibility (means over the posts it was scored on) and, for attributions, faithfulness."""

    method: str
    kind: str  # "tokens" | "image"
    n_posts: int
    # token_f1, iou_f1, auprc (tokens); pointing_game, pointing_game_15px, mass_in_box and crop_share (image)
    metrics: dict[str, float]
    # comprehensiveness / sufficiency of the attribution (explain.faithfulness), means; empty for attention, random
    faithfulness: dict[str, float] = field(default_factory=dict)


@dataclass
class PlausibilityTable:
    rows: list[MethodScore]
    n_posts: int  # posts scored
    n_with_words: int  # of those, with evidence words the model read
    n_with_box: int  # of those, with an evidence box on an image the model read
    # what a uniformly random point / word reaches (box area share, 1 / candidates)
    reference: dict[str, float]
    settings: dict
    skipped: dict[str, int] = field(default_factory=dict)  # posts left out, by reason
    seconds: float = 0.0

    def markdown(self) -> str:
        """The method x metric table as Markdown (percentages; '-' where a metric does not apply). "on crops": the
        share of a visual method's positive mass that sits on the crops, outside the map over the image."""
        head = (
            "| method | evidence | posts | token F1 | IOU F1 | AUPRC | pointing game | within 15 px | mass in box "
            "| on crops | comprehensiveness | sufficiency |"
        )
        lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in self.rows:
            values = [
                f"{100 * row.metrics[m]:.1f}" if m in row.metrics else "-"
                for m in TOKEN_METRICS + IMAGE_METRICS + (CROP_SHARE,)
            ]
            faith = [
                f"{row.faithfulness[m]:.3f}" if m in row.faithfulness else "-"
                for m in ("comprehensiveness", "sufficiency")
            ]
            evidence = "words" if row.kind == "tokens" else "box"
            lines.append(
                f"| {row.method} | {evidence} | {row.n_posts} | " + " | ".join(values + faith) + " |"
            )
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "rows": [
                {
                    "method": r.method,
                    "kind": r.kind,
                    "n_posts": r.n_posts,
                    "metrics": r.metrics,
                    "faithfulness": r.faithfulness,
                }
                for r in self.rows
            ],
            "n_posts": self.n_posts,
            "n_with_words": self.n_with_words,
            "n_with_box": self.n_with_box,
            "reference": self.reference,
            "settings": self.settings,
            "skipped": self.skipped,
            "seconds": self.seconds,
        }


def _grid_of_keys(values, visual_labels: list[str]) -> np.ndarray | None:
    """(V,) values over the model's visual keys -> the (7, 7) grid of the global image, from the keys labelled
    'grid rXcY' (IFAformer's EfficientNet cells); None when the model has no such keys (CLIP patches, MEGA regions)."""
    grid = np.zeros((EFFICIENTNET_GRID, EFFICIENTNET_GRID))
    found = 0
    for value, label in zip(values, visual_labels, strict=True):
        if label.startswith("grid r") and "c" in label[6:]:
            row, col = label[6:].split("c")
            grid[int(row), int(col)] = value
            found += 1
    return grid if found == EFFICIENTNET_GRID**2 else None


def classifier_rows(inputs) -> list[int]:
    """The positions the relation is read from: the opening markers of head and tail (concat(h[<s>], h[<o>]))."""
    return [inputs.head_span[0], inputs.tail_span[0]]


def attention_views(maps, inputs, heads: list[tuple[int, int]] | None = None) -> dict[str, np.ndarray]:
    """The attention views the app shows, each as one (V,) vector over the model's visual keys read at the
    classifier's rows (the two opening markers, averaged): each fused layer's mean over heads, the mean over layers
    and heads, the chosen (layer, head) pairs (layer = an index into maps.layers), and the rollout. Empty when the
    model reads no image for the post."""
    if not maps.layers:
        return {}
    rows = classifier_rows(inputs)
    out: dict[str, np.ndarray] = {}
    for i, layer in enumerate(maps.layers):
        out[f"attention, layer {layer}, mean of heads"] = maps.mean_text_to_visual[i][rows].mean(axis=0)
    out["attention, mean of layers and heads"] = maps.mean_text_to_visual.mean(axis=0)[rows].mean(axis=0)
    for i, head in heads or []:
        if not (0 <= i < len(maps.layers) and 0 <= head < maps.text_to_visual.shape[1]):
            raise ValueError(
                f"attention layer index {i} / head {head} out of range "
                f"({len(maps.layers)} fused layers, {maps.text_to_visual.shape[1]} heads)"
            )
        out[f"attention, layer {maps.layers[i]}, head {head}"] = maps.text_to_visual[i, head][rows].mean(
            axis=0
        )
    out["attention rollout"] = maps.rollout_text_to_visual[rows].mean(axis=0)
    return out


def attention_grids(maps, inputs, heads: list[tuple[int, int]] | None = None) -> dict[str, np.ndarray]:
    """attention_views as 7x7 maps over the global image; empty when the model has no grid keys (CLIP patches,
    MEGA's pooled regions) or reads no image for the post."""
    grids = {
        name: _grid_of_keys(v, maps.visual_labels) for name, v in attention_views(maps, inputs, heads).items()
    }
    return {} if any(g is None for g in grids.values()) else grids


def crop_share(values, slots) -> float:
    """Share of the positive mass of (V,) values over the visual units that sits on crops (slot > 0) rather than on
    the global image; 0.0 when nothing is positive."""
    positive = np.clip(np.asarray(values, dtype=np.float64), 0.0, None)
    total = float(positive.sum())
    return 0.0 if total == 0.0 else float(positive[np.asarray(slots) > 0].sum() / total)


def _post_rng(seed: int, record) -> np.random.Generator:
    return np.random.default_rng([seed, int(record.line)])


def score_post(
    model,
    tokenizer,
    record,
    rationale,
    feature_cache=None,
    n_steps: int = 32,
    internal_batch_size: int = 8,
    seed: int = 0,
    heads: list[tuple[int, int]] | None = None,
    max_length: int | None = None,
    with_faithfulness: bool = True,
    step: Callable[[str], Any] | None = None,
) -> dict:
    """Every method's metrics on one post: {"tokens": {method: metrics}, "image": {method: metrics},
    "faithfulness": {method: {...}}, "skipped": reason or None, "n_candidates": int, "box_share": float}.

    Each method explains the model's predicted label (what the app shows by default). Token methods are scored
    when the rationale marks words the model read, image methods when it has a box and the model read the image.
    `step(method)` is called as each method starts (a job's progress names the method under way).
    """
    step = step or (lambda method: None)
    from PIL import Image

    from explain.attention import token_object_attention
    from explain.attribution import attribute_tokens, attribute_visual
    from explain.faithfulness import faithfulness
    from explain.inputs import encode_post, predict_post

    out: dict = {"tokens": {}, "image": {}, "faithfulness": {}, "skipped": None}
    inputs = encode_post(model, tokenizer, record, feature_cache, max_length)
    target = predict_post(model, inputs).label_id
    rng = _post_rng(seed, record)
    n_words = len(record.tokens)
    if rationale.words:
        _, seen = word_scores(np.zeros(len(inputs.word_index)), inputs.word_index, n_words)
        candidates = candidate_words(
            n_words, [(record.head.start, record.head.end), (record.tail.start, record.tail.end)], seen
        )
        gold = np.zeros(n_words, dtype=bool)
        gold[list(rationale.words)] = True
        if (gold & ~candidates).any():
            out["skipped"] = "evidence word cut by truncation or inside an entity"
        else:
            out["n_candidates"] = int(candidates.sum())
            baselines = ["pad"] + (["mask"] if inputs.mask_token_id is not None else [])
            for baseline in baselines:
                step(f"LayerIG, [{baseline.upper()}] baseline")
                attribution = attribute_tokens(model, inputs, target, baseline, n_steps, internal_batch_size)
                scores, _ = word_scores(attribution.scores, inputs.word_index, n_words)
                name = f"LayerIG, [{baseline.upper()}] baseline"
                out["tokens"][name] = token_metrics(scores, gold, candidates)
                if with_faithfulness:
                    out["faithfulness"][name] = _faith(faithfulness(model, inputs, attribution, seed=seed))
            out["tokens"][RANDOM_TOKENS] = token_metrics(rng.random(n_words), gold, candidates)
    if rationale.box is not None and inputs.has_image:
        with Image.open(record.image_path) as image:
            size = image.size  # (width, height): the map is placed over the original picture
        box = rationale.box
        out["box_share"] = box_area_share(box, size)
        step("attention")
        maps = token_object_attention(model, inputs)
        views = attention_views(maps, inputs, heads)
        for name, grid in attention_grids(maps, inputs, heads).items():
            out["image"][name] = image_metrics(upsample_grid(grid, size), box)
            out["image"][name][CROP_SHARE] = crop_share(views[name], maps.visual_slots)
        for method, name in (("occlusion", "occlusion"), ("integrated_gradients", "visual IG")):
            step(name)
            attribution = attribute_visual(model, inputs, target, method, n_steps, internal_batch_size)
            out["image"][name] = image_metrics(attribution.heatmap(size), box)
            unit_slots = [0] * attribution.region_scores.size + [1] * len(attribution.crop_scores)
            out["image"][name][CROP_SHARE] = crop_share(attribution.unit_scores, unit_slots)
            if with_faithfulness:
                out["faithfulness"][name] = _faith(faithfulness(model, inputs, attribution, seed=seed))
        out["image"][RANDOM_MAP] = image_metrics(
            upsample_grid(rng.random((EFFICIENTNET_GRID, EFFICIENTNET_GRID)), size), box
        )
    elif rationale.box is not None and out["skipped"] is None:
        out["skipped"] = "the model reads no image for this post"
    return out


def _faith(result) -> dict[str, float]:
    return {"comprehensiveness": result.comprehensiveness, "sufficiency": result.sufficiency}


def _post_steps(progress, k: int, n: int, rationale) -> Callable[[str], None] | None:
    """score_post's step callback for post k of n: progress within the post, by the methods its rationale calls for
    (two LayerIG baselines for words; attention, occlusion and visual IG for a box)."""
    if progress is None:
        return None
    expected = max(1, (2 if rationale.words else 0) + (3 if rationale.box is not None else 0))
    started = 0

    def step(method: str) -> None:
        nonlocal started
        within = min(started, expected) / expected
        started += 1
        progress((k + within) / n, f"post {k + 1}/{n}: {method}")

    return step


def plausibility_table(
    model,
    tokenizer,
    records,
    rationales: dict,
    split: str,
    feature_cache=None,
    n_steps: int = 32,
    internal_batch_size: int = 8,
    seed: int = 0,
    heads: list[tuple[int, int]] | None = None,
    limit: int | None = None,
    max_length: int | None = None,
    with_faithfulness: bool = True,
    progress: Callable[[float, str], Any] | None = None,
) -> PlausibilityTable:
    """Each method x metric, averaged over the split's records that carry a rationale (the first `limit` of them).

    rationales: {(split, line): model.rationale_file.Rationale}, as model.rationale_file.read_rationales returns them
    (or db.rationales.ScoredRationale, the stored ones in the same shape).
    progress(fraction, message): called as each method starts on each post ("post 3/40: visual IG") and after each
    post; the fraction counts posts, and within a post the methods its rationale calls for.
    """
    import time

    from model.visual_features import FeatureCache

    start = time.process_time()
    if not isinstance(feature_cache, FeatureCache):
        feature_cache = FeatureCache(feature_cache)
    model.eval()
    per_method: dict[tuple[str, str], list[dict]] = {}
    faith: dict[str, list[dict]] = {}
    skipped: dict[str, int] = {}
    n_posts = n_words = n_box = 0
    candidates_count, box_shares = [], []
    chosen = [r for r in records if (split, r.line) in rationales]
    skipped_none = len(records) - len(chosen)
    if skipped_none:
        skipped["no rationale"] = skipped_none
    chosen = chosen[:limit]
    for k, record in enumerate(chosen):
        rationale = rationales[(split, record.line)]
        result = score_post(
            model,
            tokenizer,
            record,
            rationale,
            feature_cache,
            n_steps,
            internal_batch_size,
            seed,
            heads,
            max_length,
            with_faithfulness,
            _post_steps(progress, k, len(chosen), rationale),
        )
        if progress:
            progress((k + 1) / len(chosen), f"post {k + 1}/{len(chosen)} scored")
        n_posts += 1
        if result["skipped"]:
            skipped[result["skipped"]] = skipped.get(result["skipped"], 0) + 1
        n_words += bool(result["tokens"])
        n_box += bool(result["image"])
        if "n_candidates" in result:
            candidates_count.append(result["n_candidates"])
        if result["image"]:
            box_shares.append(result["box_share"])
        for kind in ("tokens", "image"):
            for method, metrics in result[kind].items():
                per_method.setdefault((kind, method), []).append(metrics)
        for method, values in result["faithfulness"].items():
            faith.setdefault(method, []).append(values)
    rows = []
    for (kind, method), values in per_method.items():
        names = TOKEN_METRICS if kind == "tokens" else IMAGE_METRICS + (CROP_SHARE,)
        metrics = {m: float(np.mean([v[m] for v in values])) for m in names if m in values[0]}
        faithful = (
            {m: float(np.mean([v[m] for v in faith[method]])) for m in faith[method][0]}
            if method in faith
            else {}
        )
        rows.append(MethodScore(method, kind, len(values), metrics, faithful))
    reference = {}
    if candidates_count:
        reference["one word in the candidates (token F1 of a random pick, k = 1)"] = float(
            np.mean([1 / n for n in candidates_count])
        )
    if box_shares:
        reference["box share of the image (pointing game of a random point)"] = float(np.mean(box_shares))
    return PlausibilityTable(
        rows=rows,
        n_posts=n_posts,
        n_with_words=n_words,
        n_with_box=n_box,
        reference=reference,
        settings={
            "split": split,
            "target": "the model's predicted label",
            "n_steps": n_steps,
            "internal_batch_size": internal_batch_size,
            "seed": seed,
            "limit": limit,
            "attention rows": "the opening markers of head and tail (the classifier's inputs), averaged",
            "not scored": dict(NOT_SCORED),
            "model_version": model.config.version_id or "unsaved",
        },
        skipped=skipped,
        seconds=time.process_time() - start,
    )


def main(argv: list[str] | None = None) -> int:
    """python -m explain.plausibility --model RUN/best --data SYNTH_FOLDER [--split val]: the method x metric table
    (plausibility_table, the function benchmarks/bench_plausibility.py calls) for the posts with rationales."""
    import argparse
    import json
    import sys

    ap = argparse.ArgumentParser(
        prog="python -m explain.plausibility",
        description="Plausibility of every explanation method against the rationales of an MNRE-layout folder "
        "(its rationales.jsonl, as model.synthetic writes it).",
    )
    ap.add_argument("--model", required=True, help="a checkpoint folder (RUN/best)")
    ap.add_argument("--data", required=True, help="an MNRE-layout folder with rationales.jsonl")
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, help="score only the first N posts with a rationale")
    ap.add_argument("--n-steps", type=int, default=32, help="integration steps of LayerIG and visual IG")
    ap.add_argument(
        "--seed", type=int, default=0, help="the random references and faithfulness's random draws"
    )
    ap.add_argument(
        "--head",
        action="append",
        default=[],
        metavar="LAYER:HEAD",
        help="also score the attention of one head (LAYER = index among the fused layers); repeatable",
    )
    ap.add_argument("--feature-cache", default="var/features")
    ap.add_argument("--no-faithfulness", action="store_true", help="skip comprehensiveness / sufficiency")
    ap.add_argument("--json", help="also write the table as JSON to this file")
    args = ap.parse_args(argv)
    import os

    import torch

    # a shared machine: the caller decides how many cores a run may take
    if os.environ.get("TORCH_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["TORCH_NUM_THREADS"]))

    from model.checkpoint import CheckpointError, load_checkpoint
    from model.data import DataFormatError, load_split
    from model.rationale_file import read_rationales

    try:
        heads = []
        for text in args.head:
            layer, _, head = text.partition(":")
            if not (layer.isdigit() and head.isdigit()):
                raise ValueError(f"--head takes LAYER:HEAD (two integers), got {text!r}")
            heads.append((int(layer), int(head)))
        model, tokenizer = load_checkpoint(args.model)
        records, _, _ = load_split(args.data, args.split)
        rationales = read_rationales(args.data, args.split)
        table = plausibility_table(
            model,
            tokenizer,
            records,
            rationales,
            args.split,
            args.feature_cache,
            args.n_steps,
            seed=args.seed,
            heads=heads,
            limit=args.limit,
            with_faithfulness=not args.no_faithfulness,
        )
    except (CheckpointError, DataFormatError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(table.markdown())
    print()
    print(
        f"{table.n_posts} posts of {args.split} with a rationale scored ({table.n_with_box} against a box, "
        f"{table.n_with_words} against words); left out: {table.skipped or 'none'}; CPU {table.seconds:.1f} s"
    )
    for name, value in table.reference.items():
        print(f"reference: {name}: {100 * value:.1f} %")
    if args.json:
        Path(args.json).write_text(json.dumps(table.to_json(), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
