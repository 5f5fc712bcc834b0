"""One post -> model inputs (B = 1) with the names a reviewer sees, and the model's prediction for it.

Every explanation in explain/ starts from a PostInputs, so the tokens, visual token labels and entity spans shown in
the app are exactly the positions the model read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from model.batching import collate, prepare_examples
from model.checkpoint import preprocessing
from model.data import Record, encode_text
from model.uncertainty import uncertainty
from model.visual_features import FeatureCache


@dataclass
class PostInputs:
    batch: dict[str, torch.Tensor]  # as model.batching.collate makes it (B = 1), without labels
    tokens: list[str]  # word pieces incl. [CLS] / [SEP] / entity markers, one per position
    word_index: list[int]  # per position: the source word, -1 for markers and [CLS] / [SEP]
    # token positions [start, end) of the head entity, markers <s> ... </s> included
    head_span: tuple[int, int]
    tail_span: tuple[int, int]  # the same for the tail, <o> ... </o>
    visual_labels: list[str]  # one per visual token: "grid r2c3" (global image cell), "crop 1", ...
    visual_token_slots: list[int]  # per visual token: 0 = global image, k = crop k
    # the model reads an image for this post (False for text_only models and posts without one)
    has_image: bool
    record: Record
    visual_present: list[bool]  # per visual token: its slot exists (missing crops are masked out)
    pad_token_id: int = 0  # the tokenizer's [PAD] and [MASK] ids (attribution baselines)
    mask_token_id: int | None = None

    @property
    def visual_key(self) -> str | None:
        """'visual_features' (efficientnet) or 'pixel_values' (clip); None when the model reads no image."""
        for key in ("visual_features", "pixel_values"):
            if key in self.batch:
                return key
        return None

    @property
    def special_mask(self) -> np.ndarray:
        """(T,) True for [CLS], [SEP] and the entity markers: positions that explanations never remove."""
        return np.array([w < 0 for w in self.word_index], dtype=bool)

    @property
    def entity_token_mask(self) -> np.ndarray:
        """(T,) True for the tokens of both entities, markers included."""
        mask = np.zeros(len(self.tokens), dtype=bool)
        for start, end in (self.head_span, self.tail_span):
            mask[start:end] = True
        return mask

    @property
    def num_crops(self) -> int:
        return max(self.visual_token_slots, default=0)


@dataclass
class Prediction:
    label: str
    label_id: int
    probabilities: dict[str, float]  # every label, in the model's label order
    margin: float  # p(top 1) - p(top 2)
    entropy: float  # in nats; log(num_labels) = no idea


def model_version(model) -> str:
    """The checkpoint's content hash; 'unsaved' for a model that was never saved (its results cannot be reproduced)."""
    return model.config.version_id or "unsaved"


def visual_token_layout(model) -> tuple[list[int], list[str]]:
    """The slot of each visual input token and a readable label for it, without running the model (the model's
    explanation interface, model.explainable)."""
    return model.visual_token_layout()


def encode_post(
    model,
    tokenizer,
    record: Record,
    feature_cache: FeatureCache | str | Path | None = None,
    max_length: int | None = None,
) -> PostInputs:
    """Encode one record exactly as training and evaluation do (entity markers, truncation, visual inputs).

    feature_cache: a FeatureCache (reuse it across posts: it keeps features in memory), a folder, or None (features
    are computed and kept only for this call). A record whose relation is not one of the model's labels (an
    unlabelled post) is encoded as if labelled with the first label; the label is never fed to the model.
    """
    if not isinstance(feature_cache, FeatureCache):
        feature_cache = FeatureCache(feature_cache)
    labels = model.config.label_names
    as_read = record if record.relation in labels else replace(record, relation=labels[0])
    example = prepare_examples([as_read], tokenizer, model.config, max_length, feature_cache).examples[0]
    batch = collate([example], tokenizer.pad_token_id, model.config.vision_backbone)
    batch.pop("labels")
    # the model's own preprocessing (max_length None: the checkpoint's), as prepare_examples used above
    settings = preprocessing(model.config)
    max_length = settings.max_length if max_length is None else max_length
    enc = encode_text(record.tokens, record.head, record.tail, tokenizer, max_length, settings.marker_style)
    ids = enc.input_ids
    # markers by position: their strings depend on the tokenizer (MPNet's <s> is its own start token)
    h_open, h_close, t_open, t_close = enc.marker_index
    head_span, tail_span = (h_open, h_close + 1), (t_open, t_close + 1)
    slots, visual_labels = visual_token_layout(model)
    present: list[bool] = []
    has_image = False
    if "image_mask" in batch:
        slot_mask = batch["image_mask"][0]  # (1 + K,)
        present = [bool(slot_mask[s] > 0) for s in slots]
        has_image = bool(slot_mask.any())
    return PostInputs(
        batch=batch,
        tokens=tokenizer.convert_ids_to_tokens(ids),
        word_index=enc.word_index,
        head_span=head_span,
        tail_span=tail_span,
        visual_labels=visual_labels,
        visual_token_slots=slots,
        has_image=has_image,
        record=record,
        visual_present=present,
        pad_token_id=int(tokenizer.pad_token_id),
        mask_token_id=tokenizer.mask_token_id,
    )


def repeat_batch(batch: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    """(1, ...) tensors -> (n, ...) copies, to run n perturbations of one post as one batch."""
    return {k: v.expand(n, *v.shape[1:]).clone() for k, v in batch.items()}


@torch.no_grad()
def probabilities(model, batch: dict[str, torch.Tensor], chunk: int = 32) -> torch.Tensor:
    """(B, num_labels) softmax probabilities, in chunks of `chunk` rows so memory stays bounded; with the model's
    decision offset on "None" (model.evaluate.decision_logits), as every prediction."""
    from model.evaluate import decision_logits

    model.eval()
    n = next(iter(batch.values())).size(0)
    out = []
    for i in range(0, n, chunk):
        part = {k: v[i : i + chunk] for k, v in batch.items()}
        out.append(torch.softmax(decision_logits(model(**part).logits.float(), model.config), dim=-1))
    return torch.cat(out)


def resolve_target(model, inputs: PostInputs, target: int | str | None) -> int:
    """A label id from a label id, a label name, or None (= the predicted label)."""
    names = model.config.label_names
    if target is None:
        return int(probabilities(model, inputs.batch)[0].argmax())
    if isinstance(target, str):
        if target not in names:
            raise ValueError(f"unknown label {target!r}; the model's labels are {names}")
        return names.index(target)
    if not 0 <= int(target) < len(names):
        raise ValueError(f"target {target} is not a label id of this model (0..{len(names) - 1})")
    return int(target)


def predict_post(model, inputs: PostInputs) -> Prediction:
    """The model's label for the post, its distribution, and the margin and entropy model.uncertainty computes."""
    # (num_labels,) in the model's label order
    label_probabilities = probabilities(model, inputs.batch)[0].double().tolist()
    names = model.config.label_names
    by_label = dict(zip(names, label_probabilities, strict=True))
    # the same numbers the label store keeps for stored predictions (db.provenance.save_predictions)
    label, _confidence, margin, entropy = uncertainty(by_label)
    return Prediction(
        label=label,
        label_id=names.index(label),
        probabilities=by_label,
        margin=margin,
        entropy=entropy,
    )
