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
    labels_by_id,
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

# marker style -> (head open, head close, tail open, tail close)
# "tokens": four added special tokens (the paper's and DeepKE's markers; their embeddings start untrained).
# "punct": punctuation already in the vocabulary, "@ head @" and "# tail #" (Zhou & Chen 2021, "An Improved
# Baseline for Sentence-level Relation Extraction"), so the markers start with pretrained embeddings.
MARKER_STYLES: dict[str, tuple[str, str, str, str]] = {
    "tokens": ENTITY_MARKERS,
    "punct": ("@", "@", "#", "#"),
}
DEFAULT_MARKER_STYLE = "tokens"
# "tokens" markers for a tokenizer whose own special tokens are spelled <s> / </s> (MPNet's CLS/BOS and SEP/EOS):
# there the paper's head markers would be the post's start and end tokens, so these four take their place.
TAG_ENTITY_MARKERS = ("<e1>", "</e1>", "<e2>", "</e2>")
_NAMED_SPECIAL_TOKENS = (
    "bos_token",
    "eos_token",
    "cls_token",
    "sep_token",
    "pad_token",
    "unk_token",
    "mask_token",
)


def token_markers(tokenizer) -> tuple[str, str, str, str]:
    """The four added marker tokens of style "tokens" for this tokenizer: <s> </s> <o> </o>, or <e1> </e1> <e2> </e2>
    when one of those strings is already the tokenizer's own CLS/SEP/BOS/EOS/PAD/UNK/MASK token. A saved tokenizer
    gives the same answer, so training and inference use the same markers."""
    own = {str(token) for name in _NAMED_SPECIAL_TOKENS if (token := getattr(tokenizer, name, None))}
    for markers in (ENTITY_MARKERS, TAG_ENTITY_MARKERS):
        if not own & set(markers):
            return markers
    raise ValueError(f"the tokenizer's own special tokens {sorted(own)} collide with every entity marker set")


def check_marker_style(marker_style: str) -> str:
    if marker_style not in MARKER_STYLES:
        raise ValueError(f"marker_style must be one of {sorted(MARKER_STYLES)}, got {marker_style!r}")
    return marker_style


def _marked(
    tokens: list[str], head: Entity, tail: Entity, markers: tuple[str, str, str, str]
) -> tuple[list[str], list[int]]:
    """Words with markers inserted, and per word its marker role (0..3 as in `markers`) or -1 for a source word."""
    opens: dict[int, list[tuple[int, int, int]]] = {}
    closes: dict[int, list[tuple[int, int, int]]] = {}
    # (sort key, tie-break, role); head before tail when spans coincide
    for rank, (ent, open_role, close_role) in enumerate(((head, 0, 1), (tail, 2, 3))):
        # outer (ends later) opens first
        opens.setdefault(ent.start, []).append((-ent.end, rank, open_role))
        # inner (started later) closes first
        closes.setdefault(ent.end, []).append((-ent.start, -rank, close_role))
    words, roles = [], []
    for i in range(len(tokens) + 1):
        for _, _, role in sorted(closes.get(i, [])):
            words.append(markers[role])
            roles.append(role)
        for _, _, role in sorted(opens.get(i, [])):
            words.append(markers[role])
            roles.append(role)
        if i < len(tokens):
            words.append(tokens[i])
            roles.append(-1)
    return words, roles


def marked_words(
    tokens: list[str], head: Entity, tail: Entity, marker_style: str = DEFAULT_MARKER_STYLE
) -> tuple[list[str], list[bool]]:
    """Insert the head's and the tail's markers (<s> </s>, <o> </o> by default) around them, at word level.

    Works when an entity ends the sentence and for nested or overlapping spans: at one position, spans that end close
    first (the inner one first) and then spans that start open (the outer one first). Returns the words and a flag per
    word saying whether it is a marker.
    """
    words, roles = _marked(tokens, head, tail, MARKER_STYLES[check_marker_style(marker_style)])
    return words, [role >= 0 for role in roles]


def escape_special_text(word: str, special_tokens: list[str]) -> str:
    """A source word as ordinary text: each special-token string in it (`<s>`, `</o>`, `[SEP]` written in a post)
    is split with spaces after its first and before its last character, so the tokenizer reads it as the same
    punctuation and word pieces it would give an unregistered string, never as a marker or separator token."""
    for special in special_tokens:
        if len(special) > 1 and special in word:
            word = word.replace(special, f"{special[0]} {special[1:-1]} {special[-1]}")
    return word


@dataclass
class EncodedText:
    input_ids: list[int]
    head_index: int  # position of the head's opening marker
    tail_index: int  # position of the tail's opening marker
    word_index: list[int]  # per position: the source word index, -1 for markers and [CLS]/[SEP]
    truncated: bool
    # first piece of each marker: head open, head close, tail open, tail close
    marker_index: tuple[int, int, int, int] = (0, 0, 0, 0)


def encode_text(
    tokens: list[str],
    head: Entity,
    tail: Entity,
    tokenizer,
    max_length: int,
    marker_style: str = DEFAULT_MARKER_STYLE,
) -> EncodedText:
    """Word pieces of the marked sentence as [CLS] ... [SEP], at most max_length long.

    Markers are found by position, never by searching for their ids, and special-token text inside the post is
    escaped first (escape_special_text), so a post that writes `<s>` or `[SEP]` is encoded as ordinary text.
    When too long, pieces are dropped by distance to the nearest marker, so both entities and all four markers stay
    and the kept text is a window around each entity.
    """
    markers = MARKER_STYLES[check_marker_style(marker_style)]
    if marker_style == "tokens":
        markers = token_markers(tokenizer)
    words, roles = _marked(tokens, head, tail, markers)
    if marker_style == "tokens":
        vocab = tokenizer.get_vocab()
        if any(m not in vocab for m in markers):
            raise ValueError(
                "the tokenizer does not know the entity markers; call add_entity_markers(tokenizer)"
            )
    specials = sorted(
        set(tokenizer.all_special_tokens) | set(ENTITY_MARKERS) | set(TAG_ENTITY_MARKERS),
        key=len,
        reverse=True,
    )
    words = [
        w if role >= 0 else escape_special_text(w, specials) for w, role in zip(words, roles, strict=True)
    ]
    enc = tokenizer(words, is_split_into_words=True, add_special_tokens=False)
    ids, word_ids = enc["input_ids"], enc.word_ids()
    role_of_piece = [roles[w] if w is not None else -1 for w in word_ids]
    first_piece: dict[int, int] = {}
    for i, role in enumerate(role_of_piece):
        if role >= 0:
            first_piece.setdefault(role, i)
    if len(first_piece) != 4:
        raise ValueError(
            f"the tokenizer gives no word piece for the {marker_style!r} entity markers {markers}"
        )
    marker_pos = [i for i, role in enumerate(role_of_piece) if role >= 0]
    budget = max_length - 2
    keep = list(range(len(ids)))
    truncated = len(ids) > budget
    if truncated:
        if budget < len(marker_pos):
            raise ValueError(
                f"max_length={max_length} cannot hold [CLS], [SEP] and the {len(marker_pos)} marker pieces"
            )
        h_open, h_close, t_open, t_close = (first_piece[r] for r in range(4))
        inside = set(range(h_open, h_close + 1)) | set(range(t_open, t_close + 1))
        marker_set = set(marker_pos)

        def priority(i: int) -> tuple[int, int]:
            if i in marker_set:
                return (0, 0)
            dist = min(abs(i - m) for m in marker_pos)
            return (1 if i in inside else 2, dist)

        keep = sorted(sorted(range(len(ids)), key=priority)[:budget])
    # map word-level positions (with markers) back to source word indices
    src_index, w = [], 0
    for role in roles:
        src_index.append(-1 if role >= 0 else w)
        w += role < 0
    new_position = {old: new + 1 for new, old in enumerate(keep)}  # +1: [CLS]
    input_ids = [tokenizer.cls_token_id, *(ids[i] for i in keep), tokenizer.sep_token_id]
    word_index = [-1, *(src_index[word_ids[i]] for i in keep), -1]
    marker_index = tuple(new_position[first_piece[r]] for r in range(4))
    return EncodedText(input_ids, marker_index[0], marker_index[2], word_index, truncated, marker_index)


def add_entity_markers(tokenizer) -> int:
    """Register the four marker tokens (token_markers: <s> </s> <o> </o> for BERT) as special tokens; returns how
    many were new."""
    markers = token_markers(tokenizer)
    missing = [m for m in markers if m not in tokenizer.get_vocab()]
    if not missing:
        return 0
    return tokenizer.add_special_tokens({"additional_special_tokens": list(markers)})


def shuffled_indices(n: int, seed: int) -> list[int]:
    """Record i takes the image of record perm[i]; Sattolo's algorithm, so no record keeps its own image (n > 1)."""
    g = torch.Generator().manual_seed(seed)
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = int(torch.randint(0, i, (1,), generator=g))
        perm[i], perm[j] = perm[j], perm[i]
    return perm
