"""One label rule: after any sequence of decisions on a pair, the store (CurrentState), the review queue and every
export (CSV, JSONL, MNRE txt, Parquet, a Hugging Face dataset folder, Label Studio tasks) name the same label in
effect. A table of sequences with the expected label written out, and a Hypothesis property over random sequences
(two annotators, undos included). tests/app/test_label_rule_pages.py drives the Review and Queue pages through the
same table.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from db.annotations import UNREVIEWED, current_states, record_annotation, undo_last
from db.errors import LabelStoreError
from db.export_rows import ExportFilter
from db.io import import_mnre
from db.label_export import export_labels
from db.label_studio import label_studio_tasks
from db.models import Annotation, EntityPair
from db.review_queue import QueueFilter, review_queue
from db.schema import open_database
from tests.db.conftest import LABELS, write_mini_mnre

GOLD, OTHER = (
    "<gold>",
    "<other>",
)  # placeholders in the table, replaced by the pair's gold / a different label
DROPPED = None  # the pair leaves the curated data (rejected)

# (steps, the label in effect afterwards); a step is (action, label) with action accepted/corrected/rejected/
# skipped/undo
SEQUENCES = {
    "nothing decided": ([], GOLD),
    "corrected to None, then skipped": ([("corrected", "None"), ("skipped", None)], "None"),
    "accepted, then undone": ([("accepted", None), ("undo", None)], GOLD),
    "corrected, then rejected": ([("corrected", OTHER), ("rejected", None)], DROPPED),
    "corrected, rejected, undone": ([("corrected", OTHER), ("rejected", None), ("undo", None)], OTHER),
    "skipped only": ([("skipped", None)], GOLD),
    "corrected, then skipped twice": ([("corrected", OTHER), ("skipped", None), ("skipped", None)], OTHER),
    "corrected to the gold label": ([("corrected", GOLD)], GOLD),
    "corrected twice, the second undone": (
        [("corrected", "None"), ("corrected", OTHER), ("undo", None)],
        "None",
    ),
    "rejected, then accepted": ([("rejected", None), ("accepted", None)], GOLD),
    "corrected, undone twice": (
        [("corrected", OTHER), ("skipped", None), ("undo", None), ("undo", None)],
        GOLD,
    ),
}


def concrete(label: str | None, gold: str, other: str) -> str | None:
    return {GOLD: gold, OTHER: other}.get(label, label)


def other_label(gold: str | None, labels) -> str:
    return next(name for name in sorted(labels) if name not in (gold, "None"))


def apply_steps(sessions, pair_id: int, steps, annotators=("ann",)) -> None:
    """Record `steps` on the pair as the Review page does (one transaction each); an undo with nothing left to undo
    is passed over. `annotators` take turns."""
    for k, (action, label) in enumerate(steps):
        who = annotators[k % len(annotators)]
        with sessions.begin() as session:
            revision = current_states(session, [pair_id]).get(pair_id, UNREVIEWED).revision
            if action == "undo":
                try:
                    undo_last(session, pair_id, annotator=who, expected_revision=revision)
                except LabelStoreError:
                    continue
            else:
                record_annotation(
                    session, pair_id, status=action, label=label, annotator=who, expected_revision=revision
                )


NOT_EXPORTED = object()


def _csv_label(path: Path):
    frame = pd.read_csv(path)
    if frame.empty:
        return NOT_EXPORTED
    cell = frame["label"].iloc[0]
    return None if pd.isna(cell) else json.loads(cell)


def _jsonl_label(path: Path):
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        return NOT_EXPORTED
    row = json.loads(lines[0])
    assert row["relation"] == row["label"]
    return row["label"]


def _parquet_label(path: Path):
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if table.num_rows == 0:
        return NOT_EXPORTED
    names = json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]["relation"]["names"]
    relation = table.column("relation")[0].as_py()
    label = table.column("label")[0].as_py()
    assert (names[relation] if relation is not None else None) == label
    return label


def _mnre_label(path: Path):
    lines = path.read_text(encoding="utf-8").splitlines()
    return ast.literal_eval(lines[0])["relation"] if lines else NOT_EXPORTED


def _label_studio_label(task: dict):
    """The label a Label Studio task says is in effect: its last annotation read with the store's rule (a skip keeps
    the label it carries, else the gold label; a rejection drops the pair); no annotation: the gold label."""
    from db.annotations import CurrentState

    gold = task["data"]["mrelens"]["gold_label"]
    if not task["annotations"]:
        return gold
    last = task["annotations"][-1]
    relation = next(result for result in last["result"] if result["type"] == "relation")["labels"]
    rejected = any(result.get("from_name") == "pair" for result in last["result"])
    status = last["mrelens"]["status"]
    assert rejected == (status == "rejected")
    return CurrentState(status, relation[0] if relation else None, 1, None).curated_label(gold)


def labels_everywhere(sessions, pair_id: int, folder: Path) -> dict[str, object]:
    """The label in effect of one pair as the store, the queue and every export say it (None: dropped)."""
    folder.mkdir(parents=True, exist_ok=True)
    only = ExportFilter(pair_ids=[pair_id], include_rejected=True)
    kept = ExportFilter(pair_ids=[pair_id])
    with sessions() as session:
        gold = session.get(EntityPair, pair_id).gold_label
        state = current_states(session, [pair_id]).get(pair_id, UNREVIEWED)
        (item,) = [
            item for item in review_queue(session, QueueFilter(), limit=1000) if item.pair_id == pair_id
        ]
        export_labels(session, "csv", folder / "l.csv", only)
        export_labels(session, "jsonl", folder / "l.jsonl", only)
        export_labels(session, "parquet", folder / "l.parquet", only)
        export_labels(session, "mnre", folder / "l.txt", kept)
        hf = export_labels(session, "jsonl", folder / "hf", kept)
        (task,) = label_studio_tasks(session, only)
    hf_files = [path for path in hf.paths if path.suffix == ".jsonl"]
    says = {
        "store": state.curated_label(gold),
        "queue": item.label_in_effect,
        "csv": _csv_label(folder / "l.csv"),
        "jsonl": _jsonl_label(folder / "l.jsonl"),
        "parquet": _parquet_label(folder / "l.parquet"),
        "mnre txt": _mnre_label(folder / "l.txt"),
        "hf dataset": _jsonl_label(hf_files[0]) if hf_files else NOT_EXPORTED,
        "label studio": _label_studio_label(task),
    }
    # MNRE txt and a dataset folder have no place for a rejected pair: leaving it out is how they say "dropped"
    for name in ("mnre txt", "hf dataset"):
        if says[name] is NOT_EXPORTED:
            says[name] = None
    return says


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """A store with the mini MNRE dataset imported (copied per test; building one runs every migration)."""
    root = tmp_path_factory.mktemp("label_rule")
    data = write_mini_mnre(root / "mnre")
    engine, sessions = open_database(f"sqlite:///{root / 'template.db'}")
    with sessions.begin() as session:
        import_mnre(session, data)
    with sessions() as session:
        pairs = {
            f"{pair.split}:{pair.source_line}": pair.id
            for pair in session.scalars(select(EntityPair).order_by(EntityPair.id))
        }
    engine.dispose()
    return root / "template.db", pairs


@pytest.fixture(scope="module")
def store(template, tmp_path_factory):
    path = tmp_path_factory.mktemp("label_rule_store") / "store.db"
    shutil.copy(template[0], path)
    engine, sessions = open_database(f"sqlite:///{path}")
    yield sessions, template[1]
    engine.dispose()


def _fresh(sessions, pair_id: int) -> str:
    """The pair with no decision (tests share one store), and its gold label."""
    with sessions.begin() as session:
        session.execute(delete(Annotation).where(Annotation.pair_id == pair_id))
        return session.get(EntityPair, pair_id).gold_label


@pytest.mark.parametrize("name", list(SEQUENCES))
@pytest.mark.parametrize("where", ["train:1", "train:2"])  # gold /per/per/peer, gold "None"
def test_a_table_of_decision_sequences_gives_one_label_everywhere(store, tmp_path, name, where):
    sessions, pairs = store
    pair_id = pairs[where]
    gold = _fresh(sessions, pair_id)
    other = other_label(gold, LABELS)
    steps, expected = SEQUENCES[name]
    apply_steps(sessions, pair_id, [(action, concrete(label, gold, other)) for action, label in steps])
    says = labels_everywhere(sessions, pair_id, tmp_path)
    assert says == dict.fromkeys(says, concrete(expected, gold, other)), (name, says)


STEP = st.one_of(
    st.tuples(st.sampled_from(["accepted", "rejected", "skipped", "undo"]), st.none()),
    st.tuples(st.just("corrected"), st.sampled_from(sorted(LABELS))),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    where=st.sampled_from(["train:1", "train:2", "val:1"]),
    steps=st.lists(STEP, max_size=6),
    two_annotators=st.booleans(),
)
def test_any_decision_sequence_gives_one_label_everywhere(
    store, tmp_path_factory, where, steps, two_annotators
):
    sessions, pairs = store
    pair_id = pairs[where]
    _fresh(sessions, pair_id)
    apply_steps(sessions, pair_id, steps, ("ann", "bob") if two_annotators else ("ann",))
    says = labels_everywhere(sessions, pair_id, tmp_path_factory.mktemp("exports"))
    assert len(set(map(repr, says.values()))) == 1, (steps, says)
