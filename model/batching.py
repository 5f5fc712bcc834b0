"""Records -> model-ready examples and padded batches (text ids + visual inputs), with optional image shuffling."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import torch

from model.data import Record, encode_text, shuffled_indices
from model.ifaformer import IFAformerConfig
from model.visual_features import FeatureCache, clip_visual_inputs, efficientnet_visual_inputs


@dataclass
class Example:
    input_ids: list[int]
    head_index: int
    tail_index: int
    label: int
    visual: tuple[torch.Tensor, torch.Tensor] | None  # (features or pixels, image_mask) or None for text_only
    record: Record | None = None
    # per-token model inputs beyond the text and the image, each (T, ...) with T = len(input_ids); MEGA's
    # "structural_alignment" (T, O) is the only one so far
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class PreparedSplit:
    examples: list[Example]
    stats: Counter = field(default_factory=Counter)  # with_image, no_image, with_crops, truncated, shuffled


def prepare_examples(
    records: list[Record],
    tokenizer,
    config: IFAformerConfig,
    max_length: int = 80,
    feature_cache: FeatureCache | None = None,
    shuffle_images_seed: int | None = None,
    progress: bool = False,
    keep_records: bool = False,
) -> PreparedSplit:
    """Encode text with entity markers and attach visual inputs.

    shuffle_images_seed: give each record the image and crops of another record (the paper's visual shuffle).
    Records without an image keep an all-zero image_mask: their visual tokens are masked out.
    A config with `uses_structural_alignment` (MEGA) also gets each record's token x object structural alignment,
    computed from the record's own words and the (possibly shuffled) objects it is given.
    """
    label_index = {name: i for i, name in enumerate(config.label_names)}
    stats: Counter = Counter()
    visual_sources = [(r.image_path, r.crop_paths) for r in records]
    if shuffle_images_seed is not None:
        perm = shuffled_indices(len(records), shuffle_images_seed)
        visual_sources = [visual_sources[j] for j in perm]
        stats["shuffled"] = len(records)

    grids: dict = {}
    if config.uses_image and config.vision_backbone == "efficientnet":
        wanted = [
            p for img, crops in visual_sources for p in ([img] if img else []) + crops[: config.num_crops]
        ]
        grids = (feature_cache or FeatureCache(None)).grids(wanted, progress=progress)

    structural = getattr(config, "uses_structural_alignment", False)
    if structural:
        from model.mega import structural_inputs

    examples = []
    for rec, (image_path, crops) in zip(records, visual_sources, strict=True):
        if rec.relation not in label_index:
            raise ValueError(f"line {rec.line}: label {rec.relation!r} is not one of the model's labels")
        enc = encode_text(rec.tokens, rec.head, rec.tail, tokenizer, max_length)
        stats["truncated"] += enc.truncated
        visual = None
        if config.uses_image:
            crops = crops[: config.num_crops]
            if config.vision_backbone == "efficientnet":
                visual = efficientnet_visual_inputs(image_path, crops, grids, config.max_crops)
            else:
                visual = clip_visual_inputs(
                    image_path, crops, config.max_crops, config.vision_config.get("image_size", 224)
                )
            stats["with_image" if visual[1][0] > 0 else "no_image"] += 1
            stats["with_crops"] += bool(visual[1][1:].sum() > 0)
        extras = {}
        if structural:
            extras["structural_alignment"] = structural_inputs(rec.tokens, enc.word_index, visual[1], config)
        examples.append(
            Example(
                enc.input_ids,
                enc.head_index,
                enc.tail_index,
                label_index[rec.relation],
                visual,
                rec if keep_records else None,
                extras,
            )
        )
    return PreparedSplit(examples, stats)


def collate(examples: list[Example], pad_id: int, backbone: str = "efficientnet") -> dict[str, torch.Tensor]:
    """Pad to the longest example in the batch (dynamic padding keeps CPU steps short)."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(examples), width, dtype=torch.long)
    for i, e in enumerate(examples):
        ids[i, : len(e.input_ids)] = torch.tensor(e.input_ids)
        mask[i, : len(e.input_ids)] = 1
    batch = {
        "input_ids": ids,
        "attention_mask": mask,
        "head_index": torch.tensor([e.head_index for e in examples]),
        "tail_index": torch.tensor([e.tail_index for e in examples]),
        "labels": torch.tensor([e.label for e in examples]),
    }
    if examples[0].visual is not None:
        key = "visual_features" if backbone == "efficientnet" else "pixel_values"
        batch[key] = torch.stack([e.visual[0] for e in examples])
        batch["image_mask"] = torch.stack([e.visual[1] for e in examples])
    for key, first in examples[0].extras.items():  # (T_i, ...) -> (B, width, ...), zero-padded
        padded = first.new_zeros(len(examples), width, *first.shape[1:])
        for i, e in enumerate(examples):
            padded[i, : e.extras[key].size(0)] = e.extras[key]
        batch[key] = padded
    return batch


def length_bucketed_batches(
    lengths: list[int], batch_size: int, seed: int, shuffle: bool = True, pool_batches: int = 50
) -> list[list[int]]:
    """Batches of indices. With shuffle: random order, but sorted by length inside pools of `pool_batches` batches,
    so padding stays small while batches still differ from epoch to epoch."""
    order = list(range(len(lengths)))
    if not shuffle:
        order.sort(key=lambda i: lengths[i])
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng = random.Random(seed)
    rng.shuffle(order)
    pool = batch_size * pool_batches
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches
