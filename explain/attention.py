"""Token-object attention: what each text token attends to among the visual tokens (grid cells, crops), and back.

IFAformer's fused text layers attend over [text ; visual] keys, so the text -> visual block of those attention maps is
the model's own implicit token-object alignment (the paper's Eq. 2). Raw attention is not an explanation of the
prediction (use explain.attribution for that); it shows where information can flow from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explain.inputs import PostInputs
from model.ifaformer import EFFICIENTNET_GRID


@dataclass
class AttentionMaps:
    text_to_visual: np.ndarray  # (L, H, T, V) fused text layers: text queries over visual keys
    visual_to_text: np.ndarray  # (L', H', V, T) vision layers that attend to the text
    mean_text_to_visual: np.ndarray  # (L, T, V) mean over heads
    rollout_text_to_visual: (
        np.ndarray
    )  # (T, V) rollout flow from each visual token into each text token; rows sum to 1
    rollout_visual_share: (
        np.ndarray
    )  # (T,) share of each text token's rolled-out flow that comes from the image
    layers: list[int]  # text layer index of each of the L fused layers
    vision_layers: list[int]  # vision layer index of each of the L' layers in visual_to_text
    tokens: list[str]
    visual_labels: list[str]
    entity_token_mask: np.ndarray  # (T,) bool: head and tail tokens, markers included
    crop_scores: np.ndarray  # (L, T, n_crops) mean-over-heads attention mass on each crop's tokens
    grid: (
        np.ndarray | None
    )  # (L, T, 7, 7) mean-over-heads attention on the global image's grid cells (efficientnet)
    visual_present: list[bool]  # per visual token: its slot exists (absent crops receive no attention)


def _with_residual(a: np.ndarray) -> np.ndarray:
    """Abnar & Zuidema: 0.5 A + 0.5 I, rows renormalised (the residual stream carries half of each state)."""
    a = 0.5 * a + 0.5 * np.eye(a.shape[0])
    return a / a.sum(axis=1, keepdims=True)


def rollout(
    text_attn: list[np.ndarray],
    vision_attn: list[np.ndarray],
    first_fused_text: int,
    first_fused_vision: int,
    n_text: int,
    n_vision: int,
) -> np.ndarray:
    """Attention rollout over the joint [text ; visual] token graph -> (T+V, T+V), rows sum to 1.

    text_attn: per text layer, head-averaged (T, T) for unfused layers and (T, T+V) for fused ones; vision_attn: per
    computed vision layer, (V, V) or (V, V+T). Both streams of a fused layer read that layer's input states, so one
    joint matrix per fused layer composes them; the lower unfused layers of each stream roll out on their own first.
    """
    t = n_text
    r_t = np.eye(t)
    for a in text_attn[:first_fused_text]:
        r_t = _with_residual(a) @ r_t
    r_v = np.eye(n_vision)
    for a in vision_attn[:first_fused_vision]:
        r_v = _with_residual(a) @ r_v
    r = np.zeros((t + n_vision, t + n_vision))
    r[:t, :t], r[t:, t:] = r_t, r_v
    fused_vision = vision_attn[first_fused_vision:]
    for i, a_t in enumerate(text_attn[first_fused_text:]):
        joint = np.zeros_like(r)
        joint[:t, :] = a_t  # (T, T+V): text keys first, then visual keys
        if i < len(fused_vision):
            a_v = fused_vision[i]  # (V, V [+ T]): visual keys first
            joint[t:, t:] = a_v[:, :n_vision]
            if a_v.shape[1] > n_vision:
                joint[t:, :t] = a_v[:, n_vision:]
        else:  # no vision update after the top fused layer: visual states pass through unchanged
            joint[t:, t:] = np.eye(n_vision)
        r = _with_residual(joint) @ r
    return r


@torch.no_grad()
def token_object_attention(model, inputs: PostInputs) -> AttentionMaps:
    """Attention maps of one post, per fused layer and head, plus head means, rollout and entity/crop/grid views."""
    model.eval()
    out = model(**inputs.batch, output_attentions=True)
    t = len(inputs.tokens)
    v = len(inputs.visual_labels)
    text_attn = [a[0].double().numpy() for a in out.text_attentions]  # per layer (H, T, T[+V])
    vision_attn = [a[0].double().numpy() for a in out.vision_attentions or []]  # per layer (H', V, V[+T])
    heads = text_attn[0].shape[0]
    layers = list(out.fused_text_layers)
    # (L, H, T, V); L = 0 for a text_only model or a post without an image (nothing visual to attend to)
    t2v = np.stack([text_attn[li][:, :, t:] for li in layers]) if layers else np.zeros((0, heads, t, v))
    vision_layers = [i for i, a in enumerate(vision_attn) if a.shape[-1] == v + t]
    if vision_layers:
        v2t = np.stack([vision_attn[i][:, :, v:] for i in vision_layers])  # (L', H', V, T)
    else:
        v_heads = vision_attn[0].shape[0] if vision_attn else heads
        v2t = np.zeros((0, v_heads, v, t))
    mean_t2v = t2v.mean(axis=1)  # (L, T, V)

    flow = np.zeros((t, v))
    if layers:
        joint = rollout(
            [a.mean(axis=0) for a in text_attn],
            [a.mean(axis=0) for a in vision_attn],
            model.first_fused_text,
            model.first_fused_vision,
            t,
            v,
        )
        flow = joint[:t, t:]  # (T, V)
    share = flow.sum(axis=1)  # (T,)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = np.where(share[:, None] > 0, flow / share[:, None], 0.0)

    slots = np.array(inputs.visual_token_slots, dtype=int)
    n_crops = inputs.num_crops
    crop_scores = np.zeros((len(layers), t, n_crops))
    for c in range(1, n_crops + 1):
        crop_scores[:, :, c - 1] = mean_t2v[:, :, slots == c].sum(axis=-1)
    grid = None
    if model.config.uses_image and model.config.vision_backbone == "efficientnet":
        n_grid = EFFICIENTNET_GRID**2
        grid = mean_t2v[:, :, :n_grid].reshape(len(layers), t, EFFICIENTNET_GRID, EFFICIENTNET_GRID)
    return AttentionMaps(
        text_to_visual=t2v,
        visual_to_text=v2t,
        mean_text_to_visual=mean_t2v,
        rollout_text_to_visual=normalised,
        rollout_visual_share=share,
        layers=layers,
        vision_layers=vision_layers,
        tokens=list(inputs.tokens),
        visual_labels=list(inputs.visual_labels),
        entity_token_mask=inputs.entity_token_mask,
        crop_scores=crop_scores,
        grid=grid,
        visual_present=list(inputs.visual_present),
    )
