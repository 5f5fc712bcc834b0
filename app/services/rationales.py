"""Rationales on the Review page, without Streamlit: which words may be marked, the rationale a reviewer's marks
make, the box a Plotly box selection drew, the rationale in effect for a pair, and one line that describes one.

    candidate_words(tokens, head, tail)            word indices a reviewer may mark (not the entities')
    marked_rationale(words, box, image_size)       a db.rationales.Rationale, or None when nothing is marked
    box_from_selection(selection, image_size)      st.plotly_chart's selection -> (x0, y0, x1, y1) in image pixels
    pair_rationale(session, pair_id)               the reviewer's current rationale, else the dataset's own
    describe(rationale)                            "3 words + box"

The rationale is saved with the decision by app.services.store.decide(..., rationale=...), through
db.annotations.record_annotation: in the decision's transaction, undone with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from db.annotations import current_rationales
from db.rationales import Box, Rationale, source_rationales

__all__ = [
    "Rationale",
    "box_from_selection",
    "candidate_words",
    "describe",
    "marked_rationale",
    "pair_rationale",
]


def candidate_words(n_words: int, head: tuple[int, int], tail: tuple[int, int]) -> list[int]:
    """The word indices a reviewer may mark as evidence: every word but the head's and the tail's."""
    entity = set(range(head[0], head[1])) | set(range(tail[0], tail[1]))
    return [i for i in range(n_words) if i not in entity]


def marked_rationale(
    words: Iterable[int] | None, box: Sequence[float] | None, image_size: tuple[int, int] | None
) -> Rationale | None:
    """The reviewer's marks as a Rationale (source "reviewer"); None when no word and no box is marked, so a
    decision without marks is saved exactly as before."""
    tokens = tuple(sorted(set(words or ())))
    if not tokens and box is None:
        return None
    return Rationale(
        tokens=tokens,
        box=None if box is None else tuple(float(v) for v in box),
        image_size=None if box is None else image_size,
    )


def box_from_selection(selection: Mapping[str, Any] | None, image_size: tuple[int, int]) -> Box | None:
    """The box of a Plotly box selection over the image (st.plotly_chart(on_select=..., selection_mode="box")),
    in the image's pixels: the last box drawn, clipped to the image, corners ordered, whole pixels. None when the
    selection holds no box or the box has no area inside the image.

    Streamlit gives selection["box"] as [{"x": [x0, x1], "y": [y0, y1], ...}] in axis units; the figure's axes are
    the image's pixels (y pointing down), so the numbers are pixels already."""
    if not selection:
        return None
    boxes = selection.get("box") or []
    if not boxes:
        return None
    last = boxes[-1]
    try:
        xs = [float(v) for v in last["x"]][:2]
        ys = [float(v) for v in last["y"]][:2]
    except (KeyError, TypeError, ValueError):
        return None
    if len(xs) != 2 or len(ys) != 2 or not all(math.isfinite(v) for v in xs + ys):
        return None
    width, height = image_size
    x0, x1 = (min(max(v, 0.0), width) for v in sorted(xs))
    y0, y1 = (min(max(v, 0.0), height) for v in sorted(ys))
    x0, y0, x1, y1 = math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1)
    if x1 <= x0 or y1 <= y0:
        return None
    return (float(x0), float(y0), float(x1), float(y1))


def pair_rationale(session: Session, pair_id: int) -> Rationale | None:
    """What a pair's explanations are scored against on Inspect: its current decision's rationale (a reviewer's),
    else the dataset's own evidence (source "synthetic"); None when it has neither."""
    reviewer = current_rationales(session, [pair_id]).get(pair_id)
    if reviewer is not None:
        return reviewer
    return source_rationales(session, [pair_id]).get(pair_id)


def describe(rationale: Rationale | None) -> str:
    """'3 words + box', '1 word', 'box'; '' for none (the History table's rationale column)."""
    if rationale is None:
        return ""
    parts = []
    if rationale.tokens:
        n = len(rationale.tokens)
        parts.append(f"{n} word{'s' if n != 1 else ''}")
    if rationale.box is not None:
        parts.append("box")
    return " + ".join(parts)
