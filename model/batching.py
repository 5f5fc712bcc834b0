"""Records -> model-ready examples and padded batches (text ids + visual inputs), with optional image shuffling."""

from __future__ import annotations

import random
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from model.checkpoint import preprocessing
from model.data import Record, encode_text, shuffled_indices
from model.ifaformer import EFFICIENTNET_FEATURE_DIM, EFFICIENTNET_GRID, IFAformerConfig
from model.visual_features import FeatureCache, clip_visual_inputs


@dataclass(frozen=True, eq=False)
class VisualRef:
    """Where one record's visual input comes from. Tensors are built per batch by collate (visual_batch), so a
    prepared split holds no (52, 1280) feature tensor or (4, 3, 224, 224) pixel tensor per record.

    efficientnet: `image` and `crops` are feature-cache digests (readable files only); clip: file paths.
    """

    image: str | Path | None
    crops: tuple[str | Path, ...]
    max_crops: int
    source: FeatureCache | None = None  # efficientnet: where the grids live (shared by every record)

    @property
    def mask(self) -> torch.Tensor:
        """(1 + max_crops,): 1 for the global image and each crop slot that is present."""
        mask = torch.zeros(1 + self.max_crops)
        mask[0] = float(self.image is not None)
        mask[1 : 1 + len(self.crops)] = 1
        return mask

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.source is None:  # clip: pixels from the files
            return clip_visual_inputs(
                Path(self.image) if self.image else None, [Path(c) for c in self.crops], self.max_crops
            )
        feats = torch.zeros(EFFICIENTNET_GRID**2 + self.max_crops, EFFICIENTNET_FEATURE_DIM)
        if self.image is not None:
            feats[: EFFICIENTNET_GRID**2] = self.source.load(self.image)
        for slot, crop in enumerate(self.crops):
            feats[EFFICIENTNET_GRID**2 + slot] = self.source.load(crop).mean(0)
        return feats, self.mask

    # (features, mask) access, as the per-record tuples this replaces
    def __getitem__(self, index: int) -> torch.Tensor:
        return self.mask if index == 1 else self.tensors()[index]


@dataclass(slots=True)
class Example:
    input_ids: Sequence[int]  # array("i") from prepare_examples: 4 bytes a piece, not a list of int objects
    head_index: int
    tail_index: int
    label: int
    visual: VisualRef | None  # where the image and crops come from; None for text_only
    record: Record | None = None
    # per-token model inputs beyond the text and the image, each (T, ...) with T = len(input_ids); MEGA's
    # "structural_alignment" (T, O) is the only one so far
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class PreparedSplit:
    examples: list[Example]
    stats: Counter = field(default_factory=Counter)  # with_image, no_image, with_crops, truncated, shuffled


def visual_identity(image: Path | None, crops: list[Path], digest) -> tuple[str, ...] | None:
    """What a record's picture is, by content: its image's digest, or (no image) its crops' digests; None if none."""
    if image is not None:
        return (digest(image),)
    if crops:
        return ("crops", *(digest(c) for c in crops))
    return None


def shuffled_visual_sources(
    sources: list[tuple[Path | None, list[Path]]], seed: int, digest
) -> tuple[list[tuple[Path | None, list[Path]]], int]:
    """The paper's visual shuffle over distinct pictures: each record gets the image (and crops) of a record whose
    picture has different content, so no record gets its own picture back even when many records share one image.

    Distinct pictures (visual_identity) are deranged with Sattolo's algorithm; a record whose picture maps to
    picture q takes the sources of one of q's records (spread by its rank among its own picture's records). Records
    without image or crops stay without. Returns the new sources and how many records were given another picture.
    """
    groups: dict[tuple[str, ...], list[int]] = {}
    identities = []
    for i, (image, crops) in enumerate(sources):
        ident = visual_identity(image, crops, digest)
        identities.append(ident)
        if ident is not None:
            groups.setdefault(ident, []).append(i)
    distinct = list(groups)
    if len(distinct) < 2:
        raise ValueError(
            f"the visual shuffle needs at least two distinct images; these records have {len(distinct)}"
        )
    target = dict(zip(distinct, (distinct[j] for j in shuffled_indices(len(distinct), seed)), strict=True))
    rank_in_group = {i: r for members in groups.values() for r, i in enumerate(members)}
    result, moved = list(sources), 0
    for i, ident in enumerate(identities):
        if ident is None:
            continue
        donors = groups[target[ident]]
        result[i] = sources[donors[rank_in_group[i] % len(donors)]]
        moved += 1
    return result, moved


def prepare_examples(
    records: list[Record],
    tokenizer,
    config: IFAformerConfig,
    max_length: int | None = None,
    feature_cache: FeatureCache | None = None,
    shuffle_images_seed: int | None = None,
    progress: bool = False,
    keep_records: bool = False,
) -> PreparedSplit:
    """Encode text with entity markers and attach where each record's visual input comes from.

    shuffle_images_seed: give each record the image and crops of a record with a different picture (the paper's
    visual shuffle, shuffled_visual_sources). Records without an image keep an all-zero image_mask: their visual
    tokens are masked out. Visual tensors are built per batch by collate, never stored per record.
    A config with `uses_structural_alignment` (MEGA) also gets each record's token x object structural alignment,
    computed from the record's own words and the (possibly shuffled) objects it is given.
    max_length None: the model's own (model.checkpoint.preprocessing); markers are always the model's style.
    """
    settings = preprocessing(config)
    max_length = settings.max_length if max_length is None else max_length
    label_index = {name: i for i, name in enumerate(config.label_names)}
    stats: Counter = Counter()
    cache = feature_cache or FeatureCache(None)
    visual_sources = [(r.image_path, list(r.crop_paths[: config.num_crops])) for r in records]
    if shuffle_images_seed is not None:
        visual_sources, stats["shuffled"] = shuffled_visual_sources(
            visual_sources, shuffle_images_seed, cache.digest
        )

    keys: dict = {}
    if config.uses_image and config.vision_backbone == "efficientnet":
        wanted = [p for img, crops in visual_sources for p in ([img] if img else []) + crops]
        keys = cache.keys(wanted, progress=progress)
    # one shared reference for every record without a picture: such records cost nothing
    no_picture = VisualRef(
        None, (), config.max_crops, cache if config.vision_backbone == "efficientnet" else None
    )

    structural = getattr(config, "uses_structural_alignment", False)
    if structural:
        from model.mega import structural_inputs

    examples = []
    for record, (image_path, crops) in zip(records, visual_sources, strict=True):
        if record.relation not in label_index:
            raise ValueError(
                f"line {record.line}: label {record.relation!r} is not one of the model's labels"
            )
        enc = encode_text(
            record.tokens, record.head, record.tail, tokenizer, max_length, settings.marker_style
        )
        stats["truncated"] += enc.truncated
        visual = None
        if config.uses_image:
            if config.vision_backbone == "efficientnet":
                image_key = keys.get(image_path) if image_path is not None else None
                crop_keys = tuple(keys[c] for c in crops if c in keys)[: config.max_crops]
                if image_key is None and not crop_keys:
                    visual = no_picture
                else:
                    visual = VisualRef(image_key, crop_keys, config.max_crops, cache)
            elif image_path is None and not crops:
                visual = no_picture
            else:
                visual = VisualRef(image_path, tuple(crops[: config.max_crops]), config.max_crops)
            stats["with_image" if visual.image is not None else "no_image"] += 1
            stats["with_crops"] += bool(visual.crops)
        extras = {}
        if structural:
            extras["structural_alignment"] = structural_inputs(
                record.tokens, enc.word_index, visual.mask, config
            )
        examples.append(
            Example(
                array("i", enc.input_ids),
                enc.head_index,
                enc.tail_index,
                label_index[record.relation],
                visual,
                record if keep_records else None,
                extras,
            )
        )
    return PreparedSplit(examples, stats)


def visual_batch(visuals: list[VisualRef]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, ...) features or pixels and (B, 1 + max_crops) image masks, loaded now for this batch only."""
    pairs = [v.tensors() for v in visuals]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def collate(examples: list[Example], pad_id: int, backbone: str = "efficientnet") -> dict[str, torch.Tensor]:
    """Pad to the longest example in the batch (dynamic padding keeps CPU steps short); visual inputs are loaded
    here, per batch."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(examples), width, dtype=torch.long)
    for i, e in enumerate(examples):
        ids[i, : len(e.input_ids)] = torch.tensor(list(e.input_ids))
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
        batch[key], batch["image_mask"] = visual_batch([e.visual for e in examples])
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
