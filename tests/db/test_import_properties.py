"""Property-based tests (Hypothesis) of the importers and the export round trip: any input either imports and
exports again byte for byte, or is refused with one `error:` line and nothing stored.

- the MNRE line importer (db.io.import_mnre on a one-line split file; blank lines are skipped by design and not
  generated, nor a carriage return: CRLF line ends are written back as LF); an imported line also comes back with
  the same words, spans and label from the JSONL and CSV exports;
- the Label Studio task importer (db.label_studio.import_label_studio on a one-task file): an import that succeeds
  exports tasks that a fresh store imports into the same tasks again;
- the `model.predict` input line (numbered_lines + parse_post): a Post or that line's one-line error, never an
  exception.

The CI budget (MRELENS_FUZZ_EXAMPLES, default 40 / 40 / 300 examples) runs in well under a minute; the longer run's
figures are in benchmarks/reliability.md (`python benchmarks/probe_reliability.py --fuzz N`).
"""

from __future__ import annotations

import ast
import csv
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from db.io import import_mnre
from db.label_export import export_labels
from db.label_studio import export_label_studio, import_label_studio, label_studio_tasks
from db.models import Annotation, EntityPair, Post
from db.schema import open_database
from db.validate import mnre_label_map
from model.mnre_format import DataFormatError
from model.predict import parse_post
from model.safe_write import UnsafeTargetError

SCALE = int(os.environ.get("MRELENS_FUZZ_EXAMPLES", "40"))
FAST = settings(
    max_examples=SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
LABELS = mnre_label_map()
RELATIONS = sorted(LABELS)
WORD = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=8)
REFUSED = (DataFormatError, UnsafeTargetError)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """An empty store at the latest schema, copied for every example (building one runs every migration)."""
    path = tmp_path_factory.mktemp("fuzz") / "template.db"
    engine, _ = open_database(f"sqlite:///{path}")
    engine.dispose()
    return path


class Store:
    def __init__(self, template: Path):
        self.folder = Path(tempfile.mkdtemp(prefix="mrelens-fuzz-"))
        shutil.copy(template, self.folder / "store.db")
        self.engine, self.sessions = open_database(f"sqlite:///{self.folder / 'store.db'}", intent="write")

    def counts(self) -> tuple[int, int, int]:
        with self.sessions() as session:
            return tuple(
                session.scalar(select(func.count()).select_from(m)) for m in (Post, EntityPair, Annotation)
            )

    def close(self) -> None:
        self.engine.dispose()
        shutil.rmtree(self.folder)


def _one_line(err: Exception) -> None:
    assert "\n" not in str(err) and str(err), repr(err)
    event(
        "refused: "
        + re.sub(r"\d+", "N", getattr(err, "field", None) or getattr(err, "problem", str(err)))[:50]
    )


@st.composite
def mnre_records(draw) -> str:
    tokens = draw(st.lists(WORD, min_size=1, max_size=12))
    n = len(tokens)
    h0 = draw(st.integers(0, n - 1))
    h1 = draw(st.integers(h0 + 1, n))
    t0 = draw(st.integers(0, n - 1))
    t1 = draw(st.integers(t0 + 1, n))
    record = {
        "token": tokens,
        "h": {"name": " ".join(tokens[h0:h1]), "pos": [h0, h1]},
        "t": {"name": " ".join(tokens[t0:t1]), "pos": [t0, t1]},
        "img_id": draw(st.none() | st.from_regex(r"[a-z0-9]{1,8}\.jpg", fullmatch=True)),
        "relation": draw(st.sampled_from(RELATIONS) | WORD),
    }
    if draw(st.booleans()):
        record["extra"] = draw(st.integers(-(10**30), 10**30) | st.text(max_size=5))
    return repr(record)


NESTED = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=20,
)
MNRE_LINES = (
    mnre_records()
    | st.text(st.characters(blacklist_characters="\n\r"), min_size=1, max_size=60)
    | NESTED.map(repr)
    | st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth)
).filter(lambda line: line.strip() and "\n" not in line and "\r" not in line)


@FAST
@given(line=MNRE_LINES)
def test_an_mnre_line_imports_and_exports_byte_for_byte_or_is_refused(template, line):
    store = Store(template)
    try:
        root = store.folder / "mnre"
        (root / "txt").mkdir(parents=True)
        (root / "ours_rel2id.json").write_text(json.dumps(LABELS))
        source = line.encode("utf-8", "surrogatepass") + b"\n"
        (root / "txt" / "ours_train.txt").write_bytes(source)
        try:
            with store.sessions.begin() as session:
                import_mnre(session, root)
        except REFUSED as err:
            _one_line(err)
            assert store.counts() == (0, 0, 0)
            return
        out = store.folder / "out"
        with store.sessions() as session:
            export_labels(session, "mnre", out)
        assert (out / "txt" / "ours_train.txt").read_bytes() == source
        # the JSONL and CSV exports carry the same words, spans and label (CSV: JSON cells, never neutralised)
        record = ast.literal_eval(line)
        with store.sessions() as session:
            export_labels(session, "jsonl", store.folder / "labels.jsonl")
            export_labels(session, "csv", store.folder / "labels.csv")
        (row,) = [json.loads(text) for text in (store.folder / "labels.jsonl").read_text().splitlines()]
        (cells,) = list(csv.DictReader((store.folder / "labels.csv").open(encoding="utf-8", newline="")))
        expected = (record["token"], record["h"]["pos"], record["t"]["pos"], record["relation"])
        assert (
            row["tokens"],
            [row["head_start"], row["head_end"]],
            [row["tail_start"], row["tail_end"]],
            row["label"],
        ) == expected
        assert (json.loads(cells["tokens"]), json.loads(cells["label"])) == (
            record["token"],
            record["relation"],
        )
        event("imported and exported")
    finally:
        store.close()


@st.composite
def label_studio_tasks_json(draw) -> object:
    words = draw(st.lists(WORD.filter(lambda w: w.strip() == w), min_size=2, max_size=8))
    text = " ".join(words)
    offsets, pos = [], 0
    for word in words:
        offsets.append((pos, pos + len(word)))
        pos += len(word) + 1
    head = draw(st.integers(0, len(words) - 1))
    tail = draw(st.integers(0, len(words) - 1))
    span = lambda rid, role, i: {  # noqa: E731
        "id": rid,
        "from_name": "entity",
        "to_name": "text",
        "type": "labels",
        "value": {"start": offsets[i][0], "end": offsets[i][1], "text": words[i], "labels": [role]},
    }
    annotation = {
        "completed_by": draw(st.integers(0, 10**6) | st.emails() | WORD),
        "was_cancelled": draw(st.booleans()),
        "created_at": draw(st.datetimes().map(lambda d: d.isoformat() + "Z") | st.text(max_size=12)),
        "result": [
            span("h", "head", head),
            span("t", "tail", tail),
            {
                "from_id": "h",
                "to_id": "t",
                "type": "relation",
                "labels": [draw(st.sampled_from(RELATIONS) | NESTED)],
            },
        ],
    }
    task = {"data": {"text": text}, "annotations": [annotation]}
    if draw(st.booleans()):
        task["data"]["mrelens"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "split": WORD,
                    "dataset": WORD,
                    "gold_label": st.sampled_from(RELATIONS) | WORD,
                    "head": st.just([head, head + 1]),
                    "tail": st.just([tail, tail + 1]),
                    "raw_line": st.text(max_size=30) | NESTED.map(repr),
                    "image_path": st.text(max_size=30),
                },
            )
        )
    return draw(st.just(task) | NESTED)


def _normalised(tasks: list[dict]) -> list[dict]:
    for task in tasks:
        task["data"]["mrelens"]["pair_id"] = None
        task["data"]["mrelens"]["image_path"] = None
        for item in task["annotations"] + task["predictions"]:
            for result in item["result"]:
                for key in ("id", "from_id", "to_id"):
                    result.pop(key, None)
    return tasks


def _region(region_id: str, role: str) -> dict:
    value = {"start": 0, "end": 1, "text": "0", "labels": [role]}
    return {"id": region_id, "from_name": "entity", "to_name": "text", "type": "labels", "value": value}


# found by this property: a new task whose head and tail regions share a word is refused as a format error of the file
HEAD_AND_TAIL_SHARE_A_WORD = {
    "data": {"text": "0 0"},
    "annotations": [
        {
            "completed_by": 0,
            "was_cancelled": False,
            "created_at": "2000-01-01T00:00:00Z",
            "result": [
                _region("h", "head"),
                _region("t", "tail"),
                {"from_id": "h", "to_id": "t", "type": "relation", "labels": ["/loc/loc/contain"]},
            ],
        }
    ],
}


@FAST
@given(task=label_studio_tasks_json())
@example(task=HEAD_AND_TAIL_SHARE_A_WORD)
def test_a_label_studio_task_imports_and_round_trips_or_is_refused(template, task):
    store, again = Store(template), Store(template)
    try:
        path = store.folder / "project.json"
        path.write_text(json.dumps([task]))
        try:
            with store.sessions.begin() as session:
                import_label_studio(session, path)
        except REFUSED as err:
            _one_line(err)
            assert store.counts() == (0, 0, 0)
            return
        with store.sessions() as session:
            first = label_studio_tasks(session)
            export_label_studio(session, store.folder / "tasks.json")
        with again.sessions.begin() as session:
            import_label_studio(session, store.folder / "tasks.json")
        with again.sessions() as session:
            second = label_studio_tasks(session)
        assert _normalised(second) == _normalised(json.loads(json.dumps(first)))
        event(f"imported: {len(first)} tasks")
        # importing the same file again adds nothing
        before = store.counts()
        with store.sessions.begin() as session:
            import_label_studio(session, path)
        assert store.counts() == before
    finally:
        store.close()
        again.close()


PREDICT_LINES = (
    st.builds(
        lambda text, head, tail, extra: json.dumps({"text": text, "head": head, "tail": tail, **extra}),
        st.text(max_size=40),
        NESTED,
        NESTED,
        st.dictionaries(st.sampled_from(["image", "id", "tokens", "h", "t"]), NESTED, max_size=2),
    )
    | st.text(max_size=80)
    | NESTED.map(json.dumps)
    | st.integers(1, 5000).map(
        lambda n: '{"text": "a b", "head": [0, 1], "tail": [1, 2], "n": ' + "9" * n + "}"
    )
    | st.integers(1, 3000).map(lambda d: "[" * d + "]" * d)
)


@settings(max_examples=SCALE * 8, deadline=None)
@given(line=PREDICT_LINES)
def test_a_predict_input_line_is_a_post_or_its_one_line_error(line):
    try:
        post = parse_post(line, 3, "posts.jsonl")
    except DataFormatError as err:
        _one_line(err)
        assert str(err).startswith("posts.jsonl:3")
        return
    event("parsed")
    assert 0 <= post.head.start < post.head.end <= len(post.tokens)
    assert 0 <= post.tail.start < post.tail.end <= len(post.tokens)
