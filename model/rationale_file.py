"""The synthetic generator's evidence file, `rationales.jsonl`: one JSON object per record, why its label holds (the
deciding object's box in image pixels, or the one trigger word). The one reader of that file: model.synthetic
writes and reads it, db.rationales stores it in the label store, explain.plausibility scores against it. Plain
Python (no torch), so the label store can read it without loading a model.

    iter_rationales(folder)              (file line number, Rationale) for every record, in file order
    read_rationales(folder, split=None)  {(split, line): Rationale}

A malformed line is a ValueError that names the file, the line and the field: not JSON, a field missing or unknown,
a field of the wrong type, a box that is not (x0, y0, x1, y1) with x0 < x1 and y0 < y1, or a box outside the image.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

RATIONALES_FILE = "rationales.jsonl"
RATIONALE_SOURCE = "synthetic"
DECIDED_BY = ("image", "text")
FIELDS = ("split", "line", "img_id", "source", "decided_by", "tokens", "box", "image_size")


@dataclass(frozen=True)
class Rationale:
    """Why one record's label holds: evidence words and/or an evidence box, from a named source."""

    split: str
    line: int  # 1-based line of the record in txt/ours_<split>.txt (model.data.Record.line)
    img_id: str | None
    words: tuple[int, ...]  # indices into the record's "token" list; the two entities are never evidence
    box: (
        tuple[int, int, int, int] | None
    )  # (x0, y0, x1, y1) in the original image's pixels, right/bottom exclusive
    image_size: tuple[int, int] | None  # (width, height) of the original image
    decided_by: str  # "image" | "text"
    source: str = RATIONALE_SOURCE

    def to_json(self) -> dict:
        return {
            "split": self.split,
            "line": self.line,
            "img_id": self.img_id,
            "source": self.source,
            "decided_by": self.decided_by,
            "tokens": list(self.words),
            "box": None if self.box is None else list(self.box),
            "image_size": None if self.image_size is None else list(self.image_size),
        }


def _int_list(value, n: int | None, where: str, field: str) -> tuple[int, ...]:
    if not isinstance(value, list) or (n is not None and len(value) != n):
        raise ValueError(f"{where}: field {field!r} must be a list of {n or 'any number of'} integers")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise ValueError(f"{where}: field {field!r} must hold integers >= 0")
    return tuple(value)


def parse_rationale(row, where: str) -> Rationale:
    """One line's object as a Rationale; ValueError naming `where` (file:line) and the field."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: a rationale is a JSON object")
    missing = [f for f in FIELDS if f not in row]
    if missing:
        raise ValueError(f"{where}: field {missing[0]!r} is missing (a rationale has {', '.join(FIELDS)})")
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        raise ValueError(f"{where}: field {unknown[0]!r} is unknown (a rationale has {', '.join(FIELDS)})")
    for field in ("split", "source"):
        if not isinstance(row[field], str):
            raise ValueError(f"{where}: field {field!r} must be a string")
    if not isinstance(row["line"], int) or isinstance(row["line"], bool) or row["line"] < 1:
        raise ValueError(f"{where}: field 'line' is a 1-based line number")
    if row["img_id"] is not None and not isinstance(row["img_id"], str):
        raise ValueError(f"{where}: field 'img_id' must be a string or null")
    if row["decided_by"] not in DECIDED_BY:
        raise ValueError(f"{where}: field 'decided_by' must be one of {DECIDED_BY}")
    box = None if row["box"] is None else _int_list(row["box"], 4, where, "box")
    if box is not None and not (box[0] < box[2] and box[1] < box[3]):
        raise ValueError(f"{where}: field 'box' must be (x0, y0, x1, y1) with x0 < x1 and y0 < y1")
    size = None if row["image_size"] is None else _int_list(row["image_size"], 2, where, "image_size")
    if box is not None:
        if size is None or 0 in size:
            raise ValueError(f"{where}: field 'image_size': a box needs the image's (width, height)")
        if box[2] > size[0] or box[3] > size[1]:
            raise ValueError(f"{where}: field 'box': {list(box)} is outside the {size[0]}x{size[1]} image")
    return Rationale(
        split=row["split"],
        line=row["line"],
        img_id=row["img_id"],
        words=_int_list(row["tokens"], None, where, "tokens"),
        box=box,
        image_size=size,
        decided_by=row["decided_by"],
        source=row["source"],
    )


def iter_rationales(folder: str | Path) -> Iterator[tuple[int, Rationale]]:
    """(line number in the file, Rationale) for each non-blank line of FOLDER/rationales.jsonl, in file order."""
    path = Path(folder) / RATIONALES_FILE
    with path.open(encoding="utf-8") as fh:
        for number, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not JSON ({err.msg})") from err
            yield number, parse_rationale(row, where)


def read_rationales(folder: str | Path, split: str | None = None) -> dict[tuple[str, int], Rationale]:
    """{(split, line): Rationale} from FOLDER/rationales.jsonl (the split's records only when split is given).

    A malformed line is an error naming the file, the line and the field."""
    return {(r.split, r.line): r for _, r in iter_rationales(folder) if split is None or r.split == split}
