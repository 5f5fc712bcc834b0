"""Fixing entity spans and adding pairs: decisions on the append-only history, undone like labels, revision-checked,
refused with the field named when hostile, and every export writing the spans in effect (MNRE round trip)."""

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from db.annotations import (
    add_pair,
    current_state,
    current_states,
    pair_history,
    record_annotation,
    undo_last,
)
from db.curation import CurationReport, curated_training_records
from db.errors import ConcurrentEditError, LabelStoreError
from db.export_rows import ExportFilter, curated_rows
from db.io import import_mnre
from db.label_export import export_labels
from db.models import Annotation, Dataset, EntityPair, Post
from db.rationales import Rationale
from db.review_queue import QueueFilter, review_queue
from db.schema import open_database
from db.spans import Span
from model.mnre_format import read_records

# train line 1: "Obama meets Merkel in Berlin", head Obama (0, 1), tail Merkel (2, 3), gold /per/per/peer
OBAMA = ("train", 1)


@pytest.fixture
def imported(sessions, mini_mnre):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
    with sessions() as session:
        ids = {(pair.split, pair.source_line): pair.id for pair in session.scalars(select(EntityPair))}
    return sessions, ids


def _row(session, pair_id, **kw):
    rows = curated_rows(session, ExportFilter(pair_ids=[pair_id], **kw))
    return rows[0] if rows else None


def _counts(session):
    return (
        session.scalar(select(func.count()).select_from(Annotation)),
        session.scalar(select(func.count()).select_from(EntityPair)),
    )


def test_a_span_edit_is_a_decision_the_exports_follow_and_undo_takes_back(imported):
    sessions, ids = imported
    pair_id = ids[OBAMA]
    with sessions.begin() as session:
        record_annotation(
            session, pair_id, status="accepted", annotator="ann", expected_revision=0, tail=(2, 5)
        )
    with sessions() as session:
        state = current_state(pair_history(session, pair_id))
        assert state.tail == Span(2, 5, "Merkel in Berlin") and state.head is None
        assert current_states(session)[pair_id] == state
        pair = session.get(EntityPair, pair_id)  # the imported record is never changed
        assert (pair.tail_start, pair.tail_end, pair.tail_name) == (2, 3, "Merkel")
        row = _row(session, pair_id)
        assert (row["tail_name"], row["tail_start"], row["tail_end"]) == ("Merkel in Berlin", 2, 5)
        assert (row["head_name"], row["head_start"], row["head_end"]) == ("Obama", 0, 1)
        assert row["spans_edited"] is True and row["label"] == "/per/per/peer"
    # a later label decision keeps the fixed span; a skip too
    with sessions.begin() as session:
        record_annotation(
            session, pair_id, status="corrected", label="None", annotator="bob", expected_revision=1
        )
        record_annotation(session, pair_id, status="skipped", annotator="bob", expected_revision=2)
    with sessions() as session:
        assert current_state(pair_history(session, pair_id)).tail == Span(2, 5, "Merkel in Berlin")
        assert [a.tail_end for a in pair_history(session, pair_id)] == [5, 5, 5]
    with sessions.begin() as session:  # undo the skip, the correction, then the span edit
        for revision in (3, 4, 5):
            undo_last(session, pair_id, annotator="ann", expected_revision=revision)
    with sessions() as session:
        history = pair_history(session, pair_id)
        assert current_state(history).tail is None and current_state(history).status == "unreviewed"
        assert [a.tail_end for a in history] == [5, 5, 5, 5, 5, None]  # earlier rows untouched
        row = _row(session, pair_id)
        assert (row["tail_start"], row["tail_end"], row["spans_edited"]) == (2, 3, False)


def test_a_span_edit_on_a_stale_revision_is_refused_and_writes_nothing(imported):
    sessions, ids = imported
    with sessions.begin() as session:
        record_annotation(session, ids[OBAMA], status="accepted", annotator="ann", expected_revision=0)
    with sessions.begin() as session:
        before = _counts(session)
        with pytest.raises(ConcurrentEditError):
            record_annotation(
                session, ids[OBAMA], status="accepted", annotator="bob", expected_revision=0, head=(0, 2)
            )
        assert _counts(session) == before


@pytest.mark.parametrize(
    ("head", "tail", "field", "words"),
    [
        ((0, 9), None, "head", "outside the post's 5 words"),
        ((-1, 1), None, "head", "outside"),
        ((1, 1), None, "head", "is empty"),
        ((3, 1), None, "head", "is empty"),
        (None, (0, 2), "tail", "overlaps the head"),
        ((2, 3), None, "tail", "overlaps the head"),
        (("0", 1), None, "head", "not a word position"),
        ((True, 2), None, "head", "not a word position"),
        ("0:1", None, "head", "not (start, end)"),
        (None, (1, 2, 3), "tail", "not (start, end)"),
    ],
)
def test_hostile_spans_are_refused_naming_the_field(imported, head, tail, field, words):
    sessions, ids = imported
    with sessions.begin() as session:
        before = _counts(session)
        with pytest.raises(LabelStoreError, match=f"field '{field}'.*{re.escape(words)}"):
            record_annotation(
                session,
                ids[OBAMA],
                status="accepted",
                annotator="ann",
                expected_revision=0,
                head=head,
                tail=tail,
            )
        assert _counts(session) == before


def test_an_added_pair_is_in_the_queue_the_history_and_the_exports(imported):
    sessions, ids = imported
    with sessions() as session:
        post_id = session.get(EntityPair, ids[OBAMA]).post_id
    with sessions.begin() as session:
        pair, decision = add_pair(
            session,
            post_id,
            dataset="mnre",
            head=(0, 1),
            tail=(4, 5),
            label="/loc/loc/contain",
            annotator="ann",
        )
        pair_id = pair.id
    with sessions() as session:
        pair = session.get(EntityPair, pair_id)
        assert pair.added_by == "ann" and pair.added_at is not None and pair.gold_label is None
        assert pair.split == "train" and (pair.head_name, pair.tail_name) == ("Obama", "Berlin")
        history = pair_history(session, pair_id)
        assert [(a.status, a.label, a.origin, a.annotator) for a in history] == [
            ("corrected", "/loc/loc/contain", "added", "ann")
        ]
        queue = review_queue(session, QueueFilter(dataset="mnre"), sort="source_order", limit=100)
        assert pair_id in {item.pair_id for item in queue}
        row = _row(session, pair_id)
        assert (row["label"], row["added_by"], row["tail_name"], row["source_line"]) == (
            "/loc/loc/contain",
            "ann",
            "Berlin",
            None,
        )
    with (
        sessions.begin() as session
    ):  # undo takes the label back; the pair stays, unreviewed, out of the exports
        undo_last(session, pair_id, annotator="ann", expected_revision=1)
    with sessions() as session:
        assert _row(session, pair_id) is None and session.get(EntityPair, pair_id) is not None


def _other_dataset_post(session) -> int:
    other = Dataset(name="other", label_map={"None": 0})
    session.add(other)
    session.flush()
    post = Post(dataset_id=other.id, content_key="k" * 64, tokens=["a", "b"], text="a b", has_image=False)
    session.add(post)
    session.flush()
    return post.id


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"head": (0, 1), "tail": (2, 3)}, "head", "already has the pair 'Obama' -> 'Merkel'"),
        ({"label": "/per/loc/nowhere"}, "label", "unknown label"),
        ({"label": ""}, "label", "added with its label"),
        ({"tail": (0, 2)}, "tail", "overlaps the head"),
        ({"tail": (4, 6)}, "tail", "outside the post's 5 words"),
        ({"head": (2, 2)}, "head", "is empty"),
        ({"post": "other"}, "post", "belongs to another dataset"),
        ({"post": 10**6}, "post", "no post with id"),
        ({"dataset": "nope"}, "dataset", "no dataset named 'nope'"),
        ({"annotator": " "}, "annotator", "needs the reviewer's name"),
    ],
)
def test_hostile_added_pairs_are_refused_naming_the_field(imported, change, field, words):
    sessions, ids = imported
    with sessions.begin() as session:
        post_id = session.get(EntityPair, ids[OBAMA]).post_id
        if change.get("post") == "other":
            change = {**change, "post": _other_dataset_post(session)}
        before = _counts(session)
        args = {"post": post_id, "dataset": "mnre", "head": (0, 1), "tail": (4, 5), "label": "None"}
        args |= {"annotator": "ann"} | change
        with pytest.raises(LabelStoreError, match=f"field '{field}'.*{re.escape(words)}"):
            add_pair(session, args.pop("post"), **args)
        assert _counts(session) == before


def test_a_pair_whose_span_was_fixed_is_found_by_its_spans_in_effect(imported):
    sessions, ids = imported
    with sessions.begin() as session:
        record_annotation(
            session, ids[OBAMA], status="accepted", annotator="ann", expected_revision=0, tail=(4, 5)
        )
        post_id = session.get(EntityPair, ids[OBAMA]).post_id
        with pytest.raises(LabelStoreError, match="field 'head'.*already has the pair 'Obama' -> 'Berlin'"):
            add_pair(
                session, post_id, dataset="mnre", head=(0, 1), tail=(4, 5), label="None", annotator="ann"
            )
        # the span it had before the fix is free again
        add_pair(session, post_id, dataset="mnre", head=(0, 1), tail=(2, 3), label="None", annotator="ann")


def test_the_mnre_export_re_imports_to_the_same_spans(imported, tmp_path):
    sessions, ids = imported
    with sessions.begin() as session:
        record_annotation(
            session,
            ids[OBAMA],
            status="accepted",
            annotator="ann",
            expected_revision=0,
            head=(0, 2),
            tail=(2, 5),
        )
        record_annotation(
            session, ids[("train", 3)], status="corrected", label="None", annotator="ann", expected_revision=0,
            tail=(2, 3),
        )  # fmt: skip
        post_id = session.get(EntityPair, ids[OBAMA]).post_id
        add_pair(
            session,
            post_id,
            dataset="mnre",
            head=(4, 5),
            tail=(0, 1),
            label="/loc/loc/contain",
            annotator="ann",
        )
    out = tmp_path / "export"
    with sessions() as session:
        export_labels(session, "mnre", out, ExportFilter(dataset="mnre"))
        before = curated_rows(session, ExportFilter(dataset="mnre"))
    lines = (out / "txt" / "ours_train.txt").read_text(encoding="utf-8").splitlines()
    # DeepKE's layout: the fixed names and [start, end) positions
    assert "'h': {'name': 'Obama meets', 'pos': [0, 2]}" in "\n".join(lines)
    (out / "img_org").mkdir()
    _, other = open_database(f"sqlite:///{tmp_path / 'other.db'}")
    with other.begin() as session:
        import_mnre(session, out, dataset="copy")
    with other() as session:
        after = curated_rows(session, ExportFilter(dataset="copy"))

    def spans(rows):
        return sorted(
            (r["split"], r["tokens"], r["head_name"], r["head_start"], r["head_end"], r["tail_name"], r["tail_start"],
             r["tail_end"], r["label"])
            for r in rows
        )  # fmt: skip

    assert spans(after) == spans(before) and len(before) == 8


# --------------------------------------------------------------------------------------------------------------
# Random sequences of label and span decisions and undos: every export row agrees with the store's CurrentState
# and with a plain stack model of the history (a decision pushes a state, an undo pops one)

TOKENS = ["w0", "w1", "w2", "w3", "w4", "w5"]
HEAD0, TAIL0, GOLD = (0, 1), (3, 4), "/per/per/peer"
# None (keep the span in effect) about half the time: most decisions are label decisions on top of a fixed span
SPANS = st.one_of(st.none(), st.sampled_from([(0, 1), (0, 2), (1, 3), (3, 4), (4, 6), (5, 6)]))
LABELS = ["None", "/per/per/peer", "/per/org/member_of"]
steps = st.lists(
    st.one_of(
        st.just(("undo",)),
        st.tuples(
            st.sampled_from(["accepted", "corrected", "rejected", "skipped"]),
            st.sampled_from(LABELS),
            SPANS,
            SPANS,
        ),
    ),
    max_size=8,
)


@pytest.fixture
def one_post(sessions):
    with sessions.begin() as session:
        dataset = Dataset(name="prop", label_map={name: i for i, name in enumerate(LABELS)})
        session.add(dataset)
        session.flush()
        post = Post(
            dataset_id=dataset.id, content_key="p" * 64, tokens=TOKENS, text=" ".join(TOKENS), has_image=False
        )
        session.add(post)
        session.flush()
        return sessions, dataset.id, post.id


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_exports_agree_with_current_state_over_random_histories(one_post, steps):
    sessions, dataset_id, post_id = one_post
    with sessions.begin() as session:
        n = session.scalar(select(func.count()).select_from(EntityPair))
        pair = EntityPair(
            post_id=post_id, dataset_id=dataset_id, split="train", source_key=f"prop:{n}", source_line=n + 1,
            head_name="w0", head_start=0, head_end=1, tail_name="w3", tail_start=3, tail_end=4, gold_label=GOLD,
        )  # fmt: skip
        session.add(pair)
        session.flush()
        pair_id = pair.id
    stack = [("unreviewed", None, HEAD0, TAIL0)]  # (status, label, head, tail) in effect
    revision = 0
    for step in steps:
        with sessions.begin() as session:
            if step[0] == "undo":
                if len(stack) == 1:
                    with pytest.raises(LabelStoreError, match="nothing to undo"):
                        undo_last(session, pair_id, annotator="ann", expected_revision=revision)
                    continue
                undo_last(session, pair_id, annotator="ann", expected_revision=revision)
                stack.pop()
            else:
                status, label, head, tail = step
                status_now, label_now, head_now, tail_now = stack[-1]
                new_head, new_tail = head or head_now, tail or tail_now
                overlap = new_head[0] < new_tail[1] and new_tail[0] < new_head[1]
                kwargs = {"head": head, "tail": tail, "label": label if status == "corrected" else None}
                if overlap:
                    with pytest.raises(LabelStoreError, match="overlaps"):
                        record_annotation(
                            session,
                            pair_id,
                            status=status,
                            annotator="ann",
                            expected_revision=revision,
                            **kwargs,
                        )
                    continue
                record_annotation(
                    session, pair_id, status=status, annotator="ann", expected_revision=revision, **kwargs
                )
                if status == "accepted":
                    label_new = GOLD
                elif status == "corrected":
                    label_new, status = label, "accepted" if label == GOLD else "corrected"
                elif status == "skipped":
                    label_new = label_now
                else:
                    label_new = None
                stack.append((status, label_new, new_head, new_tail))
            revision += 1
    status, label, head, tail = stack[-1]
    with sessions() as session:
        state = current_states(session, [pair_id]).get(pair_id)
        assert state is None if revision == 0 else state == current_state(pair_history(session, pair_id))
        row = _row(session, pair_id, include_rejected=True)
        rows_jsonl = curated_rows(session, ExportFilter(pair_ids=[pair_id], include_rejected=True))
    assert rows_jsonl == ([row] if row else [])
    assert row["status"] == status
    assert row["label"] == (None if status == "rejected" else label if label is not None else GOLD)
    assert (row["head_start"], row["head_end"], row["tail_start"], row["tail_end"]) == (*head, *tail)
    assert row["head_name"] == " ".join(TOKENS[head[0] : head[1]])
    assert row["tail_name"] == " ".join(TOKENS[tail[0] : tail[1]])
    if state is not None:
        pair_row = type("P", (), {"head_start": 0, "head_end": 1, "head_name": "w0", "tail_start": 3, "tail_end": 4,
                                  "tail_name": "w3"})  # fmt: skip
        assert tuple(s.pos for s in state.spans(pair_row)) == (head, tail)
    assert row["spans_edited"] == ((head, tail) != (HEAD0, TAIL0))
    assert json.dumps(row["tokens"]) == json.dumps(TOKENS)


def test_label_studio_round_trip_keeps_fixed_spans_and_added_pairs(imported, mini_mnre, tmp_path):
    from db.label_studio import export_label_studio, import_label_studio

    sessions, ids = imported
    with sessions.begin() as session:
        record_annotation(
            session,
            ids[OBAMA],
            status="corrected",
            label="None",
            annotator="ann",
            expected_revision=0,
            tail=(2, 5),
        )
        post_id = session.get(EntityPair, ids[OBAMA]).post_id
        add_pair(
            session,
            post_id,
            dataset="mnre",
            head=(4, 5),
            tail=(0, 1),
            label="/loc/loc/contain",
            annotator="bob",
        )
    out = tmp_path / "tasks.json"
    with sessions() as session:
        export_label_studio(session, out)
        before = curated_rows(session, ExportFilter(dataset="mnre"))
    tasks = json.loads(out.read_text(encoding="utf-8"))
    task = next(t for t in tasks if t["data"]["mrelens"]["pair_id"] == ids[OBAMA])
    assert task["data"]["mrelens"]["tail"] == [2, 3]  # the pair as stored
    tail_region = next(r for r in task["annotations"][0]["result"] if r.get("id") == f"t{ids[OBAMA]}")
    assert tail_region["value"]["text"] == "Merkel in Berlin"  # the annotation shows the fixed span
    added = next(t for t in tasks if t["data"]["mrelens"].get("added_by"))
    assert added["data"]["mrelens"]["added_by"] == "bob"

    _, other = open_database(f"sqlite:///{tmp_path / 'other.db'}")
    with other.begin() as session:
        import_mnre(session, mini_mnre)
        report = import_label_studio(session, out)
        assert report.new_pairs == 1
    with other.begin() as session:  # importing again adds nothing
        report = import_label_studio(session, out)
        assert (report.new_pairs, report.decisions_added) == (0, 0)
    with other() as session:
        after = curated_rows(session, ExportFilter(dataset="mnre"))
        added_pair = session.scalars(select(EntityPair).where(EntityPair.added_by.is_not(None))).one()
        assert added_pair.added_by == "bob" and added_pair.added_at is not None

    def view(rows):
        keep = ("split", "source_line", "head_name", "head_start", "head_end", "tail_name", "tail_start",
                "tail_end", "label", "status", "annotator", "spans_edited", "added_by")  # fmt: skip
        return sorted(tuple(str(r[k]) for k in keep) for r in rows)

    assert view(after) == view(before)


def test_a_label_studio_span_that_overlaps_is_refused_with_its_field(imported, tmp_path):
    from db.label_studio import export_label_studio, import_label_studio
    from model.mnre_format import DataFormatError

    sessions, ids = imported
    with sessions.begin() as session:
        record_annotation(
            session, ids[OBAMA], status="accepted", annotator="ann", expected_revision=0, tail=(2, 5)
        )
    out = tmp_path / "tasks.json"
    with sessions() as session:
        export_label_studio(session, out)
    tasks = json.loads(out.read_text(encoding="utf-8"))
    task = next(t for t in tasks if t["data"]["mrelens"]["pair_id"] == ids[OBAMA])
    tail_region = next(r for r in task["annotations"][0]["result"] if r.get("id") == f"t{ids[OBAMA]}")
    tail_region["value"] |= {"start": 0, "end": 11, "text": "Obama meets"}  # over the head "Obama"
    task["annotations"][0]["created_at"] = task["annotations"][0]["updated_at"] = "2030-01-01T00:00:00Z"
    out.write_text(json.dumps(tasks), encoding="utf-8")
    with sessions.begin() as session:
        before = _counts(session)
        with pytest.raises(DataFormatError, match=r"annotations\[0\].result\[2\].*overlaps the head"):
            import_label_studio(session, out)
        assert _counts(session) == before


def test_curated_training_records_train_on_the_spans_in_effect_and_the_added_pairs(imported, mini_mnre):
    sessions, ids = imported
    records = read_records(mini_mnre / "txt" / "ours_train.txt")
    with sessions.begin() as session:
        record_annotation(  # the head of train line 1 becomes "Obama meets"
            session, ids[OBAMA], status="accepted", annotator="ann", expected_revision=0, head=(0, 2)
        )
        messi = session.get(EntityPair, ids[("train", 3)])  # "Messi joins Inter Miami"
        added, _ = add_pair(
            session,
            messi.post_id,
            dataset="mnre",
            head=(2, 4),
            tail=(0, 1),
            label="/loc/loc/contain",
            annotator="ann",
        )
        added_id = added.id
    report = CurationReport()
    with sessions() as session:
        curated = curated_training_records(session, records, "mnre", "train", report)
    first = next(record for record in curated if record.line == 1)
    assert (first.head.name, first.head.start, first.head.end) == ("Obama meets", 0, 2)
    assert (first.tail.name, first.tail.start, first.tail.end) == ("Merkel", 2, 3)
    assert records[0].head.end == 1, "the input is left as it was"
    new = [record for record in curated if record.line not in range(1, 6)]
    assert len(new) == 1 and report.added == 1 and report.records == 5
    (new,) = new
    assert (new.head.name, new.head.start, new.head.end) == ("Inter Miami", 2, 4)
    assert (new.tail.name, new.tail.start, new.tail.end) == ("Messi", 0, 1)
    assert new.relation == "/loc/loc/contain" and new.tokens == records[2].tokens
    assert new.img_id == records[2].img_id and new.raw_line == ""
    # the labelled set of an annotation loop holds the added pair too (its label is a reviewer's decision)
    with sessions() as session:
        reviewed = curated_training_records(session, records, "mnre", "train", reviewed_only=True)
    assert [(r.head.name, r.relation) for r in reviewed] == [
        ("Obama meets", "/per/per/peer"),
        ("Inter Miami", "/loc/loc/contain"),
    ]
    # undo restores the pair's own span; a rejected added pair is dropped like any other
    with sessions.begin() as session:
        undo_last(session, ids[OBAMA], annotator="ann", expected_revision=1)
        record_annotation(session, added_id, status="rejected", annotator="ann", expected_revision=1)
    with sessions() as session:
        curated = curated_training_records(session, records, "mnre", "train")
    first = next(record for record in curated if record.line == 1)
    assert (first.head.name, first.head.start, first.head.end) == ("Obama", 0, 1)
    assert len(curated) == 5


def _eraser(session, out):
    export_labels(session, "eraser", out)
    lines = [json.loads(line) for line in (out / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    return {line["annotation_id"].rsplit("/", 1)[1]: line for line in lines}


def test_the_eraser_export_follows_a_span_fix_and_its_undo(imported, tmp_path):
    sessions, ids = imported
    pair_id = ids[OBAMA]
    with sessions.begin() as session:  # the tail becomes "Merkel in Berlin", "meets" the evidence
        record_annotation(
            session,
            pair_id,
            status="accepted",
            annotator="ann",
            expected_revision=0,
            tail=(2, 5),
            rationale=Rationale(tokens=(1,)),
        )
        post_id = session.get(EntityPair, pair_id).post_id
        added, _ = add_pair(
            session, post_id, dataset="mnre", head=(4, 5), tail=(0, 1), label="None", annotator="ann"
        )
        added_id = added.id
    with sessions() as session:
        lines = _eraser(session, tmp_path / "fixed")
    assert lines[str(pair_id)]["query"] == "Obama || Merkel in Berlin"
    assert [(e["start_token"], e["end_token"], e["text"]) for e in lines[str(pair_id)]["evidences"][0]] == [
        (1, 2, "meets")
    ]
    assert (lines[str(added_id)]["query"], lines[str(added_id)]["classification"]) == (
        "Berlin || Obama",
        "None",
    )
    assert lines[str(added_id)]["docids"] == lines[str(pair_id)]["docids"], "one post, one document"
    with sessions.begin() as session:
        undo_last(session, pair_id, annotator="ann", expected_revision=1)
    with sessions() as session:
        lines = _eraser(session, tmp_path / "undone")
    assert lines[str(pair_id)]["query"] == "Obama || Merkel"
