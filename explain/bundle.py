"""The one explanation assembly: every explanation of one post with one set of default settings.

    DEFAULT_SETTINGS                                the settings of each expensive part, used everywhere
    explain_part(kind, model, tokenizer, inputs)    one expensive part: "tokens", "visual" or "reliance"
    explain_post(model, tokenizer, record, ...)     prediction, attention and every part, timed, JSON-able summary()

Inspect's panels and the worker's explanations job (app.services.stored_explanations), `python -m model.predict --explain` and
the benchmarks all go through explain_part, so a result means the same whoever computed it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from explain.attention import AttentionMaps, token_object_attention
from explain.attribution import TokenAttribution, VisualAttribution, attribute_tokens, attribute_visual
from explain.faithfulness import Faithfulness, faithfulness
from explain.inputs import PostInputs, Prediction, encode_post, model_version, predict_post
from explain.reliance import ImageReliance, choose_other_records, image_reliance
from model.data import Record
from model.visual_features import FeatureCache

# Inspect starts with these, the worker precomputes them, predict --explain and the benchmarks run them: 16 IG steps
# keep a panel within seconds on a CPU (convergence delta reported with each attribution)
DEFAULT_SETTINGS: dict[str, dict] = {
    "tokens": {"baseline": "pad", "n_steps": 16},
    "visual": {"method": "occlusion", "n_steps": 16},
    "reliance": {"k": 5, "seed": 0},
}
PARTS = tuple(DEFAULT_SETTINGS)


@dataclass
class ExplanationBundle:
    inputs: PostInputs
    prediction: Prediction
    attention: AttentionMaps
    token_attribution: TokenAttribution
    visual_attribution: VisualAttribution | None  # None when the model reads no image for this post
    faithfulness: dict[str, Faithfulness | None]  # {"tokens": ..., "visual": ... or None}
    reliance: ImageReliance
    model_version: str
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step, and "total"

    def summary(self, top: int = 5) -> dict:
        """Plain JSON-able numbers (and label / token strings) to store beside the post."""
        token_attribution = self.token_attribution
        order = np.argsort(-token_attribution.scores, kind="stable")[:top]
        numbers = {
            "model_version": self.model_version,
            "record_line": self.inputs.record.line,
            "prediction": {
                "label": self.prediction.label,
                "label_id": self.prediction.label_id,
                "probability": self.prediction.probabilities[self.prediction.label],
                "margin": self.prediction.margin,
                "entropy": self.prediction.entropy,
            },
            "token_attribution": {
                "method": token_attribution.method,
                "target_label": token_attribution.target_label,
                "settings": dict(token_attribution.settings),
                "delta": token_attribution.delta,
                "top_tokens": [
                    [token_attribution.tokens[i], float(token_attribution.scores[i])] for i in order
                ],
            },
            "visual_attribution": None,
            "faithfulness": {
                kind: _faith_summary(faithfulness) for kind, faithfulness in self.faithfulness.items()
            },
            "reliance": {
                "score": self.reliance.score,
                "p_original": self.reliance.p_original,
                "p_no_image": self.reliance.p_no_image,
                "p_swapped": [float(probability) for probability in self.reliance.p_swapped],
                "swapped_predictions": list(self.reliance.swapped_predictions),
                "flip_rate": self.reliance.flip_rate,
                "reason": self.reliance.reason,
                "settings": dict(self.reliance.settings),
            },
            "timings": {k: float(v) for k, v in self.timings.items()},
        }
        visual_attribution = self.visual_attribution
        if visual_attribution is not None:
            region = int(np.argmax(visual_attribution.region_scores))
            numbers["visual_attribution"] = {
                "method": visual_attribution.method,
                "target_label": visual_attribution.target_label,
                "settings": dict(visual_attribution.settings),
                "delta": visual_attribution.delta,
                "crop_scores": [float(score) for score in visual_attribution.crop_scores],
                "top_region": [
                    region // visual_attribution.region_scores.shape[1],
                    region % visual_attribution.region_scores.shape[1],
                ],
                "top_region_score": float(visual_attribution.region_scores.max()),
            }
        return numbers


def _faith_summary(faithfulness: Faithfulness | None) -> dict | None:
    if faithfulness is None:
        return None
    return {
        "comprehensiveness": faithfulness.comprehensiveness,
        "sufficiency": faithfulness.sufficiency,
        "random_comprehensiveness": faithfulness.random_comprehensiveness,
        "n_units": faithfulness.n_units,
        "per_fraction": {str(k): v for k, v in faithfulness.per_fraction.items()},
    }


def swapped_image_reliance(
    model,
    tokenizer,
    inputs: PostInputs,
    other_records: list[Record] | None,
    k: int = 5,
    seed: int = 0,
    feature_cache: FeatureCache | str | Path | None = None,
    max_length: int | None = None,
) -> ImageReliance:
    """The image reliance of an encoded post: k images of `other_records` (chosen with `seed`; only those k are
    encoded) swapped in, and the no-image test. Without other_records or an image, the no-image test alone."""
    others = []
    if other_records and inputs.has_image:
        chosen = choose_other_records(inputs.record, other_records, k, seed)
        others = [encode_post(model, tokenizer, record, feature_cache, max_length) for record in chosen]
    return image_reliance(model, inputs, others, k, seed)


def explain_part(
    kind: str,
    model,
    tokenizer,
    inputs: PostInputs,
    settings: dict | None = None,
    other_records: list[Record] | None = None,
    feature_cache: FeatureCache | str | Path | None = None,
    target: int | str | None = None,
    max_length: int | None = None,
    internal_batch_size: int = 8,
    faithfulness_seed: int = 0,
):
    """One expensive part for an encoded post, `settings` over DEFAULT_SETTINGS[kind]:
    "tokens" -> (TokenAttribution, Faithfulness); "visual" -> (VisualAttribution or None, Faithfulness or None; None
    when the model reads no image for this post); "reliance" -> ImageReliance (k images of `other_records` swapped
    in, chosen with the seed; without them, the no-image test alone). Attributions explain `target` (default: the
    prediction); faithfulness draws its random removals with `faithfulness_seed`."""
    if kind not in DEFAULT_SETTINGS:
        raise ValueError(f"unknown explanation kind {kind!r}; expected one of {', '.join(PARTS)}")
    settings = {**DEFAULT_SETTINGS[kind], **(settings or {})}
    seed = faithfulness_seed
    if kind == "tokens":
        attribution = attribute_tokens(
            model, inputs, target, settings["baseline"], settings["n_steps"], internal_batch_size
        )
        return attribution, faithfulness(model, inputs, attribution, seed=seed)
    if kind == "visual":
        attribution = attribute_visual(
            model, inputs, target, settings["method"], settings["n_steps"], internal_batch_size
        )
        faith = faithfulness(model, inputs, attribution, seed=seed) if attribution is not None else None
        return attribution, faith
    return swapped_image_reliance(
        model, tokenizer, inputs, other_records, settings["k"], settings["seed"], feature_cache, max_length
    )


def explain_post(
    model,
    tokenizer,
    record: Record,
    other_records: list[Record] | None = None,
    k: int = DEFAULT_SETTINGS["reliance"]["k"],
    n_steps: int = DEFAULT_SETTINGS["tokens"]["n_steps"],
    seed: int = DEFAULT_SETTINGS["reliance"]["seed"],
    feature_cache: FeatureCache | str | Path | None = None,
    target: int | str | None = None,
    baseline: str = DEFAULT_SETTINGS["tokens"]["baseline"],
    visual_method: str = DEFAULT_SETTINGS["visual"]["method"],
    max_length: int | None = None,
    internal_batch_size: int = 8,
) -> ExplanationBundle:
    """Prediction, attention, and every part of explain_part (token and visual attributions for `target`, default
    the prediction, with their faithfulness; the image reliance with k images of `other_records` swapped in, chosen
    with `seed`, only those k encoded). Without other_records, reliance uses the no-image test alone. The keyword
    defaults are DEFAULT_SETTINGS."""
    model.eval()
    if not isinstance(feature_cache, FeatureCache):
        feature_cache = FeatureCache(feature_cache)  # shared by the post and the swapped-in images
    timings: dict[str, float] = {}
    start = last = time.perf_counter()

    def tick(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        timings[name] = now - last
        last = now

    inputs = encode_post(model, tokenizer, record, feature_cache, max_length)
    tick("encode")
    prediction = predict_post(model, inputs)
    target_id = prediction.label_id if target is None else target
    tick("predict")
    attention = token_object_attention(model, inputs)
    tick("attention")
    common = {"target": target_id, "internal_batch_size": internal_batch_size, "faithfulness_seed": seed}
    tokens, token_faith = explain_part(
        "tokens", model, tokenizer, inputs, {"baseline": baseline, "n_steps": n_steps}, **common
    )
    tick("token_attribution")  # with its faithfulness
    visual, visual_faith = explain_part(
        "visual", model, tokenizer, inputs, {"method": visual_method, "n_steps": n_steps}, **common
    )
    tick("visual_attribution")  # with its faithfulness
    faith = {"tokens": token_faith, "visual": visual_faith}
    reliance = explain_part(
        "reliance",
        model,
        tokenizer,
        inputs,
        {"k": k, "seed": seed},
        other_records,
        feature_cache,
        max_length=max_length,
    )
    tick("reliance")
    timings["total"] = time.perf_counter() - start
    return ExplanationBundle(
        inputs=inputs,
        prediction=prediction,
        attention=attention,
        token_attribution=tokens,
        visual_attribution=visual,
        faithfulness=faith,
        reliance=reliance,
        model_version=model_version(model),
        timings=timings,
    )
