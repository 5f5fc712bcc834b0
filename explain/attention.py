"""Token-object attention: what each text token attends to among the model's visual keys (grid cells, regions,
crops), and back.

The maps come from the model's own explanation interface (model.explainable: token_visual_attention), so IFAformer
and MEGA are read alike. IFAformer's fused text layers attend over [text ; visual] keys, so the text -> visual block of
those attention maps is the model's implicit token-object alignment (the paper's Eq. 2); MEGA's map is its combined
semantic + structural alignment of tokens over objects. Raw attention is not an explanation of the prediction (use
explain.attribution for that); it shows where information can flow from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from explain.inputs import PostInputs
from model.explainable import EFFICIENTNET_GRID, rollout  # noqa: F401  (rollout: re-exported)


@dataclass
class AttentionMaps:
    # (L, H, T, V) per layer that reads the image and head: text queries over the model's visual keys
    text_to_visual: np.ndarray
    # (L', H', V, T) visual queries over text keys (IFAformer's vision layers that attend to the text)
    visual_to_text: np.ndarray
    mean_text_to_visual: np.ndarray  # (L, T, V) mean over heads
    # (T, V) rollout flow from each visual key into each text token; rows sum to 1 (or are 0: no flow)
    rollout_text_to_visual: np.ndarray
    # (T,) share of each text token's rolled-out flow that comes from the image
    rollout_visual_share: np.ndarray
    layers: list[int]  # layer index of each of the L layers
    vision_layers: list[int]  # vision layer index of each of the L' layers in visual_to_text
    tokens: list[str]
    visual_labels: list[str]  # (V,) the visual keys: "grid r2c3", "region 4 (r1c0)", "crop 1", ...
    entity_token_mask: np.ndarray  # (T,) bool: head and tail tokens, markers included
    crop_scores: np.ndarray  # (L, T, n_crops) mean-over-heads attention mass on each crop's keys
    # (L, T, 7, 7) mean-over-heads attention on the global image, per cell of its 7x7 grid (None: no grid view)
    grid: np.ndarray | None
    visual_present: list[bool]  # per visual key: its slot exists (absent crops receive no attention)
    visual_slots: list[int] = field(default_factory=list)  # per visual key: 0 = global image, k = crop k
    notes: dict = field(default_factory=dict)  # what the layers are (the architecture's own words)


def token_object_attention(model, inputs: PostInputs) -> AttentionMaps:
    """Attention maps of one post, per layer and head, plus head means, rollout and entity/crop/grid views."""
    found = model.token_visual_attention(inputs.batch)
    t2v = found.text_to_visual  # (L, H, T, V)
    n_layers, t = len(found.layers), len(inputs.tokens)
    mean_t2v = t2v.mean(axis=1)  # (L, T, V)
    slots = np.array(found.visual_slots, dtype=int)
    n_crops = inputs.num_crops
    crop_scores = np.zeros((n_layers, t, n_crops))
    for c in range(1, n_crops + 1):
        crop_scores[:, :, c - 1] = mean_t2v[:, :, slots == c].sum(axis=-1)
    grid = None
    if found.grid_weights is not None:
        grid = (mean_t2v @ found.grid_weights).reshape(n_layers, t, EFFICIENTNET_GRID, EFFICIENTNET_GRID)
    return AttentionMaps(
        text_to_visual=t2v,
        visual_to_text=found.visual_to_text,
        mean_text_to_visual=mean_t2v,
        rollout_text_to_visual=found.rollout,
        rollout_visual_share=found.visual_share,
        layers=list(found.layers),
        vision_layers=list(found.vision_layers),
        tokens=list(inputs.tokens),
        visual_labels=list(found.visual_labels),
        entity_token_mask=inputs.entity_token_mask,
        crop_scores=crop_scores,
        grid=grid,
        visual_present=list(found.visual_present),
        visual_slots=list(found.visual_slots),
        notes=dict(found.notes),
    )
