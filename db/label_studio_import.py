"""Label Studio exports back into the store.

Posts and pairs that are new are added, every annotation becomes a decision with its Label Studio annotator and time
(append-only). The whole file is parsed and checked first (errors name the task index and the field), then written
in the caller's transaction. Importing the same file again adds nothing: a decision already stored with the same
annotator, time, status and label is skipped. A decision older than the pair's current one is not applied (it would
silently replace a newer label); it is listed in the report. The result shapes are db.label_studio_format's.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.annotations import append_annotation, check_label, span_values
from db.datasets import get_or_create_dataset
from db.errors import LabelStoreError
from db.io import bulk_insert, content_key, validate_image
from db.label_studio_format import (
    EVIDENCE,
    EVIDENCE_BOX_CONTROL,
    EVIDENCE_CONTROL,
    HEAD,
    REJECT_CHOICE,
    TAIL,
    config_relations,
    iso_time,
    word_offsets,
)
from db.models import Annotation, Dataset, EntityPair, Post
from db.models import Rationale as RationaleRow
from db.rationales import (
    Rationale,
    add_decision_rationale,
    check_rationale,
    decision_rationale,
    rationale_values,
    source_rationales,
)
from db.roles import Actor, require_admin
from db.spans import check_spans
from db.validate import (
    MAX_SOURCE_KEY,
    check_gold_label,
    check_identity,
    check_name,
    check_string,
    inside_folders,
    plain_file_name,
)
from model.mnre_format import DataFormatError, ReaderLimits, parse_record

DEFAULT_DATASET = "labelstudio"
DEFAULT_SPLIT = "labelstudio"
MAX_LINE_NUMBER = 2**31 - 1  # EntityPair.source_line is an INTEGER column
DEFAULT_MAX_FILE_BYTES = 64 << 20  # a Label Studio export read at once (13,871 MNRE tasks are 16.8 MB)


def _user_name(completed_by: Any) -> str | None:
    """Label Studio's `completed_by`: a user id, an email string or a {id, email, first_name, last_name} object."""
    if isinstance(completed_by, dict):
        if completed_by.get("email"):
            return str(completed_by["email"])
        name = " ".join(str(completed_by.get(k) or "") for k in ("first_name", "last_name")).strip()
        if name:
            return name
        completed_by = completed_by.get("id")
    if isinstance(completed_by, bool):
        return None
    if isinstance(completed_by, int):
        return f"labelstudio-user-{completed_by}"
    if isinstance(completed_by, str) and completed_by.strip():
        return completed_by.strip()
    return None


@dataclass
class _Decision:
    status: str
    label: str | None
    annotator: str
    created_at: datetime
    note: str | None
    where: str  # "task 3 annotations[1]" for messages
    rationale: Rationale | None = None  # checked against the pair's words, entities and image
    # the (head, tail) spans the annotation shows for its pair (checked: db.spans); None: a skip that drew nothing,
    # which keeps the spans in effect
    spans: tuple[tuple[int, int], tuple[int, int]] | None = None


@dataclass
class _PairPlan:
    dataset: str
    split: str
    source_key: str
    source_line: int | None
    tokens: list[str]
    img_id: str | None
    image_path: Path | None
    image_sha: str | None
    head: tuple[int, int]
    tail: tuple[int, int]
    gold_label: str | None
    raw_line: str | None
    where: str
    decisions: list[_Decision] = field(default_factory=list)
    evidence: Rationale | None = None  # data.mrelens.evidence: the dataset's own (synthetic) rationale
    added: tuple[str, datetime] | None = None  # data.mrelens.added_by / added_at: a pair added on Review


@dataclass
class ParsedExport:
    plans: list[_PairPlan]  # every pair the tasks name, with the decisions made on it
    tasks: int
    ignored: list[str]
    images_passed_over: list[str] = field(default_factory=list)  # tasks whose stored image path was not used


@dataclass
class LabelStudioImportReport:
    tasks: int = 0
    new_posts: int = 0
    new_pairs: int = 0
    existing_pairs: int = 0
    decisions_added: int = 0
    decisions_present: int = 0  # already stored (same annotator, time, status, label)
    stale: list[str] = field(default_factory=list)  # older than the pair's current decision: not applied
    # annotations that name no pair (skips, empty submissions)
    ignored: list[str] = field(default_factory=list)
    without_image: int = 0
    # stored image paths outside every image folder of the import (never opened): which tasks
    images_passed_over: list[str] = field(default_factory=list)
    annotators: set[str] = field(default_factory=set)  # names the added decisions were recorded under
    rationales_added: int = 0  # decisions' rationales and datasets' own evidence (db.rationales)

    @property
    def images_not_used(self) -> int:
        return len(self.images_passed_over)

    def summary(self) -> str:
        return (
            f"{self.tasks} tasks read, {self.new_pairs} pairs added, {self.existing_pairs} already present, "
            f"{self.new_posts} posts added, {self.decisions_added} decisions added, {self.decisions_present} "
            f"already stored, {len(self.stale)} older than the current decision (not applied), "
            f"{len(self.ignored)} annotations without a pair (nothing recorded), {self.without_image} pairs without image"
            + (
                f", {self.images_not_used} stored image paths outside the image folders not used (give --images)"
                if self.images_passed_over
                else ""
            )
            + (f", {self.rationales_added} rationales added" if self.rationales_added else "")
        )


class _Reader:
    """Field access on one task with errors that name the file, the task index and the field."""

    def __init__(self, path: Path, index: int):
        self.path, self.index = path, index

    def error(self, field_path: str, problem: str) -> DataFormatError:
        return DataFormatError(self.path, None, f"task {self.index}: {field_path}", problem)

    def get(
        self, obj: Any, key: str, field_path: str, kind: type | tuple[type, ...], required: bool = True
    ) -> Any:
        if not isinstance(obj, dict):
            raise self.error(field_path.rsplit(".", 1)[0], "must be an object")
        value = obj.get(key)
        if value is None:
            if required:
                raise self.error(field_path, "is missing")
            return None
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.error(field_path, f"must be {names}, got {type(value).__name__}")
        return value

    def time(self, obj: dict, field_path: str) -> datetime:
        for key in ("updated_at", "created_at"):
            text = obj.get(key)
            if text is None:
                continue
            if not isinstance(text, str):
                raise self.error(f"{field_path}.{key}", "must be an ISO time string")
            try:
                value = datetime.fromisoformat(text.replace("Z", "+00:00"))
                # in UTC now: a time near year 1 or 9999 with an offset has no UTC value
                return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
            except (ValueError, OverflowError) as err:
                raise self.error(f"{field_path}.{key}", f"{text[:80]!r} is not an ISO time in range") from err
        raise self.error(f"{field_path}.created_at", "is missing (the decision's time)")


def _image_file(
    data: dict, meta: dict, folders: list[Path], images_dir: Path | None
) -> tuple[str | None, Path | None, bool]:
    """(img_id, local file or None, whether a stored path was passed over) of a task's image: the stored path when it
    lies inside one of the image `folders` (db.validate.inside_folders) and exists, else images_dir/<file name>.

    A stored path outside every image folder is never opened: it is passed over the same way whether or not such a
    file exists, so an import says nothing about files outside those folders."""
    url = data.get("image")
    name = plain_file_name(meta.get("img_id"))
    if name is None and isinstance(url, str) and url:
        parsed = urlparse(url)
        inner = parse_qs(parsed.query).get("d", [parsed.path])[0]
        name = plain_file_name(Path(unquote(inner)).name)
    candidates = []
    passed_over = False
    stored = meta.get("image_path")
    if isinstance(stored, str) and stored:
        inside = inside_folders(stored, folders)
        if inside is None:
            passed_over = True
        else:
            candidates.append(inside)
    if images_dir is not None and name:
        candidates.append(images_dir.resolve() / name)
    for path in candidates:
        if path.is_file():
            return name, path, passed_over
    return name, None, passed_over


def _new_plan(
    reader: _Reader,
    meta: dict,
    from_meta: bool,
    dataset: str,
    tokens: list[str],
    img_id: str | None,
    image_path: Path | None,
    image_sha: str | None,
    head: tuple[int, int],
    tail: tuple[int, int],
    relations: dict[str, int],
) -> _PairPlan:
    """A pair to find or create. `from_meta`: it is the pair the task was exported for (keeps its source key,
    split, line and gold label); otherwise a pair drawn in Label Studio, keyed by content and spans."""
    gold = meta.get("gold_label") if from_meta else None
    try:
        check_gold_label(gold, relations, reader.path, f"task {reader.index}: data.mrelens.gold_label")
    except DataFormatError as err:
        raise reader.error("data.mrelens.gold_label", err.problem) from err
    source_key = meta.get("source_key") if from_meta else None
    if source_key is not None and from_meta:
        _checked(reader, check_string, source_key, "data.mrelens.source_key", MAX_SOURCE_KEY)
    if not isinstance(source_key, str) or not source_key:
        content = content_key(tokens, img_id)
        digest = hashlib.sha256(json.dumps([content, list(head), list(tail)]).encode()).hexdigest()
        source_key = "ls:" + digest[:40]
    source_line = meta.get("source_line") if from_meta else None
    if source_line is not None and (
        not isinstance(source_line, int)
        or isinstance(source_line, bool)
        or not 1 <= source_line <= MAX_LINE_NUMBER
    ):
        raise reader.error(
            "data.mrelens.source_line",
            f"must be a line number from 1 to {MAX_LINE_NUMBER}, got {source_line!r:.40}",
        )
    raw_line = meta.get("raw_line") if from_meta else None
    split = meta.get("split") or DEFAULT_SPLIT
    _checked(reader, check_name, split, "data.mrelens.split", "split")
    if raw_line is not None:
        _check_raw_line(reader, raw_line, tokens, img_id, head, tail, gold, relations)
    evidence = None
    if from_meta and meta.get("evidence") is not None:
        value = meta["evidence"]
        if not isinstance(value, dict) or value.get("source") != "synthetic":
            raise reader.error("data.mrelens.evidence", "must be a rationale object from source 'synthetic'")
        evidence = _checked_rationale(
            reader,
            "data.mrelens.evidence",
            Rationale(value.get("tokens") or (), value.get("box"), value.get("image_size"), "synthetic"),
            len(tokens),
            head,
            tail,
            img_id,
        )
    added = None
    if from_meta and meta.get("added_by") is not None:
        added_by = _checked(reader, check_identity, meta.get("added_by"), "data.mrelens.added_by")
        added_at = meta.get("added_at")
        try:
            when = datetime.fromisoformat(added_at.replace("Z", "+00:00"))
            added = (added_by, (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC))
        except (AttributeError, ValueError, OverflowError) as err:
            raise reader.error(
                "data.mrelens.added_at", f"must be an ISO time string, got {added_at!r:.40}"
            ) from err
    return _PairPlan(
        added=added,
        dataset=dataset,
        split=split,
        source_key=source_key,
        source_line=source_line,
        tokens=tokens,
        img_id=img_id,
        image_path=image_path,
        image_sha=image_sha,
        head=head,
        tail=tail,
        gold_label=gold,
        raw_line=raw_line,
        where=f"task {reader.index}",
        evidence=evidence,
    )


def _checked_rationale(
    reader: _Reader,
    field_path: str,
    rationale: Rationale,
    n_words: int,
    head: tuple[int, int],
    tail: tuple[int, int],
    img_id: str | None,
) -> Rationale:
    """db.rationales.check_rationale with an error that names this task's field."""
    try:
        return check_rationale(rationale, n_words, [head, tail], img_id is not None)
    except LabelStoreError as err:
        raise reader.error(field_path, str(err)) from err


def _box_from_percent(reader: _Reader, result: dict, result_path: str, hint: Any) -> tuple[tuple, tuple]:
    """An evidence "rectanglelabels" region -> (box in pixels, (width, height)). The exact pixel box the export
    wrote (annotation mrelens.evidence_box) is used while it matches the percent box to 1e-6 of the image."""
    width = reader.get(result, "original_width", f"{result_path}.original_width", int)
    height = reader.get(result, "original_height", f"{result_path}.original_height", int)
    if width <= 0 or height <= 0 or width > 10**6 or height > 10**6:
        raise reader.error(f"{result_path}.original_width", f"{width}x{height} is not an image size")
    value = reader.get(result, "value", f"{result_path}.value", dict)
    if result.get("image_rotation", 0) != 0 or value.get("rotation", 0) != 0:
        raise reader.error(f"{result_path}.value.rotation", "a rotated evidence box is not supported")
    labels = reader.get(value, "rectanglelabels", f"{result_path}.value.rectanglelabels", list)
    if labels != [EVIDENCE]:
        raise reader.error(
            f"{result_path}.value.rectanglelabels", f'must be ["evidence"], got {labels!r:.80}'
        )
    numbers = []
    for key in ("x", "y", "width", "height"):
        number = reader.get(value, key, f"{result_path}.value.{key}", (int, float))
        if not math.isfinite(number):
            raise reader.error(f"{result_path}.value.{key}", f"{number!r} is not a finite number")
        numbers.append(float(number))
    x, y, w, h = numbers
    box = (x * width / 100, y * height / 100, (x + w) * width / 100, (y + h) * height / 100)
    exact = hint.get("evidence_box") if isinstance(hint, dict) else None
    if (
        isinstance(exact, list)
        and len(exact) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in exact)
        and all(abs(a - b) <= 1e-6 * max(width, height) for a, b in zip(exact, box, strict=True))
    ):
        box = tuple(float(v) for v in exact)
    return box, (width, height)


def _checked(reader: _Reader, check, value: Any, field_path: str, *args) -> Any:
    """A db.validate check whose error names this task's field."""
    try:
        return check(value, reader.path, field_path, *args)
    except DataFormatError as err:
        raise reader.error(field_path, err.problem) from err


def _check_raw_line(
    reader: _Reader,
    raw_line: Any,
    tokens: list[str],
    img_id: str | None,
    head: tuple[int, int],
    tail: tuple[int, int],
    gold: str | None,
    relations: dict[str, int],
) -> None:
    """data.mrelens.raw_line (the source line an MNRE export writes back verbatim) must be exactly one MNRE record,
    the very record the task describes: same words, spans, image and gold label."""
    field_path = "data.mrelens.raw_line"
    if not isinstance(raw_line, str):
        raise reader.error(field_path, f"must be a string, got {type(raw_line).__name__}")
    if "\n" in raw_line or "\r" in raw_line:
        raise reader.error(field_path, "must be one line")
    try:
        record = parse_record(raw_line, reader.path, None, relations, ReaderLimits.from_env())
    except (DataFormatError, ValueError) as err:
        raise reader.error(field_path, getattr(err, "problem", str(err))) from err
    described = (record.tokens, (record.head.start, record.head.end), (record.tail.start, record.tail.end))
    if described != (tokens, head, tail) or record.img_id != img_id or record.relation != gold:
        raise reader.error(
            field_path, "is not the record this task describes (its words, spans, image or gold label differ)"
        )


def _meta_span(reader: _Reader, meta: dict, key: str, n_words: int) -> tuple[int, int] | None:
    span = meta.get(key)
    if span is None:
        return None
    if not (
        isinstance(span, list)
        and len(span) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in span)
        and 0 <= span[0] < span[1] <= n_words
    ):
        raise reader.error(f"data.mrelens.{key}", f"must be [start, end) word indices within {n_words} words")
    return span[0], span[1]


def _parse_task(
    task: Any,
    reader: _Reader,
    relations: dict[str, int],
    dataset: str,
    images_dir: Path | None,
    image_shas: dict[Path, str],
    ignored: list[str],
    image_folders: dict[str, list[Path]],
    passed_over: list[str],
) -> list[_PairPlan]:
    """The pairs of one task with the decisions its annotations make on them; annotations that name no pair (a skip
    of a task drawn in Label Studio, an empty submission) are listed in `ignored`."""
    if not isinstance(task, dict):
        raise reader.error("task", f"must be an object, got {type(task).__name__}")
    data = reader.get(task, "data", "data", dict)
    text = reader.get(data, "text", "data.text", str)
    meta = data.get("mrelens")
    if meta is None:
        meta = {}
    elif not isinstance(meta, dict):
        raise reader.error("data.mrelens", "must be an object")
    tokens = meta.get("tokens")
    if tokens is not None:
        if not (isinstance(tokens, list) and all(isinstance(t, str) and t for t in tokens)):
            raise reader.error("data.mrelens.tokens", "must be a list of non-empty strings")
        if " ".join(tokens) != text:
            raise reader.error("data.text", "differs from the words of data.mrelens.tokens joined by spaces")
        offsets = word_offsets(tokens)
    else:
        matches = list(re.finditer(r"\S+", text))
        tokens = [m.group() for m in matches]
        offsets = [m.span() for m in matches]
    if not tokens:
        raise reader.error("data.text", "has no words")
    max_words = ReaderLimits.from_env().max_post_tokens
    if len(tokens) > max_words:
        raise reader.error(
            "data.text",
            f"{len(tokens)} words is over the {max_words} token limit ({ReaderLimits.ENV['max_post_tokens']})",
        )
    starts = {c0: i for i, (c0, _) in enumerate(offsets)}
    ends = {c1: i + 1 for i, (_, c1) in enumerate(offsets)}
    dataset_name = meta.get("dataset") or dataset
    _checked(reader, check_name, dataset_name, "data.mrelens.dataset", "dataset")
    folders = [images_dir] if images_dir is not None else []
    img_id, image_path, passed = _image_file(
        data, meta, folders + image_folders.get(dataset_name, []), images_dir
    )
    if passed:
        passed_over.append(f"task {reader.index}")
    if image_path is not None and image_path not in image_shas:
        try:
            image_shas[image_path] = validate_image(image_path)
        except DataFormatError as err:
            raise reader.error("data.image", f"{image_path}: {err.problem}") from err
    image_sha = image_shas.get(image_path) if image_path is not None else None
    meta_head = _meta_span(reader, meta, "head", len(tokens))
    meta_tail = _meta_span(reader, meta, "tail", len(tokens))

    pairs: dict[tuple[tuple[int, int], tuple[int, int]], _PairPlan] = {}
    if meta_head and meta_tail:  # the exported pair exists even when nobody has annotated it yet
        pairs[(meta_head, meta_tail)] = _new_plan(
            reader,
            meta,
            True,
            dataset_name,
            tokens,
            img_id,
            image_path,
            image_sha,
            meta_head,
            meta_tail,
            relations,
        )
    annotations = reader.get(task, "annotations", "annotations", list, required=False) or []
    for j, annotation_json in enumerate(annotations):
        where = f"annotations[{j}]"
        if not isinstance(annotation_json, dict):
            raise reader.error(where, "must be an object")
        annotator = _user_name(annotation_json.get("completed_by"))
        if annotator is None:
            raise reader.error(f"{where}.completed_by", "must name the annotator (user id, email or object)")
        _checked(reader, check_identity, annotator, f"{where}.completed_by")
        when = reader.time(annotation_json, where)
        cancelled = annotation_json.get("was_cancelled") is True
        results = reader.get(annotation_json, "result", f"{where}.result", list, required=False) or []
        regions: dict[str, tuple[str, tuple[int, int]]] = {}
        links, rejected, note = [], False, None
        evidence_words: set[int] = set()
        evidence_box, evidence_path = None, f"{where}.result"
        for k, result in enumerate(results):
            result_path = f"{where}.result[{k}]"
            kind = reader.get(result, "type", f"{result_path}.type", str)
            if kind == "labels" and result.get("from_name") == EVIDENCE_CONTROL:
                value = reader.get(result, "value", f"{result_path}.value", dict)
                start = reader.get(value, "start", f"{result_path}.value.start", int)
                end = reader.get(value, "end", f"{result_path}.value.end", int)
                labels = reader.get(value, "labels", f"{result_path}.value.labels", list)
                if labels != [EVIDENCE]:
                    raise reader.error(
                        f"{result_path}.value.labels", f'must be ["evidence"], got {labels!r:.80}'
                    )
                if start not in starts:
                    raise reader.error(
                        f"{result_path}.value.start", f"{start} is not where a word of data.text starts"
                    )
                if end not in ends or ends[end] <= starts[start]:
                    raise reader.error(
                        f"{result_path}.value.end", f"{end} is not where a word ends after value.start"
                    )
                evidence_words.update(range(starts[start], ends[end]))
                evidence_path = result_path
            elif kind == "rectanglelabels" and result.get("from_name") == EVIDENCE_BOX_CONTROL:
                if evidence_box is not None:
                    raise reader.error(result_path, "a second evidence box; a rationale has one box")
                evidence_box = _box_from_percent(reader, result, result_path, annotation_json.get("mrelens"))
                evidence_path = result_path
            elif kind == "labels":
                value = reader.get(result, "value", f"{result_path}.value", dict)
                region_id = reader.get(result, "id", f"{result_path}.id", str)
                start = reader.get(value, "start", f"{result_path}.value.start", int)
                end = reader.get(value, "end", f"{result_path}.value.end", int)
                labels = reader.get(value, "labels", f"{result_path}.value.labels", list)
                if len(labels) != 1 or labels[0] not in (HEAD, TAIL):
                    raise reader.error(
                        f"{result_path}.value.labels", f'must be ["head"] or ["tail"], got {labels!r}'
                    )
                if start not in starts:
                    raise reader.error(
                        f"{result_path}.value.start", f"{start} is not where a word of data.text starts"
                    )
                if end not in ends or ends[end] <= starts[start]:
                    raise reader.error(
                        f"{result_path}.value.end", f"{end} is not where a word ends after value.start"
                    )
                span_text = value.get("text")
                if span_text is not None and span_text != text[start:end]:
                    raise reader.error(
                        f"{result_path}.value.text",
                        f"{span_text!r} differs from data.text[{start}:{end}] {text[start:end]!r}",
                    )
                regions[region_id] = (labels[0], (starts[start], ends[end]))
            elif kind == "relation":
                from_id = reader.get(result, "from_id", f"{result_path}.from_id", str)
                to_id = reader.get(result, "to_id", f"{result_path}.to_id", str)
                labels = reader.get(result, "labels", f"{result_path}.labels", list, required=False) or []
                if len(labels) > 1:
                    raise reader.error(f"{result_path}.labels", f"one relation per pair, got {labels!r}")
                if labels and not isinstance(labels[0], str):
                    raise reader.error(
                        f"{result_path}.labels", f"must hold a relation name, got {labels[0]!r}"
                    )
                if labels and labels[0] not in relations:
                    raise reader.error(
                        f"{result_path}.labels", f"{labels[0]!r} is not one of the config's relations"
                    )
                direction = result.get("direction", "right")
                if direction not in ("right", "left"):
                    raise reader.error(
                        f"{result_path}.direction", f"must be 'right' or 'left', got {direction!r}"
                    )
                if direction == "left":  # drawn from tail to head
                    from_id, to_id = to_id, from_id
                links.append((result_path, from_id, to_id, labels[0] if labels else None))
            elif kind == "choices":
                value = reader.get(result, "value", f"{result_path}.value", dict)
                rejected = rejected or REJECT_CHOICE in reader.get(
                    value, "choices", f"{result_path}.value.choices", list
                )
            elif kind == "textarea":
                value = reader.get(result, "value", f"{result_path}.value", dict)
                note = (
                    "\n".join(str(t) for t in reader.get(value, "text", f"{result_path}.value.text", list))
                    or None
                )
            # other result types (image regions, ...) carry nothing the store keeps
        if not links:
            if cancelled and meta_head and meta_tail:  # skipped without touching the pre-annotation
                links.append((where, None, None, None))
            elif cancelled or not regions:  # a skip or an empty submission names no pair: nothing to record
                ignored.append(
                    f"task {reader.index} {where} by {annotator}: no relation drawn, nothing recorded"
                )
                continue
            else:
                raise reader.error(
                    f"{where}.result", "has spans but no relation from a head span to a tail span"
                )
        for result_path, from_id, to_id, label in links:
            if from_id is None:
                head, tail = meta_head, meta_tail
            else:
                for field_path, region, role in (
                    (f"{result_path}.from_id", from_id, HEAD),
                    (f"{result_path}.to_id", to_id, TAIL),
                ):
                    if region not in regions:
                        raise reader.error(field_path, f"{region!r} is not a span region of this annotation")
                    if regions[region][0] != role:
                        raise reader.error(
                            field_path,
                            f"region {region!r} is a {regions[region][0]} span; relations go head -> tail",
                        )
                head, tail = regions[from_id][1], regions[to_id][1]
            fixed = (head, tail)  # the spans this annotation shows
            own_regions = (f"h{meta.get('pair_id')}", f"t{meta.get('pair_id')}")
            if (
                meta_head
                and meta_tail
                and (from_id, to_id) == own_regions
                and fixed != (meta_head, meta_tail)
            ):
                # the task's own regions, moved: a span fixed on the task's pair (on Review, or in Label Studio)
                try:
                    check_spans(head, tail, tokens)
                except LabelStoreError as err:
                    raise reader.error(result_path, str(err)) from err
                head, tail = meta_head, meta_tail
            if (head, tail) not in pairs:
                pairs[(head, tail)] = _new_plan(
                    reader,
                    meta,
                    False,
                    dataset_name,
                    tokens,
                    img_id,
                    image_path,
                    image_sha,
                    head,
                    tail,
                    relations,
                )
            plan = pairs[(head, tail)]
            if cancelled:
                status = "skipped"
            elif rejected:
                status, label = "rejected", None
            elif label is None:
                raise reader.error(
                    f"{result_path}.labels", "is empty: pick a relation, or choose 'reject pair'"
                )
            else:
                status = "accepted" if label == plan.gold_label else "corrected"
                hint = annotation_json.get("mrelens")
                if status == "accepted" and isinstance(hint, dict) and hint.get("status") == "corrected":
                    status = "corrected"
            rationale = None
            shown = fixed if from_id is not None else None
            if evidence_words or evidence_box is not None:
                box, size = evidence_box if evidence_box is not None else (None, None)
                rationale = _checked_rationale(
                    reader,
                    evidence_path,
                    Rationale(tuple(sorted(evidence_words)), box, size),
                    len(tokens),
                    *(shown or (head, tail)),
                    img_id,
                )
            plan.decisions.append(
                _Decision(
                    status, label, annotator, when, note, f"task {reader.index} {where}", rationale, shown
                )
            )
    return list(pairs.values())


def read_label_studio(
    path: str | Path,
    dataset: str = DEFAULT_DATASET,
    images_dir: str | Path | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    image_folders: dict[str, list[Path]] | None = None,
) -> ParsedExport:
    """Parse and check a Label Studio JSON export (a list of tasks) without touching the store.

    `image_folders`: dataset name -> folders its stored image paths may lie in (besides `images_dir`)."""
    path = Path(path)
    check_name(dataset, "--dataset", "dataset", "dataset")
    # a FIFO would block the read forever, a folder or device is no export: refuse before opening
    if path.exists() and not path.is_file():
        raise DataFormatError(path, None, None, "is not a regular file (a FIFO, device or folder)")
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_file_bytes + 1)
        if len(data) > max_file_bytes:
            raise DataFormatError(
                path, None, None, f"is over the {max_file_bytes} byte limit (--max-file-bytes)"
            )
        tasks = json.loads(data.decode("utf-8"))
    except FileNotFoundError as err:
        raise DataFormatError(path, None, None, "file not found") from err
    except DataFormatError:  # over the size limit: already says so
        raise
    except UnicodeDecodeError as err:
        raise DataFormatError(path, None, None, f"not UTF-8 text ({err.reason})") from err
    except json.JSONDecodeError as err:
        raise DataFormatError(path, err.lineno, None, f"invalid JSON: {err.msg}") from err
    except RecursionError as err:
        raise DataFormatError(path, None, None, "JSON nested too deeply") from err
    except ValueError as err:  # e.g. an integer of more than 4,300 digits
        raise DataFormatError(path, None, None, f"invalid JSON: {err}") from err
    if isinstance(tasks, dict):  # a single task
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise DataFormatError(path, None, None, "must be a JSON list of Label Studio tasks")
    relations = {name: i for i, name in enumerate(config_relations())}
    image_shas: dict[Path, str] = {}
    folder = Path(images_dir) if images_dir is not None else None
    plans: list[_PairPlan] = []
    ignored: list[str] = []
    passed_over: list[str] = []
    for index, task in enumerate(tasks):
        plans.extend(
            _parse_task(
                task,
                _Reader(path, index),
                relations,
                dataset,
                folder,
                image_shas,
                ignored,
                image_folders or {},
                passed_over,
            )
        )
    return ParsedExport(plans, len(tasks), ignored, passed_over)


def import_label_studio(
    session: Session,
    path: str | Path,
    dataset: str = DEFAULT_DATASET,
    images_dir: str | Path | None = None,
    actor: Actor | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> LabelStudioImportReport:
    """Import a Label Studio export made with the shipped config into the caller's transaction (see module doc).

    `dataset`: where pairs drawn in Label Studio go (tasks exported by MRE Lens name their own dataset);
    `images_dir`: where to find images by file name when the task's stored path does not exist here.
    Importing is an admin action (db.roles); `actor` None is the local single user.
    """
    require_admin(actor, f"import a Label Studio export into dataset {dataset!r}")
    # a stored image path is used only inside --images or the folder its dataset was imported from
    folder_sources = {
        name: Path(source)
        for name, source in session.execute(
            select(Dataset.name, Dataset.source_path).where(Dataset.source_path.is_not(None))
        )
        if Path(source).is_dir()
    }
    parsed = read_label_studio(
        path,
        dataset,
        images_dir,
        max_file_bytes,
        image_folders={name: [source] for name, source in folder_sources.items()},
    )
    plans = parsed.plans
    report = LabelStudioImportReport(
        tasks=parsed.tasks, ignored=parsed.ignored, images_passed_over=parsed.images_passed_over
    )
    # a dataset made here gets the config's relations (MNRE's ours_rel2id.json order)
    label_map = {name: i for i, name in enumerate(config_relations())}
    datasets: dict[str, Dataset] = {}
    for name in dict.fromkeys(p.dataset for p in plans):
        existing = session.scalar(select(Dataset).where(Dataset.name == name))
        datasets[name] = existing or get_or_create_dataset(
            session, name, source_path=str(Path(path).resolve()), label_map=label_map
        )
    for plan in plans:  # gold labels from the label map of the dataset they go to
        try:
            check_gold_label(
                plan.gold_label,
                datasets[plan.dataset].label_map,
                path,
                f"{plan.where}: data.mrelens.gold_label",
            )
        except DataFormatError as err:
            raise DataFormatError(path, None, f"{plan.where}: data.mrelens.gold_label", err.problem) from err

    # posts, deduplicated by content as in the MNRE import
    post_ids: dict[tuple[int, str], int] = {}
    for dataset_row in datasets.values():
        for key, pid in session.execute(
            select(Post.content_key, Post.id).where(Post.dataset_id == dataset_row.id)
        ).all():
            post_ids[(dataset_row.id, key)] = pid
    new_posts: dict[tuple[int, str], dict[str, Any]] = {}
    for plan in plans:
        ds_id = datasets[plan.dataset].id
        key = (ds_id, content_key(plan.tokens, plan.img_id))
        if key not in post_ids and key not in new_posts:
            new_posts[key] = {
                "dataset_id": ds_id,
                "content_key": key[1],
                "tokens": plan.tokens,
                "text": " ".join(plan.tokens),
                "img_id": plan.img_id,
                "has_image": plan.image_sha is not None,
                "image_sha256": plan.image_sha,
                "image_path": str(plan.image_path) if plan.image_sha else None,
            }
    bulk_insert(session, Post, list(new_posts.values()))
    report.new_posts = len(new_posts)
    if new_posts:
        for dataset_row in datasets.values():
            for key, pid in session.execute(
                select(Post.content_key, Post.id).where(Post.dataset_id == dataset_row.id)
            ).all():
                post_ids[(dataset_row.id, key)] = pid

    # pairs: an existing (dataset, source key) must be the same pair
    stored = {}
    stored_tokens: dict[int, list[str]] = {}
    for dataset_row in datasets.values():
        for pair, tokens in session.execute(
            select(EntityPair, Post.tokens)
            .join(Post, Post.id == EntityPair.post_id)
            .where(EntityPair.dataset_id == dataset_row.id)
        ):
            stored[(dataset_row.id, pair.source_key)] = pair
            stored_tokens[pair.id] = list(tokens)
    new_pairs: dict[tuple[int, str], dict[str, Any]] = {}
    for plan in plans:
        ds_id = datasets[plan.dataset].id
        key = (ds_id, plan.source_key)
        if plan.image_sha is None:
            report.without_image += 1
        if key in stored:
            pair = stored[key]
            if stored_tokens[pair.id] != plan.tokens:
                raise DataFormatError(
                    path,
                    None,
                    f"{plan.where}: data.mrelens",
                    f"pair {plan.source_key!r} of dataset {plan.dataset!r} is stored with other words; "
                    "import into another dataset (--dataset) or drop data.mrelens",
                )
            if (pair.head_start, pair.head_end, pair.tail_start, pair.tail_end) != (*plan.head, *plan.tail):
                raise DataFormatError(
                    path,
                    None,
                    f"{plan.where}: data.mrelens",
                    f"pair {plan.source_key!r} of dataset {plan.dataset!r} "
                    "is stored with other spans; import into another dataset (--dataset) or drop data.mrelens",
                )
            report.existing_pairs += 1
            continue
        if key in new_pairs:
            continue
        source = folder_sources.get(plan.dataset)
        if (
            source is not None and plan.added is None
        ):  # an MNRE dataset's pairs are its folder's records and the
            # pairs reviewers added (data.mrelens.added_by), nothing else
            raise DataFormatError(
                path,
                None,
                f"{plan.where}: data.mrelens.source_key",
                f"pair {plan.source_key!r} is not in dataset {plan.dataset!r}, which was imported from {source}; "
                "a Label Studio file may annotate its pairs but not add any (drop data.mrelens.dataset to add "
                "the pair to --dataset)",
            )
        new_pairs[key] = {
            "post_id": post_ids[(ds_id, content_key(plan.tokens, plan.img_id))],
            "dataset_id": ds_id,
            "split": plan.split,
            "source_key": plan.source_key,
            "source_line": plan.source_line,
            "head_name": " ".join(plan.tokens[plan.head[0] : plan.head[1]]),
            "head_start": plan.head[0],
            "head_end": plan.head[1],
            "tail_name": " ".join(plan.tokens[plan.tail[0] : plan.tail[1]]),
            "tail_start": plan.tail[0],
            "tail_end": plan.tail[1],
            "gold_label": plan.gold_label,
            "raw_line": plan.raw_line,
            "added_by": plan.added[0] if plan.added else None,
            "added_at": plan.added[1] if plan.added else None,
        }
    bulk_insert(session, EntityPair, list(new_pairs.values()))
    report.new_pairs = len(new_pairs)
    pair_by_key = {
        (pair.dataset_id, pair.source_key): pair
        for ds in datasets.values()
        for pair in session.scalars(select(EntityPair).where(EntityPair.dataset_id == ds.id))
    }
    # the dataset's own evidence (data.mrelens.evidence) for pairs that have none stored yet
    with_evidence = {
        pair_by_key[(datasets[plan.dataset].id, plan.source_key)].id: plan.evidence
        for plan in plans
        if plan.evidence is not None
    }
    stored_evidence = source_rationales(session, list(with_evidence))
    for pair_id, evidence in with_evidence.items():
        if pair_id not in stored_evidence:
            session.add(RationaleRow(pair_id=pair_id, annotation_id=None, **rationale_values(evidence)))
            report.rationales_added += 1

    # decisions, oldest first per pair, appended after what is stored
    by_pair: dict[int, list[_Decision]] = defaultdict(list)
    pairs: dict[int, EntityPair] = {}
    for plan in plans:
        if plan.decisions:
            pair = pair_by_key[(datasets[plan.dataset].id, plan.source_key)]
            pairs[pair.id] = pair
            by_pair[pair.id].extend(plan.decisions)
    histories: dict[int, list[Annotation]] = defaultdict(list)
    pair_ids = list(by_pair)
    for start in range(0, len(pair_ids), 5000):  # one query per chunk, not one per pair
        for annotation in session.scalars(
            select(Annotation)
            .where(Annotation.pair_id.in_(pair_ids[start : start + 5000]))
            .order_by(Annotation.pair_id, Annotation.revision)
        ):
            histories[annotation.pair_id].append(annotation)
    for pair_id, decisions in by_pair.items():
        pair, history = pairs[pair_id], histories[pair_id]
        # a skip is stored with the label it kept (the previous decision's): compare skips without their label
        seen = {_decision_key(a.annotator, a.created_at, a.status, a.label) for a in history}
        for decision in sorted(decisions, key=lambda decision: decision.created_at):
            if (
                _decision_key(decision.annotator, decision.created_at, decision.status, decision.label)
                in seen
            ):
                report.decisions_present += 1
                continue
            if history and decision.created_at < history[-1].created_at:
                report.stale.append(
                    f"{decision.where}: {decision.annotator} at {iso_time(decision.created_at)} is older than the pair's current decision "
                    f"({history[-1].annotator} at {iso_time(history[-1].created_at)})"
                )
                continue
            label = decision.label
            if decision.status == "skipped" and label is None:  # a skip keeps the previous decision's label
                label = history[-1].label if history else None
            if label is not None and decision.status != "skipped":
                try:
                    check_label(session, pair, label)
                except LabelStoreError as err:
                    raise DataFormatError(path, None, f"{decision.where}: result", str(err)) from err
            # the spans the annotation shows (NULL where they are the pair's own); a skip that drew nothing keeps them
            spans = {}
            if decision.spans is not None:
                tokens = stored_tokens.get(pair.id) or pair_tokens(session, pair)
                try:
                    spans = span_values(pair, *check_spans(*decision.spans, tokens))
                except LabelStoreError as err:
                    raise DataFormatError(path, None, f"{decision.where}: result", str(err)) from err
            row = append_annotation(
                session,
                pair,
                history[-1].revision if history else 0,
                label=label,
                status=decision.status,
                annotator=decision.annotator,
                note=decision.note,
                created_at=decision.created_at,
                **spans,
            )
            rationale = decision.rationale
            if rationale is None and decision.status == "skipped" and history:  # as record_annotation does
                rationale = decision_rationale(session, history[-1].id)
            if rationale is not None:
                add_decision_rationale(session, row, rationale)
                report.rationales_added += 1
            history.append(row)
            report.annotators.add(decision.annotator)
            seen.add(_decision_key(decision.annotator, decision.created_at, decision.status, decision.label))
            report.decisions_added += 1
    return report


def _decision_key(annotator: str, created_at: datetime, status: str, label: str | None) -> tuple:
    """What makes a decision already stored: annotator, time (in UTC), status and label (none for a skip)."""
    return annotator, created_at.astimezone(UTC), status, None if status == "skipped" else label


def pair_tokens(session: Session, pair: EntityPair) -> list[str]:
    return list(session.scalar(select(Post.tokens).where(Post.id == pair.post_id)))
