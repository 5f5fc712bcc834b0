"""Rationales: why a label holds, as evidence words and one evidence box, stored beside the decisions.

A `Rationale` is the one object for a rationale everywhere in db/ (the exports, Label Studio, agreement): sorted unique
word indices into the post's tokens, an optional box in the original image's pixels (x0, y0, x1, y1; right and bottom
exclusive) with the image's (width, height), and its source ("reviewer" or "synthetic").

Where they live (db.models.Rationale):
- a reviewer's rationale belongs to one decision and is written only through db.annotations.record_annotation(...,
  rationale=...), in the same transaction as the decision, after the same revision check; undo_last copies the restored
  decision's rationale onto the undo row. So the history holds every rationale ever saved and a pair's current
  rationale is the one of its current decision (db.annotations.current_rationales).
- a synthetic rationale (model.synthetic's rationales.jsonl, stored by import_synthetic_rationales) has no decision:
  it is the dataset's own evidence for its gold label, as gold_label is the dataset's own label. It is not written as
  a decision by an annotator "synthetic" because a decision changes the pair's review status, the queue, progress,
  agreement and the retraining counter; evidence that came with the data must do none of that. The exports show it
  where the label in effect is still the gold label and no reviewer rationale is in effect (rationale_in_effect).

The two entities' words are not evidence: a rationale that marks one is refused (not stripped: silently changing what
a reviewer marked would store something they never saw). Every check names the field: 'rationale.tokens',
'rationale.box', 'rationale.image_size', 'rationale.source'.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.errors import LabelStoreError
from db.models import RATIONALE_SOURCES, Annotation, Dataset, EntityPair, Post
from db.models import Rationale as RationaleRow
from model.rationale_file import RATIONALES_FILE, iter_rationales

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Rationale:
    """Evidence words (sorted unique indices into the post's tokens) and/or one box (x0, y0, x1, y1) in the pixels of
    an image of image_size (width, height)."""

    tokens: tuple[int, ...] = ()
    box: Box | None = None
    image_size: tuple[int, int] | None = None
    source: str = "reviewer"

    def to_json(self) -> dict[str, Any]:
        return {
            "tokens": list(self.tokens),
            "box": None if self.box is None else list(self.box),
            "image_size": None if self.image_size is None else list(self.image_size),
            "source": self.source,
        }


def _fail(field: str, problem: str) -> LabelStoreError:
    return LabelStoreError(f"field 'rationale.{field}': {problem}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_rationale(
    rationale: Rationale,
    n_tokens: int,
    entity_spans: Sequence[tuple[int, int]] = (),
    has_image: bool | None = None,
) -> Rationale:
    """The rationale in its stored form (tokens sorted; box as floats), or LabelStoreError naming the field.

    tokens: integers 0 <= i < n_tokens, unique, none inside an entity span; box: four finite numbers with
    0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height of image_size (two positive integers, needed with a box);
    has_image False refuses a box. At least one of tokens and box."""
    if rationale.source not in RATIONALE_SOURCES:
        raise _fail("source", f"{rationale.source!r} is not one of {', '.join(RATIONALE_SOURCES)}")
    tokens = rationale.tokens
    if isinstance(tokens, str | bytes) or not isinstance(tokens, Iterable):
        raise _fail("tokens", "must be a list of word indices")
    tokens = list(tokens)
    if len(tokens) > n_tokens:  # before looking at each one: a huge list costs nothing
        raise _fail("tokens", f"{len(tokens)} indices for a post of {n_tokens} words")
    for index in tokens:
        if not _is_int(index):
            raise _fail("tokens", f"{index!r} is not a word index (an integer)")
        if not 0 <= index < n_tokens:
            raise _fail("tokens", f"index {index} is outside the post's words 0..{n_tokens - 1}")
    if len(set(tokens)) != len(tokens):
        repeated = sorted({i for i in tokens if tokens.count(i) > 1})
        raise _fail("tokens", f"indices {repeated} are given more than once")
    inside = sorted(i for i in tokens for start, end in entity_spans if start <= i < end)
    if inside:
        raise _fail("tokens", f"words {inside} belong to the head or tail entity, which are not evidence")
    size = rationale.image_size
    if size is not None:
        if (
            isinstance(size, str | bytes)
            or not isinstance(size, Sequence)
            or len(size) != 2
            or not all(_is_int(v) and v > 0 for v in size)
        ):
            raise _fail("image_size", f"{size!r} is not (width, height) in positive whole pixels")
        size = (int(size[0]), int(size[1]))
    box = rationale.box
    if box is not None:
        if has_image is False:
            raise _fail("box", "the post has no image")
        if isinstance(box, str | bytes) or not isinstance(box, Sequence) or len(box) != 4:
            raise _fail("box", f"{box!r} is not (x0, y0, x1, y1)")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box):
            raise _fail("box", f"{box!r} holds something that is not a number")
        if not all(math.isfinite(v) for v in box):
            raise _fail("box", f"{box!r} holds NaN or an infinite value")
        x0, y0, x1, y1 = (float(v) for v in box)
        if not (x0 < x1 and y0 < y1):
            raise _fail("box", f"{box!r} must have x0 < x1 and y0 < y1 (left, top, right, bottom)")
        if size is None:
            raise _fail("image_size", "a box needs the image's (width, height) to be checked and exported")
        if x0 < 0 or y0 < 0 or x1 > size[0] or y1 > size[1]:
            raise _fail("box", f"{box!r} is outside the {size[0]}x{size[1]} image")
        box = (x0, y0, x1, y1)
    if not tokens and box is None:
        raise _fail("tokens", "an empty rationale (no word and no box); pass no rationale instead")
    return Rationale(tuple(sorted(tokens)), box, size, rationale.source)


def check_pair_rationale(
    session: Session,
    pair: EntityPair,
    rationale: Rationale,
    entity_spans: Sequence[tuple[int, int]] | None = None,
) -> Rationale:
    """check_rationale against the pair's post (its words, its entities, whether it has an image); `entity_spans`:
    the spans in effect when a decision fixed them (default: the pair's own)."""
    post = session.get_one(Post, pair.post_id)
    return check_rationale(
        rationale,
        len(post.tokens),
        entity_spans or [(pair.head_start, pair.head_end), (pair.tail_start, pair.tail_end)],
        # a post imported without its image file (has_image False) still has an image when it names one
        post.has_image or post.img_id is not None,
    )


def rationale_values(rationale: Rationale) -> dict[str, Any]:
    box = rationale.box or (None, None, None, None)
    width, height = rationale.image_size or (None, None)
    return {
        "source": rationale.source,
        "tokens": list(rationale.tokens),
        "box_x0": box[0],
        "box_y0": box[1],
        "box_x1": box[2],
        "box_y1": box[3],
        "image_width": width,
        "image_height": height,
    }


def from_row(row: RationaleRow) -> Rationale:
    box = None if row.box_x0 is None else (row.box_x0, row.box_y0, row.box_x1, row.box_y1)
    size = None if row.image_width is None else (row.image_width, row.image_height)
    return Rationale(tuple(row.tokens), box, size, row.source)


def add_decision_rationale(session: Session, annotation: Annotation, rationale: Rationale) -> None:
    """Store an already checked rationale with the decision `annotation` (db.annotations calls this)."""
    session.add(
        RationaleRow(pair_id=annotation.pair_id, annotation_id=annotation.id, **rationale_values(rationale))
    )
    session.flush()


def decision_rationale(session: Session, annotation_id: int) -> Rationale | None:
    row = session.scalar(select(RationaleRow).where(RationaleRow.annotation_id == annotation_id))
    return None if row is None else from_row(row)


def decision_rationales(session: Session, annotation_ids: Iterable[int]) -> dict[int, Rationale]:
    """annotation id -> the rationale recorded with that decision (decisions without one are absent)."""
    stmt = select(RationaleRow.annotation_id, RationaleRow)
    return dict(
        (annotation_id, from_row(row))
        for annotation_id, row in in_chunks(session, stmt, RationaleRow.annotation_id, annotation_ids)
    )


def source_rationales(session: Session, pair_ids: Iterable[int] | None = None) -> dict[int, Rationale]:
    """pair id -> the dataset's own (synthetic) evidence for its gold label."""
    stmt = select(RationaleRow.pair_id, RationaleRow).where(RationaleRow.annotation_id.is_(None))
    return {
        pair_id: from_row(row) for pair_id, row in in_chunks(session, stmt, RationaleRow.pair_id, pair_ids)
    }


def in_chunks(session: Session, stmt, column, pair_ids: Iterable[int] | None):
    if pair_ids is None:
        yield from session.execute(stmt).tuples()
        return
    ids = list(pair_ids)
    for start in range(0, len(ids), 5000):
        yield from session.execute(stmt.where(column.in_(ids[start : start + 5000]))).tuples()


def rationale_in_effect(
    reviewer: Rationale | None, source: Rationale | None, label: str | None, gold_label: str | None
) -> Rationale | None:
    """What an export carries: the current decision's rationale; else the dataset's own evidence while the label in
    effect is still the gold label it explains (a corrected label is not explained by the old label's evidence)."""
    if reviewer is not None:
        return reviewer
    if source is not None and label is not None and label == gold_label:
        return source
    return None


# ----------------------------------------------------------------------------------------------------------------
# Synthetic evidence (model.synthetic's rationales.jsonl)


def import_synthetic_rationales(
    session: Session,
    dataset: str,
    folder: str | Path,
    splits: Sequence[str] | None = None,
    skip_missing: bool = False,
) -> int:
    """Store FOLDER/rationales.jsonl (model.synthetic) as the `synthetic` evidence of `dataset`'s pairs, matched by
    split and line (the pairs' source keys). Returns how many were added; those already stored are kept (importing
    again adds nothing), one that differs from the stored one is an error. Every line is read and checked against
    its pair before anything is written; errors name the file, the line and the field (model.rationale_file, the
    generator's own reader, reads the file). Lines of splits not in `splits` are passed over; a line whose pair is
    not in the store is an error unless `skip_missing` (an import with --skip-bad left its record out)."""
    path = Path(folder) / RATIONALES_FILE
    dataset_id = session.scalar(select(Dataset.id).where(Dataset.name == dataset))
    if dataset_id is None:
        raise LabelStoreError(f"no dataset named {dataset!r} in the label store")
    pairs = {
        pair.source_key: pair
        for pair in session.scalars(select(EntityPair).where(EntityPair.dataset_id == dataset_id))
    }
    stored = source_rationales(session, [pair.id for pair in pairs.values()])
    posts = {post.id: post for post in session.scalars(select(Post).where(Post.dataset_id == dataset_id))}
    new: list[dict[str, Any]] = []
    for number, line in _read_file(folder):
        where = f"{path}:{number}"
        if splits is not None and line.split not in splits:
            continue
        key = f"{line.split}:{line.line}"
        pair = pairs.get(key)
        if pair is None and skip_missing:
            continue
        if pair is None:
            raise LabelStoreError(
                f"{where}: field 'split'/'line': no pair {key!r} in dataset {dataset!r} (import the split first)"
            )
        if line.source != "synthetic":
            raise LabelStoreError(f"{where}: field 'source': {line.source!r}, expected 'synthetic'")
        post = posts[pair.post_id]
        try:
            rationale = check_rationale(
                Rationale(
                    tokens=line.words,
                    box=line.box,
                    image_size=line.image_size,
                    source="synthetic",
                ),
                len(post.tokens),
                [(pair.head_start, pair.head_end), (pair.tail_start, pair.tail_end)],
            )
        except LabelStoreError as err:
            raise LabelStoreError(f"{where}: {err}") from err
        if pair.id in stored:
            if stored[pair.id] != rationale:
                raise LabelStoreError(
                    f"{where}: differs from the evidence stored before for pair {key!r}; import the changed "
                    "set under another --dataset name"
                )
            continue
        stored[pair.id] = rationale
        new.append({"pair_id": pair.id, "annotation_id": None, **rationale_values(rationale)})
    if new:
        session.execute(RationaleRow.__table__.insert(), new)
    return len(new)


def _read_file(folder: str | Path) -> list[tuple[int, Any]]:
    """model.rationale_file's reading of FOLDER/rationales.jsonl, every line at once (nothing is written before the
    whole file has been read); its errors (file, line and field named) as LabelStoreError."""
    try:
        return list(iter_rationales(folder))
    except ValueError as err:
        raise LabelStoreError(str(err)) from err
    except OSError as err:
        raise LabelStoreError(
            f"{Path(folder) / RATIONALES_FILE}: cannot be read ({err.strerror or err})"
        ) from err


@dataclass(frozen=True)
class ScoredRationale:
    """A stored rationale in the shape explain.plausibility.plausibility_table reads (model.synthetic.Rationale's
    `words`, `box`, `image_size`), for the pair at (split, line) of its dataset."""

    split: str
    line: int
    words: tuple[int, ...]
    box: Box | None
    image_size: tuple[int, int] | None
    source: str
    pair_id: int | None = None  # the stored pair (app.services.plausibility reads its record through it)
