"""Rationales out of the store and back: the synthetic set's evidence imported as `synthetic` rationales, every export
carrying the rationale in effect (JSONL, CSV, Parquet with typed features, ERASER through the CLI, Label Studio), the
Label Studio import reading them back (a round trip, also as a Hypothesis property over random word sets and boxes),
hostile Label Studio regions refused with the task and field named, and agreement on rationales."""

from __future__ import annotations

import ast
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from db.agreement import box_iou, rationale_agreement, rationale_agreement_from, token_f1, token_kappa
from db.annotations import current_rationales, record_annotation
from db.cli import main as db_main
from db.errors import LabelStoreError
from db.io import content_key, import_mnre
from db.label_export import export_labels
from db.label_studio import export_label_studio, import_label_studio
from db.models import Annotation, EntityPair
from db.models import Rationale as RationaleRow
from db.rationales import Rationale, import_synthetic_rationales, source_rationales
from db.schema import open_database
from model.mnre_format import DataFormatError

SCALE = int(os.environ.get("MRELENS_FUZZ_EXAMPLES", "40"))
OBAMA = ("train", 1)  # "Obama meets Merkel in Berlin": head 0, tail 2, img1.jpg (40 x 30)
MARKED = Rationale(tokens=(1, 3, 4), box=(2.0, 3.5, 20.0, 30.0), image_size=(40, 30))


def _ids(sessions) -> dict[tuple[str, int], int]:
    with sessions() as session:
        return {(p.split, p.source_line): p.id for p in session.scalars(select(EntityPair))}


@pytest.fixture
def marked(sessions, mini_mnre):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
    ids = _ids(sessions)
    with sessions.begin() as session:
        record_annotation(
            session, ids[OBAMA], status="accepted", annotator="ann", expected_revision=0, rationale=MARKED
        )
    return sessions, ids


# ------------------------------------------------------------------------------------------------------------
# Synthetic evidence


@pytest.fixture(scope="module")
def synthetic_sets(tmp_path_factory) -> dict[str, Path]:
    from model.synthetic import generate

    root = tmp_path_factory.mktemp("synthetic")
    sizes = {"train": 6, "val": 4}
    return {
        by: generate(root / by, sizes, images_per_label=1, seed=1, decided_by=by) for by in ("image", "text")
    }


@pytest.mark.parametrize("decided_by", ["image", "text"])
def test_a_synthetic_sets_evidence_is_stored_as_synthetic_rationales_and_exported(
    sessions, synthetic_sets, decided_by, tmp_path
):
    from model.synthetic import read_rationales

    folder = synthetic_sets[decided_by]
    written = read_rationales(folder)
    with sessions.begin() as session:
        report = import_mnre(session, folder, dataset="synth")
    assert report.new_rationales == len(written) == 10
    with sessions.begin() as session:  # importing again adds nothing
        assert import_mnre(session, folder, dataset="synth").new_rationales == 0
    with sessions() as session:
        keys = {p.id: (p.split, p.source_line) for p in session.scalars(select(EntityPair))}
        stored = source_rationales(session)
        assert session.scalar(select(func.count()).select_from(Annotation)) == 0  # no decision was made
    assert {keys[pid]: (r.tokens, r.box, r.image_size, r.source) for pid, r in stored.items()} == {
        key: (w.words, None if w.box is None else tuple(map(float, w.box)), w.image_size, "synthetic")
        for key, w in written.items()
    }
    with sessions() as session:
        export_labels(session, "jsonl", tmp_path / "out.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    for row in rows:
        want = written[(row["split"], row["source_line"])]
        assert row["rationale_source"] == "synthetic"
        assert row["rationale_tokens"] == list(want.words)
        assert row["rationale_box"] == (None if want.box is None else [float(v) for v in want.box])


def test_a_corrected_label_is_not_explained_by_the_old_labels_evidence(sessions, synthetic_sets, tmp_path):
    with sessions.begin() as session:
        import_mnre(session, synthetic_sets["image"], dataset="synth")
        pair = session.scalars(select(EntityPair).where(EntityPair.source_key == "train:1")).one()
        other = next(
            label
            for label in session.get(EntityPair, pair.id).post.dataset.label_map
            if label != pair.gold_label
        )
        record_annotation(
            session, pair.id, status="corrected", label=other, annotator="ann", expected_revision=0
        )
    with sessions() as session:
        export_labels(session, "jsonl", tmp_path / "out.jsonl")
    row = next(
        json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines() if '"train"' in line
    )
    assert row["source_line"] == 1 and row["rationale_source"] is None and row["rationale_box"] is None


def test_a_synthetic_line_that_names_an_entity_word_is_refused_with_file_line_and_field(
    sessions, synthetic_sets, tmp_path
):
    folder = tmp_path / "bad"
    shutil.copytree(synthetic_sets["text"], folder)
    lines = (folder / "rationales.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    record = ast.literal_eval((folder / "txt" / "ours_train.txt").read_text().splitlines()[0])
    assert (first["split"], first["line"]) == ("train", 1)
    first["tokens"] = [record["h"]["pos"][0]]  # the head entity's first word
    lines[0] = json.dumps(first)
    (folder / "rationales.jsonl").write_text("\n".join(lines) + "\n")
    with (
        pytest.raises(LabelStoreError, match=r"rationales.jsonl:1: field 'rationale.tokens'.*entity"),
        sessions.begin() as session,
    ):
        import_mnre(session, folder, dataset="synth")
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(EntityPair)) == 0


def _spoil(line: str, how: str) -> str:
    if how == "not JSON":
        return line[: len(line) // 2]
    row = json.loads(line)
    if how == "missing field":
        del row["tokens"]
    else:  # a box past the image's right edge
        row["box"] = [0, 0, row["image_size"][0] + 1, 2]
    return json.dumps(row)


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("not JSON", r"rationales.jsonl:3: not JSON"),
        ("missing field", r"rationales.jsonl:3: field 'tokens' is missing"),
        ("box outside", r"rationales.jsonl:3: field 'box': \[0, 0, \d+, 2\] is outside the \d+x\d+ image"),
    ],
)
def test_a_bad_synthetic_line_names_file_line_and_field_and_changes_nothing_stored(
    sessions, synthetic_sets, tmp_path, how, message
):
    """The generator's reader (model.rationale_file) reads the file for the store; its errors come back as the
    store's error type with the file, the line and the field, and the evidence stored before stays as it was."""
    folder = tmp_path / "bad"
    shutil.copytree(synthetic_sets["image"], folder)
    with sessions.begin() as session:
        import_mnre(session, folder, dataset="synth")
    with sessions() as session:
        before = source_rationales(session)
    path = folder / "rationales.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = _spoil(lines[2], how)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LabelStoreError, match=message), sessions.begin() as session:
        import_synthetic_rationales(session, "synth", folder)
    with sessions() as session:
        assert source_rationales(session) == before and len(before) == 10


# ------------------------------------------------------------------------------------------------------------
# JSONL, CSV, Parquet, Hugging Face features, ERASER


def test_every_file_export_carries_the_rationale_in_effect(marked, tmp_path):
    sessions, ids = marked
    with sessions() as session:
        export_labels(session, "jsonl", tmp_path / "l.jsonl")
        export_labels(session, "csv", tmp_path / "l.csv")
        export_labels(session, "parquet", tmp_path / "hf")
    row = next(
        json.loads(x)
        for x in (tmp_path / "l.jsonl").read_text().splitlines()
        if f'"pair_id": {ids[OBAMA]},' in x
    )
    assert (
        row["rationale_tokens"],
        row["rationale_box"],
        row["rationale_image_size"],
        row["rationale_source"],
    ) == ([1, 3, 4], [2.0, 3.5, 20.0, 30.0], [40, 30], "reviewer")
    import pandas as pd

    frame = pd.read_csv(tmp_path / "l.csv")
    cell = frame[frame["pair_id"] == ids[OBAMA]].iloc[0]
    assert json.loads(cell["rationale_tokens"]) == [1, 3, 4] and json.loads(cell["rationale_box"])[3] == 30.0
    assert frame[frame["pair_id"] != ids[OBAMA]]["rationale_tokens"].isna().all()

    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets

    ds = datasets.load_dataset(str(tmp_path / "hf"), cache_dir=str(tmp_path / "cache"))["train"]
    assert str(ds.features["rationale_tokens"]) == str(datasets.List(datasets.Value("int32")))
    assert str(ds.features["rationale_box"]) == str(datasets.List(datasets.Value("float64")))
    got = next(r for r in ds if r["pair_id"] == ids[OBAMA])
    assert got["rationale_tokens"] == [1, 3, 4] and got["rationale_box"] == [2.0, 3.5, 20.0, 30.0]
    assert got["rationale_image_size"] == [40, 30]


def test_the_eraser_export_writes_evidences_per_post_docid_and_the_docs_folder(
    marked, db_url, tmp_path, capsys
):
    sessions, ids = marked
    assert (
        db_main(["--database-url", db_url, "export", "--format", "eraser", "--out", str(tmp_path / "er")])
        == 0
    )
    lines = [json.loads(x) for x in (tmp_path / "er" / "train.jsonl").read_text().splitlines()]
    assert (tmp_path / "er" / "val.jsonl").is_file()
    mine = next(x for x in lines if x["annotation_id"].endswith(f"/{ids[OBAMA]}"))
    doc = "post_" + content_key(["Obama", "meets", "Merkel", "in", "Berlin"], "img1.jpg")[:16]
    assert mine["docids"] == [doc] and mine["classification"] == "/per/per/peer"
    assert mine["query"] == "Obama || Merkel"
    assert [(e["start_token"], e["end_token"], e["text"]) for e in mine["evidences"][0]] == [
        (1, 2, "meets"),
        (3, 5, "in Berlin"),
    ]
    assert mine["image_evidence"] == {
        "img_id": "img1.jpg",
        "box": [2.0, 3.5, 20.0, 30.0],
        "image_size": [40, 30],
    }
    assert (tmp_path / "er" / "docs" / doc).read_text() == "Obama meets Merkel in Berlin\n"
    # the second pair of the same post shares its docid and has no evidence
    same_post = [x for x in lines if x["docids"] == [doc]]
    assert len(same_post) == 2 and [x["evidences"] for x in same_post if x is not mine] == [[]]


# ------------------------------------------------------------------------------------------------------------
# Label Studio


def test_label_studio_carries_evidence_spans_and_a_percent_box_and_reads_them_back(marked, tmp_path):
    sessions, ids = marked
    with sessions() as session:
        export_label_studio(session, tmp_path / "tasks.json")
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    task = next(t for t in tasks if t["data"]["mrelens"]["pair_id"] == ids[OBAMA])
    result = task["annotations"][0]["result"]
    spans = [r["value"] for r in result if r.get("from_name") == "evidence"]
    assert [(s["text"], s["labels"]) for s in spans] == [("meets", ["evidence"]), ("in Berlin", ["evidence"])]
    (box,) = [r for r in result if r["type"] == "rectanglelabels"]
    assert (box["from_name"], box["to_name"], box["original_width"], box["original_height"]) == (
        "evidence_box",
        "image",
        40,
        30,
    )
    assert box["value"]["x"] == pytest.approx(5.0) and box["value"]["y"] == pytest.approx(100 * 3.5 / 30)
    assert box["value"]["width"] == pytest.approx(45.0) and box["value"]["height"] == pytest.approx(
        100 * 26.5 / 30
    )
    assert box["value"]["rectanglelabels"] == ["evidence"]
    fresh_engine, fresh = open_database(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        with fresh.begin() as session:
            report = import_label_studio(session, tmp_path / "tasks.json")
        assert report.rationales_added == 1
        with fresh() as session:
            pair_id = session.scalars(select(EntityPair.id).where(EntityPair.source_key == "train:1")).one()
            assert current_rationales(session) == {pair_id: MARKED}
        with fresh.begin() as session:  # again: nothing added
            assert import_label_studio(session, tmp_path / "tasks.json").rationales_added == 0
    finally:
        fresh_engine.dispose()


def test_a_box_moved_in_label_studio_is_read_from_its_percent_values(marked, tmp_path):
    sessions, ids = marked
    with sessions() as session:
        export_label_studio(session, tmp_path / "tasks.json")
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    task = next(t for t in tasks if t["data"]["mrelens"]["pair_id"] == ids[OBAMA])
    box = next(r for r in task["annotations"][0]["result"] if r["type"] == "rectanglelabels")
    box["value"].update(x=50.0, y=0.0, width=25.0, height=50.0)
    (tmp_path / "moved.json").write_text(json.dumps([task]))
    engine, fresh = open_database(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        with fresh.begin() as session:
            import_label_studio(session, tmp_path / "moved.json")
        with fresh() as session:
            (got,) = current_rationales(session).values()
        assert got.box == (20.0, 0.0, 30.0, 15.0)
    finally:
        engine.dispose()


HOSTILE = [
    ("evidence on the head entity", lambda r: r.append(_span(0, 5)), "entity"),
    ("box outside the image", lambda r: _box(r).update(x=90.0, width=20.0), "outside"),
    ("inverted box", lambda r: _box(r).update(width=-5.0), "x0 < x1"),
    ("NaN in the box", lambda r: _box(r).update(y=math.nan), "finite"),
    ("huge box values", lambda r: _box(r).update(x=1e300), "rationale.box"),
    ("negative x", lambda r: _box(r).update(x=-1.0), "outside"),
    ("a second box", lambda r: r.append(json.loads(json.dumps(_box_region(r)))), "second evidence box"),
    ("no image size", lambda r: _box_region(r).pop("original_width"), "original_width"),
    ("a span that is not words", lambda r: r.append(_span(1, 4)), "value.start"),
    (
        "a wrong label",
        lambda r: r.append({**_span(6, 11), "value": {**_span(6, 11)["value"], "labels": ["x"]}}),
        "evidence",
    ),
]


def _span(start: int, end: int) -> dict:
    text = "Obama meets Merkel in Berlin"
    return {
        "id": f"x{start}",
        "from_name": "evidence",
        "to_name": "text",
        "type": "labels",
        "value": {"start": start, "end": end, "text": text[start:end], "labels": ["evidence"]},
    }


def _box_region(result: list) -> dict:
    return next(r for r in result if r["type"] == "rectanglelabels")


def _box(result: list) -> dict:
    return _box_region(result)["value"]


@pytest.mark.parametrize("name, change, problem", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_evidence_in_label_studio_names_task_and_field_and_stores_nothing(
    marked, tmp_path, name, change, problem
):
    sessions, ids = marked
    with sessions() as session:
        export_label_studio(session, tmp_path / "tasks.json")
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    index = next(i for i, t in enumerate(tasks) if t["data"]["mrelens"]["pair_id"] == ids[OBAMA])
    result = tasks[index]["annotations"][0]["result"]
    del tasks[index]["annotations"][0]["mrelens"]["evidence_box"]
    change(result)
    (tmp_path / "bad.json").write_text(json.dumps(tasks))
    engine, fresh = open_database(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        with pytest.raises(DataFormatError) as err, fresh.begin() as session:
            import_label_studio(session, tmp_path / "bad.json")
        message = str(err.value)
        assert f"task {index}: annotations[0].result" in message and problem in message, message
        with fresh() as session:
            assert session.scalar(select(func.count()).select_from(EntityPair)) == 0
            assert session.scalar(select(func.count()).select_from(RationaleRow)) == 0
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def mini_template(tmp_path_factory) -> Path:
    """A store with the mini MNRE set imported, copied for every example."""
    from tests.db.conftest import write_mini_mnre

    root = tmp_path_factory.mktemp("rationale_fuzz")
    path = root / "template.db"
    engine, sessions = open_database(f"sqlite:///{path}")
    with sessions.begin() as session:
        import_mnre(session, write_mini_mnre(root / "mnre"))
    engine.dispose()
    return path


# candidates of train line 1: words 1, 3, 4 (0 and 2 are the entities); image 40 x 30 as the reviewer passes it
WORDS = st.sets(st.sampled_from([1, 3, 4]))
SIZES = st.tuples(st.integers(1, 5000), st.integers(1, 5000))


@st.composite
def rationales(draw) -> Rationale:
    words = draw(WORDS)
    size = draw(SIZES)
    box = None
    if draw(st.booleans()) or not words:
        xs = sorted(
            draw(st.lists(st.floats(0, size[0], allow_nan=False), min_size=2, max_size=2, unique=True))
        )
        ys = sorted(
            draw(st.lists(st.floats(0, size[1], allow_nan=False), min_size=2, max_size=2, unique=True))
        )
        box = (xs[0], ys[0], xs[1], ys[1])
    return Rationale(tuple(sorted(words)), box, size if box else None)


@settings(
    max_examples=SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rationale=rationales())
def test_any_rationale_survives_a_label_studio_round_trip(mini_template, rationale):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shutil.copy(mini_template, tmp / "a.db")
        engine, sessions = open_database(f"sqlite:///{tmp / 'a.db'}")
        fresh_engine, fresh = open_database(f"sqlite:///{tmp / 'b.db'}")
        try:
            with sessions.begin() as session:
                pair_id = session.scalars(
                    select(EntityPair.id).where(EntityPair.source_key == "train:1")
                ).one()
                record_annotation(
                    session,
                    pair_id,
                    status="accepted",
                    annotator="ann",
                    expected_revision=0,
                    rationale=rationale,
                )
            with sessions() as session:
                export_label_studio(session, tmp / "tasks.json")
            with fresh.begin() as session:
                import_label_studio(session, tmp / "tasks.json")
            with fresh() as session:
                back = session.scalars(select(EntityPair.id).where(EntityPair.source_key == "train:1")).one()
                assert current_rationales(session) == {back: rationale}
        finally:
            engine.dispose()
            fresh_engine.dispose()


# ------------------------------------------------------------------------------------------------------------
# Agreement on rationales


def test_token_kappa_f1_and_box_iou_on_hand_made_cases():
    # 10 candidate words; A marks 0-3, B marks 2-5: agree on 2, 3 (yes) and 6-9 (no) -> observed 0.6
    # expected: P(yes) 0.4 each -> 0.4 * 0.4 + 0.6 * 0.6 = 0.52 -> kappa (0.6 - 0.52) / 0.48 = 1/6
    assert token_kappa({0, 1, 2, 3}, {2, 3, 4, 5}, range(10)) == pytest.approx(1 / 6)
    assert token_kappa({1, 2}, {1, 2}, range(5)) == pytest.approx(1.0)
    assert token_kappa({0, 1}, {2, 3}, range(4)) == pytest.approx(-1.0)
    assert math.isnan(token_kappa(set(), set(), range(4)))  # one category only
    assert token_f1({0, 1, 2, 3}, {2, 3, 4, 5}) == pytest.approx(0.5)
    assert token_f1(set(), set()) == 1.0 and token_f1({1}, set()) == 0.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0


def test_rationale_agreement_pools_kappa_over_pairs_and_averages_f1_and_iou():
    by_pair = {
        1: {"ann": Rationale((1, 2)), "bob": Rationale((2,), (0, 0, 4, 4), (8, 8))},
        2: {"ann": Rationale((), (0, 0, 4, 4), (8, 8)), "bob": Rationale((), (2, 0, 6, 4), (8, 8))},
        3: {"ann": Rationale((1,))},  # one reviewer only
    }
    report = rationale_agreement_from(by_pair, {1: [1, 2, 3], 2: [0, 1], 3: [1]})
    key = ("ann", "bob")
    assert report.pairs[key] == 2
    # pooled items: pair 1 words 1,2,3 (ann y y n, bob n y n), pair 2 words 0,1 (all n): observed 4/5
    # P(yes): ann 2/5, bob 1/5 -> expected 2/25 + 12/25 = 14/25 -> kappa (20/25 - 14/25) / (11/25) = 6/11
    assert report.kappa[key] == pytest.approx(6 / 11)
    assert report.f1[key] == pytest.approx(2 / 3) and report.f1_items[key] == 1
    assert report.iou[key] == pytest.approx(8 / 24) and report.iou_items[key] == 1
    assert "ann / bob | 2 |" in report.format()


def test_rationale_agreement_reads_each_reviewers_decision_in_effect(marked):
    sessions, ids = marked
    with sessions.begin() as session:
        record_annotation(
            session,
            ids[OBAMA],
            status="accepted",
            annotator="bob",
            expected_revision=1,
            rationale=Rationale((1,), (2.0, 3.5, 20.0, 30.0), (40, 30)),
        )
    with sessions() as session:
        report = rationale_agreement(session, "mnre")
    key = ("ann", "bob")
    assert report.pairs[key] == 1 and report.iou[key] == 1.0
    assert report.f1[key] == pytest.approx(2 * 1 / 4)
    # candidates 1, 3, 4: ann y y y, bob y n n -> observed 1/3, expected 1 * 1/3 -> kappa 0
    assert report.kappa[key] == pytest.approx(0.0)


def test_stored_rationales_come_out_keyed_as_plausibility_table_reads_them(marked):
    from db.export_rows import rationales_for_scoring

    sessions, ids = marked
    with sessions() as session:
        found = rationales_for_scoring(session, "mnre", "train")
    assert list(found) == [("train", 1)]
    assert (found[("train", 1)].words, found[("train", 1)].box) == ((1, 3, 4), (2.0, 3.5, 20.0, 30.0))
