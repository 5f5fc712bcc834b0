"""Everything the review page shows for one post, computed in one call and timed, with a JSON-able summary."""

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


def explain_post(
    model,
    tokenizer,
    record: Record,
    other_records: list[Record] | None = None,
    k: int = 5,
    n_steps: int = 32,
    seed: int = 0,
    feature_cache: FeatureCache | str | Path | None = None,
    target: int | str | None = None,
    baseline: str = "pad",
    visual_method: str = "occlusion",
    max_length: int | None = None,
    internal_batch_size: int = 8,
) -> ExplanationBundle:
    """Prediction, attention, token and visual attributions for `target` (default: the prediction), their
    faithfulness and the image reliance (k images of `other_records` swapped in; chosen with `seed`, and only those
    k are encoded). Without other_records, reliance uses the no-image test alone."""
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
    tokens = attribute_tokens(model, inputs, target_id, baseline, n_steps, internal_batch_size)
    tick("token_attribution")
    visual = attribute_visual(model, inputs, target_id, visual_method, n_steps, internal_batch_size)
    tick("visual_attribution")
    faith = {
        "tokens": faithfulness(model, inputs, tokens, seed=seed),
        "visual": faithfulness(model, inputs, visual, seed=seed) if visual is not None else None,
    }
    tick("faithfulness")
    reliance = swapped_image_reliance(
        model, tokenizer, inputs, other_records, k, seed, feature_cache, max_length
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
