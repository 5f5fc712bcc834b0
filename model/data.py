"""Encoding MNRE records for a model: entity markers, word pieces, truncation, and the visual shuffle order.

Reading the files (records, label maps, crop lists, limits, encodings) is model.mnre_format, which imports no torch;
its names are re-exported here so `from model.data import load_split, Record, ...` keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.mnre_format import (  # noqa: F401  (re-exported: the file format, for callers of model.data)
    MAX_CROPS,
    SPLIT_FILES,
    DataFormatError,
    Entity,
    LoadReport,
    ReaderLimits,
    Record,
    check_image_name,
    image_is_readable,
    label_counts,
    label_names,
    load_split,
    parse_record,
    read_crop_dict,
    read_records,
    read_rel2id,
    resolve_in_folder,
)

ENTITY_MARKERS = ("<s>", "</s>", "<o>", "</o>")  # head open, head close, tail open, tail close


# ----------------------------------------------------------------------------------------------------------------
# Entity markers and truncation


def marked_words(tokens: list[str], head: Entity, tail: Entity) -> tuple[list[str], list[bool]]:
    """Insert <s> </s> around the head and <o> </o> around the tail, at word level.

    Works when an entity ends the sentence and for nested or overlapping spans: at one position, spans that end close
    first (the inner one first) and then spans that start open (the outer one first). Returns the words and a flag per
    word saying whether it is a marker.
    """
    opens: dict[int, list[tuple[int, int, str]]] = {}
    closes: dict[int, list[tuple[int, int, str]]] = {}
    # (sort key, tie-break, marker); head before tail when spans coincide
    for rank, (ent, open_m, close_m) in enumerate(((head, "<s>", "</s>"), (tail, "<o>", "</o>"))):
        opens.setdefault(ent.start, []).append((-ent.end, rank, open_m))  # outer (ends later) opens first
        closes.setdefault(ent.end, []).append(
            (-ent.start, -rank, close_m)
        )  # inner (started later) closes first
    words, is_marker = [], []
    for i in range(len(tokens) + 1):
        for _, _, m in sorted(closes.get(i, [])):
            words.append(m)
            is_marker.append(True)
        for _, _, m in sorted(opens.get(i, [])):
            words.append(m)
            is_marker.append(True)
        if i < len(tokens):
            words.append(tokens[i])
            is_marker.append(False)
    return words, is_marker


@dataclass
class EncodedText:
    input_ids: list[int]
    head_index: int  # position of <s>
    tail_index: int  # position of <o>
    word_index: list[int]  # per position: the source word index, -1 for markers and [CLS]/[SEP]
    truncated: bool


def encode_text(tokens: list[str], head: Entity, tail: Entity, tokenizer, max_length: int) -> EncodedText:
    """Word pieces of the marked sentence as [CLS] ... [SEP], at most max_length long.

    When too long, pieces are dropped by distance to the nearest marker, so both entities and all four markers stay
    and the kept text is a window around each entity.
    """
    words, is_marker = marked_words(tokens, head, tail)
    enc = tokenizer(words, is_split_into_words=True, add_special_tokens=False)
    ids, word_ids = enc["input_ids"], enc.word_ids()
    marker_ids = set(tokenizer.convert_tokens_to_ids(list(ENTITY_MARKERS)))
    marker_pos = [i for i, t in enumerate(ids) if t in marker_ids]
    if len(marker_pos) != 4:
        raise ValueError("the tokenizer does not know the entity markers; call add_entity_markers(tokenizer)")
    budget = max_length - 2
    keep = list(range(len(ids)))
    truncated = len(ids) > budget
    if truncated:
        if budget < 4:
            raise ValueError(f"max_length={max_length} cannot hold [CLS], [SEP] and four markers")
        h_open, h_close, t_open, t_close = (
            ids.index(tokenizer.convert_tokens_to_ids(m)) for m in ENTITY_MARKERS
        )
        inside = set(range(h_open, h_close + 1)) | set(range(t_open, t_close + 1))

        def priority(i: int) -> tuple[int, int]:
            if i in marker_pos:
                return (0, 0)
            dist = min(abs(i - m) for m in marker_pos)
            return (1 if i in inside else 2, dist)

        keep = sorted(sorted(range(len(ids)), key=priority)[:budget])
    # map word-level positions (with markers) back to source word indices
    src_index, w = [], 0
    for flag in is_marker:
        src_index.append(-1 if flag else w)
        w += not flag
    kept_ids = [ids[i] for i in keep]
    kept_words = [src_index[word_ids[i]] for i in keep]
    input_ids = [tokenizer.cls_token_id, *kept_ids, tokenizer.sep_token_id]
    word_index = [-1, *kept_words, -1]
    head_index = input_ids.index(tokenizer.convert_tokens_to_ids("<s>"))
    tail_index = input_ids.index(tokenizer.convert_tokens_to_ids("<o>"))
    return EncodedText(input_ids, head_index, tail_index, word_index, truncated)


def add_entity_markers(tokenizer) -> int:
    """Register <s> </s> <o> </o> as special tokens; returns how many were new."""
    missing = [m for m in ENTITY_MARKERS if m not in tokenizer.get_vocab()]
    if not missing:
        return 0
    return tokenizer.add_special_tokens({"additional_special_tokens": list(ENTITY_MARKERS)})


def shuffled_indices(n: int, seed: int) -> list[int]:
    """Record i takes the image of record perm[i]; Sattolo's algorithm, so no record keeps its own image (n > 1)."""
    g = torch.Generator().manual_seed(seed)
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = int(torch.randint(0, i, (1,), generator=g))
        perm[i], perm[j] = perm[j], perm[i]
    return perm
