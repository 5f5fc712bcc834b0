"""MEGA: multimodal relation extraction with efficient graph alignment (Zheng et al. 2021), the paper's baseline.

A BERT entity encoder reads the post with entity markers; the image is a set of objects; every token is aligned
with the objects in two ways and takes a weighted sum of the object features:

    H = BERT(post with <s> </s> <o> </o>)                                   (B, T, d) token states
    V = LN(W_o f_obj + slot)                                                (B, O, d) object states
    A_sem = softmax_o( (H W_q)(V W_k)^T / sqrt(d) )                         (B, T, O) semantic alignment
    A_str = structural_alignment(dependency tree, scene graph)             (B, T, O) precomputed (graph matching)
    A = lambda A_str + (1 - lambda) A_sem,  lambda = sigmoid(learned)       (tokens without a tree node: A_sem)
    U = A (V W_v)                                                           (B, T, d) aligned visual states
    v = mean over the post's tokens of U                                    (B, d)
    logits = W_c [h_<s> ; h_<o> ; v]

Objects. MEGA used up to 10 objects from a scene-graph generator. None is available offline, so the objects here are
the EfficientNet-Lite0 features that the IFAformer pipeline already computes: the 7x7 feature grid pooled into
`region_grid` x `region_grid` image regions (each with its box, so the scene graph has spatial edges between touching
regions) plus up to `max_crops` grounding crops (no box: MNRE ships the crop, not where it came from). With the
defaults that is 9 + 3 = 12 object slots.

Structural alignment. model.mega_alignment.structural_alignment (REGAL / xNetMF graph matching between the
post's spaCy dependency tree and the scene graph built by model.scene_graph) gives a word x object matrix, computed
once per record in model.batching.prepare_examples (see `structural_inputs`) and copied to every word piece of
the word; [CLS], [SEP] and the markers have no tree node and use the semantic alignment alone.

A record without an image or crops has no object: its alignment rows are zero, v = 0, and its logits do not depend
on any visual input. Batches in which no record has an object skip the visual path entirely (most MNRE records
here have no image).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from model.checkpoint import config_from_checkpoint, load_checkpoint_model, save_checkpoint
from model.ifaformer import EFFICIENTNET_FEATURE_DIM, EFFICIENTNET_GRID

REGION_CANVAS = 224.0  # region boxes are drawn on the 224 px EfficientNet input; only their layout matters


@dataclass
class MegaConfig:
    label_names: list[str] = field(default_factory=list)  # index = label id; "None" is the negative class
    text_config: dict = field(default_factory=dict)  # a transformers BertConfig or MPNetConfig as a dict
    max_crops: int = 3  # grounding crops used as objects
    region_grid: int = 3  # the 7x7 EfficientNet grid is pooled into region_grid^2 region objects
    structural_temperature: float = 0.1  # softmax temperature of the REGAL embedding similarity
    classifier_dropout: float = 0.1
    marker_token_ids: list[int] = field(default_factory=list)  # ids of <s> </s> <o> </o>
    version_id: str = ""  # set when saved: content hash of the weights
    # where the text weights came from (for the record; loading uses the saved weights)
    text_encoder: str = ""
    # how inputs are built for this model: read it with model.checkpoint.preprocessing(config)
    preprocessing: dict = field(default_factory=dict)
    # fixed by the design; kept as fields so that the shared pipeline reads them like an IFAformerConfig's
    variant: str = "objects"
    vision_backbone: str = "efficientnet"

    def __post_init__(self):
        if self.variant != "objects" or self.vision_backbone != "efficientnet":
            raise ValueError("MEGA has one variant ('objects') on the 'efficientnet' features")
        if not 1 <= self.region_grid <= EFFICIENTNET_GRID:
            raise ValueError(f"region_grid must be in 1..{EFFICIENTNET_GRID}, got {self.region_grid}")

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def uses_image(self) -> bool:
        return True

    @property
    def num_crops(self) -> int:
        return self.max_crops

    @property
    def num_regions(self) -> int:
        return self.region_grid**2

    @property
    def num_objects(self) -> int:
        """Object slots: regions first, then crops."""
        return self.num_regions + self.max_crops

    @property
    def uses_structural_alignment(self) -> bool:
        """Tells model.batching.prepare_examples to attach the precomputed structural alignment."""
        return True


# ----------------------------------------------------------------------------------------------------------------
# Structural alignment inputs (numpy / spaCy; computed once per record, outside the model)


def region_boxes(grid: int) -> list[tuple[float, float, float, float]]:
    """Boxes (x0, y0, x1, y1) of the grid x grid regions, row-major like the pooled feature map."""
    side = REGION_CANVAS / grid
    return [(j * side, i * side, (j + 1) * side, (i + 1) * side) for i in range(grid) for j in range(grid)]


@functools.lru_cache(maxsize=4096)
def _word_object_alignment(
    tokens: tuple[str, ...], slots: tuple[int, ...], grid: int, temperature: float
) -> torch.Tensor:
    """(W words, num slots) structural alignment of the post with the present object slots (rows sum to 1)."""
    from model.grounding import GroundedObject
    from model.mega_alignment import structural_alignment
    from model.scene_graph import build_scene_graph
    from model.text_graph import parse_dependencies

    boxes = region_boxes(grid)
    # labels only need to be distinct (no merging); the graph builder reads boxes, not the source
    objects = [
        GroundedObject(boxes[s], f"region {s + 1}", None, None, "cam-fallback")
        if s < grid * grid
        else GroundedObject(None, f"crop {s - grid * grid + 1}", None, None, "dataset")
        for s in slots
    ]
    graph = build_scene_graph(objects)
    # labels are distinct, so no node is merged; node.merged[0] says which object (slot) a node stands for
    columns = [slots[node.merged[0]] for node in graph.nodes]
    weights = structural_alignment(parse_dependencies(list(tokens)), graph, temperature=temperature)  # (W, N)
    out = torch.zeros(len(tokens), len(slots))
    order = {s: k for k, s in enumerate(slots)}
    for n, s in enumerate(columns):
        out[:, order[s]] = torch.from_numpy(weights[:, n]).float()
    return out


def structural_inputs(
    tokens: list[str], word_index: list[int], image_mask: torch.Tensor, config: MegaConfig
) -> torch.Tensor:
    """One record's structural alignment per word piece: (T, num_objects), zero rows for [CLS]/[SEP]/markers and
    zero columns for absent objects; all zero when the record has no image and no crop.

    tokens: the record's words; word_index (T,): source word of each piece, -1 for specials (EncodedText.word_index);
    image_mask (1 + max_crops,): 1 where the global image / crop k exists (efficientnet_visual_inputs).
    """
    out = torch.zeros(len(word_index), config.num_objects)
    slots = tuple(range(config.num_regions)) if image_mask[0] > 0 else ()
    slots += tuple(config.num_regions + k for k in range(config.max_crops) if image_mask[1 + k] > 0)
    if not slots:
        return out
    # (W, S)
    words = _word_object_alignment(tuple(tokens), slots, config.region_grid, config.structural_temperature)
    pieces = torch.tensor(word_index)
    real = pieces >= 0
    out[real.nonzero(as_tuple=True)[0][:, None], torch.tensor(slots)[None, :]] = words[pieces[real]]
    return out


# ----------------------------------------------------------------------------------------------------------------
# Layers


class ObjectEmbeddings(nn.Module):
    """EfficientNet features (B, 49 + K, 1280) -> object states (B, O, d): pooled grid regions, then crops."""

    def __init__(self, config: MegaConfig, hidden_size: int, dropout: float):
        super().__init__()
        self.grid, self.max_crops = config.region_grid, config.max_crops
        self.proj = nn.Linear(EFFICIENTNET_FEATURE_DIM, hidden_size)
        self.slot = nn.Embedding(config.num_objects, hidden_size)  # which region / crop slot
        self.norm = nn.LayerNorm(hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, visual_features):
        b, n_grid = visual_features.size(0), EFFICIENTNET_GRID**2
        fmap = (
            visual_features[:, :n_grid].transpose(1, 2).reshape(b, -1, EFFICIENTNET_GRID, EFFICIENTNET_GRID)
        )
        regions = F.adaptive_avg_pool2d(fmap, self.grid).flatten(2).transpose(1, 2)  # (B, g*g, 1280)
        crops = visual_features[:, n_grid : n_grid + self.max_crops]  # (B, K, 1280)
        x = self.proj(torch.cat([regions, crops], dim=1))  # (B, O, d)
        return self.dropout(self.norm(x + self.slot.weight[None]))


def object_mask(image_mask: torch.Tensor, config: MegaConfig) -> torch.Tensor:
    """image_mask (B, 1 + K) -> (B, O): every region exists iff the global image does; crop k iff crop k does."""
    regions = image_mask[:, :1].expand(-1, config.num_regions)
    return torch.cat([regions, image_mask[:, 1 : 1 + config.max_crops]], dim=1)


class GraphAlignment(nn.Module):
    """Semantic attention of tokens over objects, mixed with the structural alignment; aligned object states."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(hidden_size, hidden_size)
        self.v_proj = nn.Linear(hidden_size, hidden_size)
        self.structural_logit = nn.Parameter(torch.zeros(()))  # lambda = sigmoid(0) = 0.5 at the start

    def forward(self, hidden, objects, obj_mask, structural):
        """hidden (B, T, d), objects (B, O, d), obj_mask (B, O), structural (B, T, O) ->
        aligned (B, T, d), semantic (B, T, O), combined (B, T, O); rows are zero where a record has no object."""
        q, k = self.q_proj(hidden), self.k_proj(objects)
        scores = q @ k.transpose(1, 2) / math.sqrt(q.size(-1))  # (B, T, O)
        keep = obj_mask[:, None, :].to(scores.dtype)
        # finfo.min rather than -inf: a record without objects gets a uniform row (then zeroed), never NaN
        semantic = torch.softmax(scores.masked_fill(keep == 0, torch.finfo(scores.dtype).min), -1) * keep
        lam = torch.sigmoid(self.structural_logit)
        has_tree_node = structural.sum(-1, keepdim=True) > 0  # (B, T, 1)
        combined = torch.where(has_tree_node, lam * structural + (1 - lam) * semantic, semantic)
        return combined @ self.v_proj(objects), semantic, combined


@dataclass
class MegaOutput:
    logits: torch.Tensor  # (B, num_labels)
    loss: torch.Tensor | None = None
    text_hidden: torch.Tensor | None = None  # (B, T, d)
    visual_summary: torch.Tensor | None = None  # (B, d) aligned visual representation (zero without objects)
    semantic_alignment: torch.Tensor | None = None  # (B, T, O); None when the batch has no object
    structural_alignment: torch.Tensor | None = None  # (B, T, O)
    alignment: torch.Tensor | None = None  # (B, T, O) the combined weights used
    object_mask: torch.Tensor | None = None  # (B, O)
    text_attentions: list[torch.Tensor] | None = None  # per BERT layer: (B, nh, T, T)


class MegaForRelationClassification(nn.Module):
    def __init__(self, config: MegaConfig):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        self.config = config
        # BertModel, or MPNetModel for an MPNet text encoder (text_config's model_type says which)
        tc = AutoConfig.for_model(**{"model_type": "bert", **config.text_config})
        tc._attn_implementation = "eager"  # attention weights on request (output_attentions)
        self.bert = AutoModel.from_config(tc, add_pooling_layer=False)
        d = tc.hidden_size
        self.objects = ObjectEmbeddings(config, d, tc.hidden_dropout_prob)
        self.alignment = GraphAlignment(d)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(3 * d, config.num_labels)

    def forward(
        self,
        input_ids,
        attention_mask,
        head_index,
        tail_index,
        visual_features=None,
        image_mask=None,
        structural_alignment=None,
        labels=None,
        output_attentions: bool = False,
        inputs_embeds=None,
        **unused,
    ) -> MegaOutput:
        """input_ids / attention_mask (B, T); head_index / tail_index (B,) positions of <s> and <o>;
        visual_features (B, 49 + K, 1280); image_mask (B, 1 + K), all zeros for a record without image or crops;
        structural_alignment (B, T, O) from `structural_inputs` (required when any record has an object).
        inputs_embeds (B, T, d) replaces the word embeddings (attribution methods)."""
        enc = self.bert(
            input_ids=None if inputs_embeds is not None else input_ids,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
        )
        h = enc.last_hidden_state  # (B, T, d)
        b, d = h.size(0), h.size(-1)
        visual = h.new_zeros(b, d)
        semantic = combined = obj_mask = None
        if visual_features is not None and image_mask is not None:
            obj_mask = object_mask(image_mask.to(h.dtype), self.config)  # (B, O)
        if obj_mask is not None and bool(obj_mask.any()):
            if structural_alignment is None:
                raise ValueError("MEGA needs structural_alignment (B, T, O) for records with objects")
            objects = self.objects(visual_features.to(h.dtype))  # (B, O, d)
            # each (B, T, d)
            aligned, semantic, combined = self.alignment(
                h, objects, obj_mask, structural_alignment.to(h.dtype)
            )
            tokens = attention_mask.to(h.dtype)[..., None]  # (B, T, 1)
            visual = (aligned * tokens).sum(1) / tokens.sum(1).clamp(min=1.0)  # (B, d)

        rows = torch.arange(b, device=h.device)
        features = torch.cat([h[rows, head_index], h[rows, tail_index], visual], dim=-1)  # (B, 3d)
        logits = self.classifier(self.dropout(features))
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return MegaOutput(
            logits=logits,
            loss=loss,
            text_hidden=h,
            visual_summary=visual,
            semantic_alignment=semantic,
            structural_alignment=structural_alignment,
            alignment=combined,
            object_mask=obj_mask,
            text_attentions=list(enc.attentions) if output_attentions else None,
        )

    # ------------------------------------------------------------------------------------------------------------
    # Explanation interface (model.explainable.Explainable): what explain/ reads of a model.

    def word_embeddings(self) -> nn.Embedding:
        return self.bert.get_input_embeddings()

    def visual_token_layout(self) -> tuple[list[int], list[str]]:
        from model.explainable import efficientnet_layout

        return efficientnet_layout(self.config.max_crops)

    def token_visual_attention(self, batch: dict[str, torch.Tensor]):
        from model.explainable import mega_attention

        return mega_attention(self, batch)

    # ------------------------------------------------------------------------------------------------------------
    # Checkpoints: one folder with config.json, model.safetensors and the tokenizer files; no pickle anywhere.

    def save_pretrained(self, folder: str | Path, tokenizer=None) -> str:
        return save_checkpoint(self, folder, "mega", "mega", tokenizer)

    @classmethod
    def from_pretrained(cls, folder: str | Path, map_location: str = "cpu") -> MegaForRelationClassification:
        return load_checkpoint_model(cls, MegaConfig, folder, "mega", map_location)


def read_config(folder: str | Path) -> MegaConfig:
    return config_from_checkpoint(MegaConfig, folder, "mega")


def build_mega(label_names: list[str], cfg) -> tuple[MegaForRelationClassification, object]:
    """A fresh MEGA with the text encoder's weights copied in, and its tokenizer (entity markers added).

    cfg: a model.train.TrainConfig (text_encoder, max_crops, pretrained are read). pretrained=False keeps random
    weights (tests build tiny encoders and still go through this path).
    """
    from model.data import token_markers
    from model.encoders import load_text_model, load_tokenizer

    tokenizer = load_tokenizer(cfg.text_encoder)
    bert = load_text_model(cfg.text_encoder)  # a BertModel or an MPNetModel
    bert.resize_token_embeddings(len(tokenizer))  # room for the four entity markers
    config = MegaConfig(
        label_names=list(label_names),
        text_config=bert.config.to_dict(),
        max_crops=cfg.max_crops,
        marker_token_ids=tokenizer.convert_tokens_to_ids(list(token_markers(tokenizer))),
        text_encoder=cfg.text_encoder,
    )
    model = MegaForRelationClassification(config)
    if cfg.pretrained:
        # the pooler is not used (the relation is read from the marker tokens)
        state = {k: v for k, v in bert.state_dict().items() if not k.startswith("pooler.")}
        model.bert.load_state_dict(state)
    return model, tokenizer
