"""IFAformer: implicit fine-grained multimodal alignment for relation extraction.

A dual-stream Transformer. At every fused layer l, with text states H_t and visual states H_v,

    H_t <- MHA(Q = H_t W_q^t,  K = [H_t ; H_v] W_k^t,  V = [H_t ; H_v] W_v^t)      (text attends over both)
    H_v <- MHA(Q = H_v W_q^v,  K = [H_v ; H_t] W_k^v,  V = [H_v ; H_t] W_v^v)      (vision attends over both)

both computed from the layer's input states, with padding masks in both directions. The relation is read from the text
stream: concat(h[<s>], h[<o>]) -> linear classifier.

Text streams (config.text_config["model_type"]):
    bert          a BERT-family encoder (the offline default MiniLM-L6, bert-base-uncased): absolute positions,
                  token type 0
    mpnet         MPNet (all-mpnet-base-v2, `make mpnet`): absolute positions counted from pad id + 1 plus a
                  relative position bias that is computed once per forward from the text length and added to the
                  attention scores of every text layer, as in transformers' MPNetModel; no token types. In fused
                  layers the bias covers the text keys only; the visual keys get none.

Variants (config.variant):
    text_only     no visual stream (the BERT / MTB-style entity-marker baseline)
    vanilla       the global image only
    no_text_attn  global image + crops, but the vision layers do not attend to the text
    objects       global image + up to `max_crops` object crops (the paper's full model)

Visual backbones (config.vision_backbone):
    efficientnet  frozen ImageNet EfficientNet-Lite0 features, computed outside the model and cached
                  (7x7 grid of the global image + one pooled token per crop), followed by fresh Transformer layers
                  whose depth and width match the text stream by default (the offline default)
    clip          a CLIP vision tower (the paper's openai/clip-vit-base-patch32): patch embeddings of the global
                  image and of each crop, CLIP's encoder layers fused with the text layers
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from model.checkpoint import config_from_checkpoint, load_checkpoint_model, save_checkpoint

VARIANTS = ("text_only", "vanilla", "no_text_attn", "objects")
EFFICIENTNET_FEATURE_DIM = 1280
EFFICIENTNET_GRID = 7  # 224 px input -> 7x7 feature map


@dataclass
class IFAformerConfig:
    variant: str = "objects"
    label_names: list[str] = field(default_factory=list)  # index = label id; "None" is the negative class
    # a transformers BertConfig or MPNetConfig as a dict; its "model_type" says which text stream is built
    text_config: dict = field(default_factory=dict)
    vision_backbone: str = "efficientnet"  # "efficientnet" | "clip"
    # efficientnet: {"hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"} of the fresh
    # visual layers (defaults: the text stream's); clip: a transformers CLIPVisionConfig as a dict
    vision_config: dict = field(default_factory=dict)
    max_crops: int = 3
    # the top N layers of each stream are fused; None = min(text depth, vision depth)
    fusion_layers: int | None = None
    classifier_dropout: float = 0.1
    marker_token_ids: list[int] = field(default_factory=list)  # ids of the four entity markers
    # their strings (model.data.token_markers: <s> </s> <o> </o>, or <e1> </e1> <e2> </e2> for MPNet, whose own
    # <s> and </s> are its start and end tokens); [] in checkpoints saved before it was recorded (<s> ...)
    entity_markers: list[str] = field(default_factory=list)
    version_id: str = ""  # set when saved: content hash of the weights
    # where the text weights came from (for the record; loading uses the saved weights)
    text_encoder: str = ""
    vision_encoder: str = ""
    # how inputs are built for this model (max_length, marker_style, grounding_dir, none_bias): read it with
    # model.checkpoint.preprocessing(config); {} in checkpoints saved before it existed
    preprocessing: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.vision_backbone not in ("efficientnet", "clip"):
            raise ValueError(
                f"vision_backbone must be 'efficientnet' or 'clip', got {self.vision_backbone!r}"
            )

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def uses_image(self) -> bool:
        return self.variant != "text_only"

    @property
    def num_crops(self) -> int:
        """Crop slots actually used by this variant."""
        return self.max_crops if self.variant in ("objects", "no_text_attn") else 0


def eager_attention_forward(query, key, value, additive_mask, dropout: float = 0.0, training: bool = False):
    """query (B, nh, Tq, hs), key/value (B, nh, Tk, hs), additive_mask (B, 1, 1, Tk) -> (B, nh, Tq, hs), weights."""
    scores = query @ key.transpose(-1, -2) / math.sqrt(query.size(-1))  # (B, nh, Tq, Tk)
    weights = torch.softmax(scores + additive_mask, dim=-1)
    out = F.dropout(weights, p=dropout, training=training) @ value
    return out, weights


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) of 1 = keep, 0 = pad -> (B, 1, 1, T) of 0 / large negative."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class CrossModalAttention(nn.Module):
    """Multi-head attention whose keys and values come from [own stream ; other stream] (the paper's Eq. 2).

    The other stream passes through its own LayerNorm and, when the widths differ, an explicit projection to this
    stream's width, so the same W_k, W_v project both modalities as in Eq. 1.
    """

    def __init__(self, hidden_size: int, num_heads: int, other_size: int | None, dropout: float):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_attention_heads {num_heads}")
        self.num_heads, self.head_size, self.dropout = num_heads, hidden_size // num_heads, dropout
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(hidden_size, hidden_size)
        self.v_proj = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)
        if other_size is not None:
            self.other_norm = nn.LayerNorm(other_size)
            self.other_proj = (
                nn.Linear(other_size, hidden_size) if other_size != hidden_size else nn.Identity()
            )

    def _heads(self, x):  # (B, T, C) -> (B, nh, T, hs)
        return x.view(x.size(0), x.size(1), self.num_heads, self.head_size).transpose(1, 2)

    def forward(self, x, mask, other=None, other_mask=None, need_weights: bool = True, position_bias=None):
        """x (B, T, C), mask (B, T); other (B, T', C'), other_mask (B, T') -> (B, T, C), weights (B, nh, T, T+T').

        position_bias (1, nh, T, T): added to the scores of this stream's own keys (MPNet's relative positions).
        Without need_weights the fused scaled-dot-product kernel runs and the weights are None."""
        context, context_mask = x, mask
        if other is not None:
            context = torch.cat([x, self.other_proj(self.other_norm(other))], dim=1)  # (B, T+T', C)
            context_mask = torch.cat([mask, other_mask], dim=1)
        q, k, v = (
            self._heads(self.q_proj(x)),
            self._heads(self.k_proj(context)),
            self._heads(self.v_proj(context)),
        )
        bias = additive_mask(context_mask, q.dtype)
        if position_bias is not None:
            # zero bias on the other stream's keys; unmasked scores become q.k/sqrt(d) + bias, as in MPNet
            bias = bias + F.pad(position_bias, (0, context.size(1) - position_bias.size(-1))).to(q.dtype)
        if need_weights:
            out, weights = eager_attention_forward(q, k, v, bias, self.dropout, self.training)
        else:
            dropout = self.dropout if self.training else 0.0
            out, weights = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout), None
        out = out.transpose(1, 2).reshape(x.shape)  # (B, T, C)
        return self.out_proj(out), weights


class FusionLayer(nn.Module):
    """One Transformer layer of a stream: cross-modal attention + MLP, post-LN (BERT) or pre-LN (CLIP / ViT)."""

    def __init__(
        self, hidden_size, num_heads, intermediate_size, other_size, norm_first, activation, eps, dropout
    ):
        super().__init__()
        self.norm_first = norm_first
        self.attn = CrossModalAttention(hidden_size, num_heads, other_size, dropout)
        self.attn_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.fc2 = nn.Linear(intermediate_size, hidden_size)
        self.mlp_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.activation = activation
        self.dropout = nn.Dropout(dropout)

    def mlp(self, x):
        return self.dropout(self.fc2(_ACTIVATIONS[self.activation](self.fc1(x))))

    def forward(self, x, mask, other=None, other_mask=None, need_weights: bool = True, position_bias=None):
        if self.norm_first:
            a, weights = self.attn(self.attn_norm(x), mask, other, other_mask, need_weights, position_bias)
            x = x + self.dropout(a)
            x = x + self.mlp(self.mlp_norm(x))
        else:
            a, weights = self.attn(x, mask, other, other_mask, need_weights, position_bias)
            x = self.attn_norm(x + self.dropout(a))
            x = self.mlp_norm(x + self.mlp(x))
        return x, weights


_ACTIVATIONS = {"gelu": F.gelu, "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x), "relu": F.relu}

# transformers' MPNetEncoder.compute_position_bias always buckets with its default of 32, whatever the config says
MPNET_POSITION_BUCKETS = 32


def _mpnet_text_embeddings(tc):
    """MPNet's embeddings, holding also its relative position bias table (MPNetEncoder.relative_attention_bias),
    which is shared by every text layer; kept here so it trains at the embeddings' learning rate."""
    from transformers.models.mpnet.modeling_mpnet import MPNetEmbeddings, MPNetEncoder

    class MPNetTextEmbeddings(MPNetEmbeddings):
        def __init__(self, config):
            super().__init__(config)
            self.relative_attention_bias = nn.Embedding(
                config.relative_attention_num_buckets, config.num_attention_heads
            )

        def forward_masked(self, attention_mask, input_ids=None, inputs_embeds=None):
            """Positions count the unmasked tokens from pad id + 1 and give masked ones the pad position: what
            MPNet derives from pad ids, but also right when a baseline puts pad ids inside an unmasked post."""
            kept = attention_mask.long()
            position_ids = kept.cumsum(1) * kept + self.padding_idx
            return self(input_ids=input_ids, position_ids=position_ids, inputs_embeds=inputs_embeds)

        def position_bias(self, length: int, device) -> torch.Tensor:
            """(1, nh, T, T) relative position bias of query i over key j, computed once per forward."""
            positions = torch.arange(length, dtype=torch.long, device=device)
            relative = positions[None, :] - positions[:, None]  # memory - context
            bucket = MPNetEncoder.relative_position_bucket(relative, num_buckets=MPNET_POSITION_BUCKETS)
            return self.relative_attention_bias(bucket).permute(2, 0, 1).unsqueeze(0)

    return MPNetTextEmbeddings(tc)


def text_model_type(config: IFAformerConfig) -> str:
    """Which text stream config.text_config builds: "bert" or "mpnet" (BERT for configs that do not say)."""
    model_type = config.text_config.get("model_type", "bert")
    if model_type not in ("bert", "mpnet"):
        raise ValueError(f"text_config model_type must be 'bert' or 'mpnet', got {model_type!r}")
    return model_type


class EfficientNetVisualEmbeddings(nn.Module):
    """Cached EfficientNet-Lite0 features -> visual tokens: 7x7 grid cells of the global image, then one per crop."""

    def __init__(self, hidden_size: int, max_crops: int, dropout: float):
        super().__init__()
        self.num_grid = EFFICIENTNET_GRID * EFFICIENTNET_GRID
        self.proj = nn.Linear(EFFICIENTNET_FEATURE_DIM, hidden_size)
        self.position = nn.Embedding(self.num_grid + max_crops, hidden_size)  # grid cell or crop slot
        self.norm = nn.LayerNorm(hidden_size)
        self.dropout = nn.Dropout(dropout)

    def tokens_per_slot(self, num_crops: int) -> list[int]:
        return [self.num_grid] + [1] * num_crops

    def forward(self, visual_features):  # (B, 49 + K, 1280) -> (B, 49 + K, C)
        positions = torch.arange(visual_features.size(1), device=visual_features.device)
        return self.dropout(self.norm(self.proj(visual_features) + self.position(positions)))


class ClipVisualEmbeddings(nn.Module):
    """CLIP patch embeddings for the global image and each crop, with a learned slot embedding to tell them apart."""

    def __init__(self, clip_config, max_crops: int):
        super().__init__()
        from transformers.models.clip.modeling_clip import CLIPVisionEmbeddings

        self.embeddings = CLIPVisionEmbeddings(clip_config)
        self.pre_layrnorm = nn.LayerNorm(clip_config.hidden_size, eps=clip_config.layer_norm_eps)
        self.slot = nn.Embedding(1 + max_crops, clip_config.hidden_size)
        nn.init.zeros_(self.slot.weight)  # starts as plain CLIP
        self.tokens_per_image = (clip_config.image_size // clip_config.patch_size) ** 2 + 1

    def tokens_per_slot(self, num_crops: int) -> list[int]:
        return [self.tokens_per_image] * (1 + num_crops)

    def forward(self, pixel_values):  # (B, S, 3, H, W) -> (B, S * P, C)
        b, s = pixel_values.shape[:2]
        x = self.embeddings(pixel_values.flatten(0, 1))  # (B*S, P, C)
        x = x.view(b, s, x.size(1), x.size(2)) + self.slot.weight[:s][None, :, None, :]
        return self.pre_layrnorm(x.flatten(1, 2))


@dataclass
class IFAformerOutput:
    logits: torch.Tensor  # (B, num_labels)
    loss: torch.Tensor | None = None
    text_hidden: torch.Tensor | None = None  # (B, T, C_t)
    vision_hidden: torch.Tensor | None = None  # (B, V, C_v)
    text_attentions: list[torch.Tensor] | None = None  # per text layer: (B, nh, T, T [+ V when fused])
    # per built vision layer: (B, nh, V, V [+ T when fused])
    vision_attentions: list[torch.Tensor] | None = None
    fused_text_layers: list[int] = field(default_factory=list)  # which text layers attend to vision
    visual_mask: torch.Tensor | None = None  # (B, V) token-level mask of the visual stream
    # per visual token: 0 = global image, k = crop k
    visual_token_slots: list[int] = field(default_factory=list)


def _text_layer_args(tc) -> dict:
    return {
        "hidden_size": tc.hidden_size,
        "num_heads": tc.num_attention_heads,
        "intermediate_size": tc.intermediate_size,
        "norm_first": False,
        "activation": tc.hidden_act,
        "eps": tc.layer_norm_eps,
        "dropout": tc.hidden_dropout_prob,
    }


class IFAformerForRelationClassification(nn.Module):
    def __init__(self, config: IFAformerConfig):
        super().__init__()
        self.config = config
        self.is_mpnet = text_model_type(config) == "mpnet"
        if self.is_mpnet:
            from transformers import MPNetConfig

            tc = MPNetConfig(**config.text_config)
            self.text_embeddings = _mpnet_text_embeddings(tc)
        else:
            from transformers import BertConfig
            from transformers.models.bert.modeling_bert import BertEmbeddings

            tc = BertConfig(**config.text_config)
            self.text_embeddings = BertEmbeddings(tc)
        n_text = tc.num_hidden_layers

        self.visual_embeddings = None
        vision_width, n_vision, fused = None, 0, 0
        if config.uses_image:
            if config.vision_backbone == "efficientnet":
                # depth and width match the text stream unless the config says otherwise
                vc = {
                    "hidden_size": tc.hidden_size,
                    "num_hidden_layers": n_text,
                    "num_attention_heads": tc.num_attention_heads,
                    "intermediate_size": tc.intermediate_size,
                    **config.vision_config,
                }
                config.vision_config = vc  # saved checkpoints spell out what was built
                self.visual_embeddings = EfficientNetVisualEmbeddings(
                    vc["hidden_size"], config.max_crops, tc.hidden_dropout_prob
                )
                vision_args = {
                    "hidden_size": vc["hidden_size"],
                    "num_heads": vc["num_attention_heads"],
                    "intermediate_size": vc["intermediate_size"],
                    "norm_first": True,
                    "activation": "gelu",
                    "eps": 1e-12,
                    "dropout": tc.hidden_dropout_prob,
                }
                n_vision = vc["num_hidden_layers"]
            else:
                from transformers import CLIPVisionConfig

                cc = CLIPVisionConfig(**config.vision_config)
                self.visual_embeddings = ClipVisualEmbeddings(cc, config.max_crops)
                vision_args = {
                    "hidden_size": cc.hidden_size,
                    "num_heads": cc.num_attention_heads,
                    "intermediate_size": cc.intermediate_size,
                    "norm_first": True,
                    "activation": cc.hidden_act,
                    "eps": cc.layer_norm_eps,
                    "dropout": cc.attention_dropout,
                }
                n_vision = cc.num_hidden_layers
            vision_width = vision_args["hidden_size"]
            fused = min(n_text, n_vision) if config.fusion_layers is None else config.fusion_layers
            if not 0 < fused <= min(n_text, n_vision):
                raise ValueError(f"fusion_layers={fused} must be in 1..{min(n_text, n_vision)}")
        # The top `fused` layers of each stream are paired; lower layers run on their own modality only.
        self.first_fused_text = n_text - fused
        self.first_fused_vision = n_vision - fused
        self.text_layers = nn.ModuleList(
            FusionLayer(
                **_text_layer_args(tc), other_size=vision_width if i >= self.first_fused_text else None
            )
            for i in range(n_text)
        )
        vision_attends_text = config.variant != "no_text_attn"
        # The top vision layer is not built: its output would feed nothing the classifier reads (the top text layer
        # takes its keys/values from that layer's *input*), so it could never be trained.
        self.vision_layers = nn.ModuleList(
            FusionLayer(
                **vision_args,
                other_size=tc.hidden_size if (vision_attends_text and i >= self.first_fused_vision) else None,
            )
            for i in range(n_vision - 1)
        )
        self.vision_attends_text = vision_attends_text
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(2 * tc.hidden_size, config.num_labels)

    # ------------------------------------------------------------------------------------------------------------
    def visual_tokens(self, visual_features=None, pixel_values=None, image_mask=None):
        """Visual token states (B, V, C_v), their mask (B, V) and the slot of each token (0 = global, k = crop k)."""
        k = self.config.num_crops
        if self.config.vision_backbone == "efficientnet":
            if visual_features is None:
                raise ValueError("the efficientnet backbone needs visual_features (B, 49 + crops, 1280)")
            x = self.visual_embeddings(visual_features[:, : EFFICIENTNET_GRID**2 + k])
        else:
            if pixel_values is None:
                raise ValueError("the clip backbone needs pixel_values (B, 1 + crops, 3, H, W)")
            x = self.visual_embeddings(pixel_values[:, : 1 + k])
        slots = [s for s, n in enumerate(self.visual_embeddings.tokens_per_slot(k)) for _ in range(n)]
        if image_mask is None:
            image_mask = torch.ones(x.size(0), 1 + k, device=x.device)
        slot_index = torch.tensor(slots, device=x.device)
        mask = image_mask[:, : 1 + k].to(x.dtype)[:, slot_index]  # (B, V)
        return x, mask, slots

    def forward(
        self,
        input_ids,
        attention_mask,
        head_index,
        tail_index,
        visual_features=None,
        pixel_values=None,
        image_mask=None,
        labels=None,
        output_attentions: bool = False,
        inputs_embeds=None,
        **unused,
    ) -> IFAformerOutput:
        """input_ids (B, T); attention_mask (B, T); head_index / tail_index (B,) positions of <s> and <o>;
        visual_features (B, 49 + K, 1280) or pixel_values (B, 1 + K, 3, H, W); image_mask (B, 1 + K) with 1 where the
        global image / crop k exists (a record without an image has all zeros: its visual tokens are masked out).
        inputs_embeds (B, T, C_t) replaces the word embeddings (used by attribution methods)."""
        text_mask = attention_mask.to(torch.float32)
        position_bias = None
        if self.is_mpnet:
            ids = None if inputs_embeds is not None else input_ids
            h_t = self.text_embeddings.forward_masked(attention_mask, ids, inputs_embeds)
            position_bias = self.text_embeddings.position_bias(h_t.size(1), h_t.device)
        elif inputs_embeds is not None:
            h_t = self.text_embeddings(inputs_embeds=inputs_embeds)
        else:
            h_t = self.text_embeddings(input_ids=input_ids)
        h_v = v_mask = None
        slots: list[int] = []
        # A batch in which no record has an image computes exactly what the text stream alone computes (every
        # visual key is masked out), so the visual stream is skipped: most MNRE batches here have no image.
        has_image = image_mask is None or bool(image_mask[:, : 1 + self.config.num_crops].any())
        if self.config.uses_image and has_image:
            h_v, v_mask, slots = self.visual_tokens(visual_features, pixel_values, image_mask)
            text_mask = text_mask.to(h_v.dtype)

        text_attn, vision_attn = [], []
        # unfused lower layers
        for layer in self.text_layers[: self.first_fused_text]:
            h_t, w = layer(h_t, text_mask, need_weights=output_attentions, position_bias=position_bias)
            text_attn.append(w)
        if h_v is None:  # text only: every text layer attends over the text alone
            for layer in self.text_layers[self.first_fused_text :]:
                h_t, w = layer(h_t, text_mask, need_weights=output_attentions, position_bias=position_bias)
                text_attn.append(w)
        for layer in self.vision_layers[: self.first_fused_vision] if h_v is not None else []:
            h_v, w = layer(h_v, v_mask, need_weights=output_attentions)
            vision_attn.append(w)
        # fused layers: both streams read the other's *input* states of the same layer
        fused_text = self.text_layers[self.first_fused_text :] if h_v is not None else []
        for i, t_layer in enumerate(fused_text):
            new_t, wt = t_layer(h_t, text_mask, h_v, v_mask, output_attentions, position_bias)
            text_attn.append(wt)
            if i < len(fused_text) - 1:  # no vision update after the top layer (see __init__)
                v_layer = self.vision_layers[self.first_fused_vision + i]
                if self.vision_attends_text:
                    h_v, wv = v_layer(h_v, v_mask, h_t, text_mask, output_attentions)
                else:
                    h_v, wv = v_layer(h_v, v_mask, need_weights=output_attentions)
                vision_attn.append(wv)
            h_t = new_t

        rows = torch.arange(h_t.size(0), device=h_t.device)
        entity_pair = torch.cat([h_t[rows, head_index], h_t[rows, tail_index]], dim=-1)  # (B, 2 C_t)
        logits = self.classifier(self.dropout(entity_pair))
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return IFAformerOutput(
            logits=logits,
            loss=loss,
            text_hidden=h_t,
            vision_hidden=h_v,
            text_attentions=text_attn if output_attentions else None,
            vision_attentions=vision_attn if output_attentions else None,
            fused_text_layers=list(range(self.first_fused_text, len(self.text_layers)))
            if h_v is not None
            else [],
            visual_mask=v_mask,
            visual_token_slots=slots,
        )

    # ------------------------------------------------------------------------------------------------------------
    # Pretrained encoders: copy Hugging Face weights into the layers above (names differ, maths is the same).

    def load_text_encoder(self, encoder) -> None:
        """Copy a transformers BertModel's or MPNetModel's embeddings and layers into the text stream."""
        if self.is_mpnet:
            self._load_mpnet(encoder)
            return
        bert = encoder
        self.text_embeddings.load_state_dict(bert.embeddings.state_dict(), strict=False)
        for mine, theirs in zip(self.text_layers, bert.encoder.layer, strict=True):
            a = theirs.attention
            pairs = [
                (mine.attn.q_proj, a.self.query),
                (mine.attn.k_proj, a.self.key),
                (mine.attn.v_proj, a.self.value),
                (mine.attn.out_proj, a.output.dense),
                (mine.attn_norm, a.output.LayerNorm),
                (mine.fc1, theirs.intermediate.dense),
                (mine.fc2, theirs.output.dense),
                (mine.mlp_norm, theirs.output.LayerNorm),
            ]
            for dst, src in pairs:
                dst.load_state_dict(src.state_dict())

    def _load_mpnet(self, mpnet) -> None:
        missing, unexpected = self.text_embeddings.load_state_dict(
            mpnet.embeddings.state_dict(), strict=False
        )
        if unexpected or missing != ["relative_attention_bias.weight"]:
            raise ValueError(f"MPNet embeddings do not match: missing {missing}, unexpected {unexpected}")
        self.text_embeddings.relative_attention_bias.load_state_dict(
            mpnet.encoder.relative_attention_bias.state_dict()
        )
        for mine, theirs in zip(self.text_layers, mpnet.encoder.layer, strict=True):
            a = theirs.attention
            pairs = [
                (mine.attn.q_proj, a.attn.q),
                (mine.attn.k_proj, a.attn.k),
                (mine.attn.v_proj, a.attn.v),
                (mine.attn.out_proj, a.attn.o),
                (mine.attn_norm, a.LayerNorm),
                (mine.fc1, theirs.intermediate.dense),
                (mine.fc2, theirs.output.dense),
                (mine.mlp_norm, theirs.output.LayerNorm),
            ]
            for dst, src in pairs:
                dst.load_state_dict(src.state_dict())

    def load_clip_vision(self, clip_vision) -> None:
        """Copy a transformers CLIPVisionModel's embeddings and encoder layers into the visual stream."""
        vm = getattr(clip_vision, "vision_model", clip_vision)  # transformers 5 dropped the wrapper
        self.visual_embeddings.embeddings.load_state_dict(vm.embeddings.state_dict())
        self.visual_embeddings.pre_layrnorm.load_state_dict(vm.pre_layrnorm.state_dict())
        for mine, theirs in zip(
            self.vision_layers, vm.encoder.layers[: len(self.vision_layers)], strict=True
        ):
            a = theirs.self_attn
            pairs = [
                (mine.attn.q_proj, a.q_proj),
                (mine.attn.k_proj, a.k_proj),
                (mine.attn.v_proj, a.v_proj),
                (mine.attn.out_proj, a.out_proj),
                (mine.attn_norm, theirs.layer_norm1),
                (mine.fc1, theirs.mlp.fc1),
                (mine.fc2, theirs.mlp.fc2),
                (mine.mlp_norm, theirs.layer_norm2),
            ]
            for dst, src in pairs:
                dst.load_state_dict(src.state_dict())

    # ------------------------------------------------------------------------------------------------------------
    # Explanation interface (model.explainable.Explainable): what explain/ reads of a model.

    def word_embeddings(self) -> nn.Embedding:
        return self.text_embeddings.word_embeddings

    def visual_token_layout(self) -> tuple[list[int], list[str]]:
        from model.explainable import ifaformer_visual_layout

        return ifaformer_visual_layout(self)

    def token_visual_attention(self, batch: dict[str, torch.Tensor]):
        from model.explainable import ifaformer_attention

        return ifaformer_attention(self, batch)

    # ------------------------------------------------------------------------------------------------------------
    # Checkpoints: one folder with config.json, model.safetensors and the tokenizer files; no pickle anywhere.

    def save_pretrained(self, folder: str | Path, tokenizer=None) -> str:
        return save_checkpoint(self, folder, "ifaformer", f"ifaformer-{self.config.variant}", tokenizer)

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, map_location: str = "cpu"
    ) -> IFAformerForRelationClassification:
        return load_checkpoint_model(cls, IFAformerConfig, folder, "ifaformer", map_location)


def read_config(folder: str | Path) -> IFAformerConfig:
    return config_from_checkpoint(IFAformerConfig, folder, "ifaformer")
