"""Captum attributions for one post: LayerIntegratedGradients over the word embeddings, and the visual side
(per object crop and per region of the global image) by occlusion or Integrated Gradients.

Every result records its method, settings, model version and target, so a stored explanation can be recomputed.
Attributions explain the target label's *probability* (softmax), so scores are in probability units and the
faithfulness numbers of explain.faithfulness are on the same scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from explain.inputs import PostInputs, model_version, probabilities, repeat_batch, resolve_target
from model.ifaformer import EFFICIENTNET_GRID

N_REGIONS = EFFICIENTNET_GRID**2  # the global image is explained on a 7x7 grid for both backbones
BASELINES = ("pad", "mask")


@dataclass
class TokenAttribution:
    scores: np.ndarray  # (T,) contribution of each token to p(target); specials kept in the baseline score 0
    tokens: list[str]
    target_label: str
    target_id: int
    delta: float  # Captum's convergence delta: sum(scores) - (p(input) - p(baseline))
    p_input: float  # p(target | post)
    p_baseline: float  # p(target | baseline text, same image)
    method: str = "LayerIntegratedGradients"
    settings: dict = field(default_factory=dict)
    model_version: str = ""

    @property
    def kind(self) -> str:
        return "tokens"


@dataclass
class VisualAttribution:
    crop_scores: np.ndarray  # (n_crops,) p(target) explained by each crop slot; 0 for absent crops
    region_scores: np.ndarray  # (7, 7) the same for each cell of the global image (row-major, top left first)
    crop_present: list[bool]  # (n_crops,)
    target_label: str
    target_id: int
    p_input: float  # p(target | post)
    method: str  # "occlusion" | "integrated_gradients"
    settings: dict = field(default_factory=dict)
    model_version: str = ""
    delta: float | None = None  # IG convergence delta; None for occlusion

    @property
    def kind(self) -> str:
        return "visual"

    @property
    def unit_scores(self) -> np.ndarray:
        """(49 + n_crops,) the units faithfulness removes: grid cells row-major, then crops."""
        return np.concatenate([self.region_scores.reshape(-1), self.crop_scores])

    def heatmap(self, image_size: tuple[int, int]) -> np.ndarray:
        """The 7x7 region scores bilinearly upsampled to an image of image_size = (width, height) (PIL's
        Image.size) -> (height, width) float array, in the same units as region_scores."""
        width, height = image_size
        grid = torch.from_numpy(np.asarray(self.region_scores, dtype=np.float64))[None, None]  # (1, 1, 7, 7)
        up = F.interpolate(grid, size=(int(height), int(width)), mode="bilinear", align_corners=False)
        return up[0, 0].numpy()


# ----------------------------------------------------------------------------------------------------------------
# Tokens


def _text_forward(model, keys: list[str], target_prob: bool = True):
    """A forward for Captum: input_ids first, the other batch tensors (attention mask kept intact, captum #956) after."""

    def forward(input_ids, *rest):
        batch = dict(zip(keys, rest, strict=True))
        logits = model(input_ids=input_ids, **batch).logits
        return torch.softmax(logits, dim=-1) if target_prob else logits

    return forward


def baseline_ids(inputs: PostInputs, tokenizer_ids: dict[str, int | None], baseline: str) -> torch.Tensor:
    """(1, T) the post's ids with every word piece replaced by [PAD] or [MASK]; [CLS], [SEP] and markers kept, so
    the baseline still says where the entities are."""
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    ids = inputs.batch["input_ids"].clone()
    replace = torch.from_numpy(~inputs.special_mask)[None]  # (1, T)
    ids[replace] = tokenizer_ids[baseline]
    return ids


def attribute_tokens(
    model,
    inputs: PostInputs,
    target: int | str | None = None,
    baseline: str = "pad",
    n_steps: int = 32,
    internal_batch_size: int = 8,
) -> TokenAttribution:
    """LayerIntegratedGradients on the model's word embeddings (model.word_embeddings()) for p(target).

    Only the word embeddings are interpolated: position embeddings, the attention mask, head/tail indices and the
    visual inputs are passed unchanged, so every interpolation step sees the real post structure and image.
    internal_batch_size bounds memory (at most that many interpolation steps in one forward/backward).
    """
    from captum.attr import LayerIntegratedGradients

    model.eval()
    target_id = resolve_target(model, inputs, target)
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    ids = {"pad": inputs.pad_token_id, "mask": inputs.mask_token_id}
    if ids[baseline] is None:
        raise ValueError("the tokenizer has no [MASK] token; use baseline='pad'")
    base = baseline_ids(inputs, ids, baseline)
    keys = [k for k in inputs.batch if k != "input_ids"]
    forward = _text_forward(model, keys)
    lig = LayerIntegratedGradients(forward, model.word_embeddings())
    attr, delta = lig.attribute(
        inputs.batch["input_ids"],
        baselines=base,
        target=target_id,
        additional_forward_args=tuple(inputs.batch[k] for k in keys),
        n_steps=n_steps,
        internal_batch_size=internal_batch_size,
        return_convergence_delta=True,
    )
    scores = attr[0].sum(dim=-1).detach().double().numpy()  # (T, C) -> (T,)
    delta = float(delta.reshape(-1)[0])
    with torch.no_grad():
        p_in = float(forward(inputs.batch["input_ids"], *(inputs.batch[k] for k in keys))[0, target_id])
    # Captum's delta is sum(attributions) - (F(input) - F(baseline)), so F(baseline) needs no extra forward pass
    p_base = p_in - (float(attr.sum()) - delta)
    return TokenAttribution(
        scores=scores,
        tokens=list(inputs.tokens),
        target_label=model.config.label_names[target_id],
        target_id=target_id,
        delta=delta,
        p_input=p_in,
        p_baseline=p_base,
        settings={
            "layer": "word embeddings",
            "baseline": baseline,
            "baseline_token_id": ids[baseline],
            "kept_in_baseline": "[CLS], [SEP], entity markers",
            "n_steps": n_steps,
            "internal_batch_size": internal_batch_size,
            "integration": "gausslegendre",
            "output": "probability",
        },
        model_version=model_version(model),
    )


# ----------------------------------------------------------------------------------------------------------------
# Visual units: 49 regions of the global image, then one unit per crop slot


def _region_blocks(size: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, size, EFFICIENTNET_GRID + 1).round().astype(int)
    return [(int(edges[i]), int(edges[i + 1])) for i in range(EFFICIENTNET_GRID)]


def remove_visual_units(batch: dict[str, torch.Tensor], row: int, units) -> None:
    """Remove visual units from one row of a batch, in place.

    Unit u < 49 is a cell of the global image: its EfficientNet feature is zeroed (efficientnet; the token stays,
    with nothing in it) or its pixel block is set to 0, the dataset mean after normalisation (clip). Unit 49 + c is
    crop c + 1: its slot is dropped from image_mask, exactly as if the crop had not been found.
    """
    for u in units:
        u = int(u)
        if u < N_REGIONS:
            if "visual_features" in batch:
                batch["visual_features"][row, u] = 0.0
            else:
                size = batch["pixel_values"].shape[-1]
                blocks = _region_blocks(size)
                (r0, r1), (c0, c1) = blocks[u // EFFICIENTNET_GRID], blocks[u % EFFICIENTNET_GRID]
                batch["pixel_values"][row, 0, :, r0:r1, c0:c1] = 0.0
        else:
            batch["image_mask"][row, 1 + u - N_REGIONS] = 0.0


def visual_units(inputs: PostInputs) -> list[int]:
    """The units that exist for this post: the 49 regions if the global image is there, then the present crops."""
    slot_mask = inputs.batch["image_mask"][0]
    units = list(range(N_REGIONS)) if slot_mask[0] > 0 else []
    units += [N_REGIONS + c for c in range(inputs.num_crops) if slot_mask[1 + c] > 0]
    return units


def _occlusion(model, inputs: PostInputs, target_id: int) -> tuple[np.ndarray, float]:
    units = visual_units(inputs)
    batch = repeat_batch(inputs.batch, 1 + len(units))  # row 0 = the post, row i = unit i-1 removed
    for row, u in enumerate(units, start=1):
        remove_visual_units(batch, row, [u])
    p = probabilities(model, batch)[:, target_id].double().numpy()  # (1 + units,)
    scores = np.zeros(N_REGIONS + inputs.num_crops)
    scores[units] = p[0] - p[1:]  # how much p(target) falls without the unit
    return scores, float(p[0])


def _integrated_gradients(model, inputs: PostInputs, target_id: int, n_steps: int, internal_batch_size: int):
    from captum.attr import IntegratedGradients

    key = inputs.visual_key
    keys = [k for k in inputs.batch if k != key]

    def forward(visual, *rest):
        return torch.softmax(model(**{key: visual}, **dict(zip(keys, rest, strict=True))).logits, dim=-1)

    ig = IntegratedGradients(forward)
    x = inputs.batch[key]
    attr, delta = ig.attribute(
        x,
        baselines=torch.zeros_like(x),
        target=target_id,
        additional_forward_args=tuple(inputs.batch[k] for k in keys),
        n_steps=n_steps,
        internal_batch_size=internal_batch_size,
        return_convergence_delta=True,
    )
    attr = attr[0].detach().double()
    k = inputs.num_crops
    scores = np.zeros(N_REGIONS + k)
    if key == "visual_features":  # (49 + K', 1280): one token per region, then per crop
        per_token = attr.sum(-1).numpy()
        scores[:N_REGIONS] = per_token[:N_REGIONS]
        scores[N_REGIONS:] = per_token[N_REGIONS : N_REGIONS + k]
    else:  # (1 + K', 3, S, S): sum pixels of the global image per 7x7 block, and all pixels per crop
        blocks = _region_blocks(attr.shape[-1])
        pixel = attr[0].sum(0)  # (S, S)
        for u in range(N_REGIONS):
            (r0, r1), (c0, c1) = blocks[u // EFFICIENTNET_GRID], blocks[u % EFFICIENTNET_GRID]
            scores[u] = float(pixel[r0:r1, c0:c1].sum())
        scores[N_REGIONS:] = attr[1 : 1 + k].sum(dim=(1, 2, 3)).numpy()
    with torch.no_grad():
        p = float(forward(x, *(inputs.batch[k] for k in keys))[0, target_id])
    return scores, p, float(delta.reshape(-1)[0])


def attribute_visual(
    model,
    inputs: PostInputs,
    target: int | str | None = None,
    method: str = "occlusion",
    n_steps: int = 32,
    internal_batch_size: int = 8,
) -> VisualAttribution | None:
    """p(target) explained per object crop and per region of the global image; None when the model reads no image.

    occlusion: remove one unit at a time (see remove_visual_units), score = p(post) - p(post without the unit);
    one batched forward of 1 + 49 + crops rows. integrated_gradients: IG on the visual input (EfficientNet features
    or pixels) from an all-zero baseline, summed per unit; reports the convergence delta.
    """
    if not inputs.has_image:
        return None
    model.eval()
    target_id = resolve_target(model, inputs, target)
    delta = None
    if method == "occlusion":
        scores, p = _occlusion(model, inputs, target_id)
        settings = {
            "units": "7x7 regions of the global image + crop slots",
            "region_removal": "zero EfficientNet feature"
            if inputs.visual_key == "visual_features"
            else "zero pixel block (dataset mean)",
            "crop_removal": "image_mask slot = 0",
            "output": "probability",
        }
    elif method == "integrated_gradients":
        scores, p, delta = _integrated_gradients(model, inputs, target_id, n_steps, internal_batch_size)
        settings = {
            "input": inputs.visual_key,
            "baseline": "zeros",
            "n_steps": n_steps,
            "internal_batch_size": internal_batch_size,
            "integration": "gausslegendre",
            "output": "probability",
        }
    else:
        raise ValueError(f"method must be 'occlusion' or 'integrated_gradients', got {method!r}")
    slot_mask = inputs.batch["image_mask"][0]
    return VisualAttribution(
        crop_scores=scores[N_REGIONS:],
        region_scores=scores[:N_REGIONS].reshape(EFFICIENTNET_GRID, EFFICIENTNET_GRID),
        crop_present=[bool(slot_mask[1 + c] > 0) for c in range(inputs.num_crops)],
        target_label=model.config.label_names[target_id],
        target_id=target_id,
        p_input=p,
        method=method,
        settings=settings,
        model_version=model_version(model),
        delta=delta,
    )
