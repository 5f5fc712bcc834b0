"""The explanation interface: what explain/ needs from a relation classifier, implemented by IFAformer and MEGA.

    model(**batch).logits                 a forward returning (B, num_labels) logits
    model.word_embeddings()               the nn.Embedding whose output LayerIntegratedGradients interpolates
    model.visual_token_layout()           the visual inputs occlusion and visual IG remove: slot and label of each
                                          token of the batch's visual input (visual_features / pixel_values)
    model.token_visual_attention(batch)   the model's own text -> visual attention for one post (B = 1)

explain/ reads nothing else of a model (besides model.config: label_names, uses_image, num_crops, version_id), so a
new architecture becomes explainable by implementing these four. Results are numpy arrays and lists (plain data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

EFFICIENTNET_GRID = 7  # the global image's feature grid (model.ifaformer.EFFICIENTNET_GRID)
N_GRID_CELLS = EFFICIENTNET_GRID**2


@dataclass
class TokenVisualAttention:
    """One post's attention from text tokens to the model's visual keys (V keys; the keys need not be the input
    tokens: MEGA attends over pooled regions)."""

    # (L, H, T, V) per layer that reads the image and head: text queries over visual keys
    text_to_visual: np.ndarray
    layers: list[int]  # layer index of each of the L entries
    visual_to_text: np.ndarray  # (L', H', V, T) visual queries over text keys (zero layers when none attend)
    vision_layers: list[int]  # layer index of each of the L' entries
    visual_labels: list[str]  # (V,) "grid r2c3", "region 4", "crop 1", "image patch 3", ...
    visual_slots: list[int]  # (V,) 0 = global image, k = crop k
    visual_present: list[bool]  # (V,) the key's slot exists for this post
    rollout: np.ndarray  # (T, V) flow from each visual key into each text token (rows sum to 1 or are all 0)
    visual_share: np.ndarray  # (T,) share of each text token's flow that comes from the image (0..1)
    # (V, 49) how much of key v lies on each 7x7 cell (None: no grid view)
    grid_weights: np.ndarray | None = None
    notes: dict[str, Any] = field(default_factory=dict)  # what the layers are, for a caption


@runtime_checkable
class Explainable(Protocol):
    config: Any

    def __call__(self, **batch) -> Any: ...

    def word_embeddings(self) -> nn.Embedding: ...

    def visual_token_layout(self) -> tuple[list[int], list[str]]: ...

    def token_visual_attention(self, batch: dict[str, torch.Tensor]) -> TokenVisualAttention: ...


# ----------------------------------------------------------------------------------------------------------------
# Shared pieces


def grid_labels() -> list[str]:
    return [f"grid r{i // EFFICIENTNET_GRID}c{i % EFFICIENTNET_GRID}" for i in range(N_GRID_CELLS)]


def efficientnet_layout(num_crops: int) -> tuple[list[int], list[str]]:
    """visual_features (49 + K, 1280): the 7x7 grid cells of the global image, then one token per crop slot."""
    return [0] * N_GRID_CELLS + list(range(1, num_crops + 1)), grid_labels() + [
        f"crop {c}" for c in range(1, num_crops + 1)
    ]


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
    """Attention rollout over a dual-stream model's joint [text ; visual] token graph -> (T+V, T+V), rows sum to 1.

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


def _present(slots: list[int], image_mask: torch.Tensor | None) -> list[bool]:
    if image_mask is None:
        return [False] * len(slots)
    return [bool(image_mask[0, s] > 0) for s in slots]


# ----------------------------------------------------------------------------------------------------------------
# IFAformer: text layers attend over [text ; visual] keys


def ifaformer_visual_layout(model) -> tuple[list[int], list[str]]:
    config = model.config
    if not config.uses_image:
        return [], []
    if config.vision_backbone == "efficientnet":
        return efficientnet_layout(config.num_crops)
    slots, labels = [], []
    for slot, n in enumerate(model.visual_embeddings.tokens_per_slot(config.num_crops)):
        name = "image" if slot == 0 else f"crop {slot}"
        slots += [slot] * n
        labels += [f"{name} cls"] + [f"{name} patch {p}" for p in range(n - 1)]
    return slots, labels


@torch.no_grad()
def ifaformer_attention(model, batch: dict[str, torch.Tensor]) -> TokenVisualAttention:
    """The text -> visual blocks of the fused text layers, the vision layers' visual -> text blocks, and the
    rollout over the joint token graph."""
    model.eval()
    out = model(**batch, output_attentions=True)
    slots, labels = ifaformer_visual_layout(model)
    t, v = batch["input_ids"].shape[1], len(slots)
    text_attn = [a[0].double().numpy() for a in out.text_attentions]  # per layer (H, T, T[+V])
    vision_attn = [a[0].double().numpy() for a in out.vision_attentions or []]  # per layer (H', V, V[+T])
    heads = text_attn[0].shape[0]
    layers = list(out.fused_text_layers)
    # L = 0 for a text_only model or a post without an image (nothing visual to attend to)
    t2v = np.stack([text_attn[li][:, :, t:] for li in layers]) if layers else np.zeros((0, heads, t, v))
    vision_layers = [i for i, a in enumerate(vision_attn) if a.shape[-1] == v + t]
    if vision_layers:
        v2t = np.stack([vision_attn[i][:, :, v:] for i in vision_layers])  # (L', H', V, T)
    else:
        v_heads = vision_attn[0].shape[0] if vision_attn else heads
        v2t = np.zeros((0, v_heads, v, t))
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
    share = flow.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = np.where(share[:, None] > 0, flow / share[:, None], 0.0)
    grid_weights = None
    if model.config.uses_image and model.config.vision_backbone == "efficientnet":
        grid_weights = np.zeros((v, N_GRID_CELLS))
        grid_weights[:N_GRID_CELLS] = np.eye(N_GRID_CELLS)  # key i < 49 is grid cell i
    return TokenVisualAttention(
        text_to_visual=t2v,
        layers=layers,
        visual_to_text=v2t,
        vision_layers=vision_layers,
        visual_labels=labels,
        visual_slots=slots,
        visual_present=_present(slots, batch.get("image_mask")),
        rollout=normalised,
        visual_share=share,
        grid_weights=grid_weights,
        notes={"layers": "fused text layers (text queries over [text ; visual] keys)"},
    )


# ----------------------------------------------------------------------------------------------------------------
# MEGA: one alignment of every token over the objects (pooled image regions, then crops)


def _pool_windows(n: int, out: int) -> list[tuple[int, int]]:
    """The input windows adaptive_avg_pool2d uses to pool n cells into `out` (start inclusive, end exclusive)."""
    return [((i * n) // out, -((-(i + 1) * n) // out)) for i in range(out)]


def mega_object_layout(config) -> tuple[list[int], list[str], np.ndarray]:
    """MEGA's object keys: slot, label and (O, 49) share of each 7x7 grid cell in each pooled region."""
    g = config.region_grid
    windows = _pool_windows(EFFICIENTNET_GRID, g)
    weights = np.zeros((config.num_objects, N_GRID_CELLS))
    labels = []
    for r in range(g * g):
        (r0, r1), (c0, c1) = windows[r // g], windows[r % g]
        cells = [i * EFFICIENTNET_GRID + j for i in range(r0, r1) for j in range(c0, c1)]
        weights[r, cells] = 1.0 / len(cells)
        labels.append(f"region {r + 1} (r{r // g}c{r % g})")
    labels += [f"crop {c}" for c in range(1, config.max_crops + 1)]
    slots = [0] * (g * g) + list(range(1, config.max_crops + 1))
    return slots, labels, weights


@torch.no_grad()
def mega_attention(model, batch: dict[str, torch.Tensor]) -> TokenVisualAttention:
    """The combined alignment A (tokens x objects) that builds MEGA's visual summary, as one layer with one head.
    MEGA's token states never read the image (it enters only through A), so the 'rollout' is A itself."""
    model.eval()
    out = model(**batch)
    slots, labels, grid_weights = mega_object_layout(model.config)
    t, o = batch["input_ids"].shape[1], len(slots)
    layer = model.bert.config.num_hidden_layers  # the alignment reads the encoder's last layer
    if out.alignment is None:  # no object in this post
        t2v, layers, flow = np.zeros((0, 1, t, o)), [], np.zeros((t, o))
    else:
        flow = out.alignment[0].double().numpy()  # (T, O), rows sum to 1 over present objects (or are 0)
        t2v, layers = flow[None, None], [layer]
    return TokenVisualAttention(
        text_to_visual=t2v,
        layers=layers,
        visual_to_text=np.zeros((0, 1, o, t)),
        vision_layers=[],
        visual_labels=labels,
        visual_slots=slots,
        visual_present=_present(slots, batch.get("image_mask")),
        rollout=flow,
        visual_share=flow.sum(axis=1),
        grid_weights=grid_weights,
        notes={
            "layers": "MEGA's combined (semantic + structural) alignment over objects, after the last layer"
        },
    )
