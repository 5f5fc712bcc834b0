"""Rationales in the store: recorded with a decision (checked first, nothing stored when bad), undone with it,
revision-checked like the label, and the schema the migration builds equal to the models'."""

import math

import pytest
from sqlalchemy import func, inspect, select

from db.annotations import current_rationales, current_state, pair_history, record_annotation, undo_last
from db.errors import ConcurrentEditError, LabelStoreError
from db.io import import_mnre
from db.models import Annotation, EntityPair
from db.models import Rationale as RationaleRow
from db.rationales import Rationale, check_rationale, decision_rationale

# train line 1: "Obama meets Merkel in Berlin", head Obama (0, 1), tail Merkel (2, 3), img1.jpg 40 x 30 pixels
OBAMA = ("train", 1)


@pytest.fixture
def imported(sessions, mini_mnre):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
    with sessions() as session:
        ids = {(pair.split, pair.source_line): pair.id for pair in session.scalars(select(EntityPair))}
    return sessions, ids


def _count(session) -> tuple[int, int]:
    return session.scalar(select(func.count()).select_from(Annotation)), session.scalar(
        select(func.count()).select_from(RationaleRow)
    )


def test_a_rationale_is_stored_with_its_decision_and_is_the_pairs_current_one(imported):
    sessions, ids = imported
    pair_id = ids[OBAMA]
    marked = Rationale(tokens=(4, 1), box=(2, 3, 20.5, 30), image_size=(40, 30))
    with sessions.begin() as session:
        first = record_annotation(
            session, pair_id, status="accepted", annotator="ann", expected_revision=0, rationale=marked
        )
    with sessions() as session:
        stored = decision_rationale(session, first.id)
        assert stored == Rationale(tokens=(1, 4), box=(2.0, 3.0, 20.5, 30.0), image_size=(40, 30))
        assert current_rationales(session) == {pair_id: stored}
    with sessions.begin() as session:  # a new decision without a rationale: the pair has none in effect
        record_annotation(
            session, pair_id, status="corrected", label="None", annotator="ann", expected_revision=1
        )
    with sessions() as session:
        assert current_rationales(session) == {}
        assert decision_rationale(session, first.id) == stored  # the history keeps it


def test_undo_takes_the_rationale_back_with_its_decision(imported):
    sessions, ids = imported
    pair_id = ids[OBAMA]
    one, two = Rationale(tokens=(1,)), Rationale(tokens=(3, 4))
    with sessions.begin() as session:
        record_annotation(
            session, pair_id, status="accepted", annotator="ann", expected_revision=0, rationale=one
        )
        record_annotation(
            session,
            pair_id,
            status="corrected",
            label="None",
            annotator="ann",
            expected_revision=1,
            rationale=two,
        )
    with sessions() as session:
        assert current_rationales(session, [pair_id]) == {pair_id: two}
    with sessions.begin() as session:
        undo_last(session, pair_id, annotator="ann", expected_revision=2)
    with sessions() as session:
        assert current_state(pair_history(session, pair_id)).label == "/per/per/peer"
        assert current_rationales(session, [pair_id]) == {pair_id: one}
    with sessions.begin() as session:
        undo_last(session, pair_id, annotator="ann", expected_revision=3)
    with sessions() as session:
        assert current_state(pair_history(session, pair_id)).status == "unreviewed"
        assert current_rationales(session, [pair_id]) == {}
        assert (
            session.scalar(select(func.count()).select_from(RationaleRow)) == 3
        )  # 2 saved + 1 restored copy


def test_a_skip_keeps_the_previous_rationale_as_it_keeps_the_label(imported):
    sessions, ids = imported
    pair_id = ids[OBAMA]
    with sessions.begin() as session:
        record_annotation(
            session,
            pair_id,
            status="accepted",
            annotator="ann",
            expected_revision=0,
            rationale=Rationale((1,)),
        )
        record_annotation(session, pair_id, status="skipped", annotator="bob", expected_revision=1)
    with sessions() as session:
        assert current_rationales(session) == {pair_id: Rationale((1,))}


def test_a_concurrent_edit_stores_neither_the_decision_nor_its_rationale(imported):
    sessions, ids = imported
    pair_id = ids[OBAMA]
    with sessions.begin() as session:
        record_annotation(session, pair_id, status="accepted", annotator="ann", expected_revision=0)
    with sessions.begin() as session, pytest.raises(ConcurrentEditError):
        record_annotation(
            session,
            pair_id,
            status="accepted",
            annotator="bob",
            expected_revision=0,
            rationale=Rationale((1,)),
        )
    with sessions() as session:
        assert _count(session) == (1, 0)


BAD = [
    (Rationale(tokens=(5,)), "rationale.tokens", "outside"),
    (Rationale(tokens=(-1,)), "rationale.tokens", "outside"),
    (Rationale(tokens=(1, 1)), "rationale.tokens", "more than once"),
    (Rationale(tokens=(0,)), "rationale.tokens", "entity"),
    (Rationale(tokens=(2, 3)), "rationale.tokens", "entity"),
    (Rationale(tokens=tuple(range(10**6))), "rationale.tokens", "1000000 indices"),
    (Rationale(tokens=(True,)), "rationale.tokens", "not a word index"),
    (Rationale(tokens=(1.0,)), "rationale.tokens", "not a word index"),
    (Rationale(tokens=()), "rationale.tokens", "empty"),
    (Rationale(box=(0, 0, 41, 30), image_size=(40, 30)), "rationale.box", "outside"),
    (Rationale(box=(-1, 0, 4, 3), image_size=(40, 30)), "rationale.box", "outside"),
    (Rationale(box=(10, 0, 4, 3), image_size=(40, 30)), "rationale.box", "x0 < x1"),
    (Rationale(box=(1, 1, 1, 3), image_size=(40, 30)), "rationale.box", "x0 < x1"),
    (Rationale(box=(math.nan, 0, 4, 3), image_size=(40, 30)), "rationale.box", "NaN"),
    (Rationale(box=(0, 0, math.inf, 3), image_size=(40, 30)), "rationale.box", "NaN"),
    (Rationale(box=(0, 0, 4), image_size=(40, 30)), "rationale.box", "(x0, y0, x1, y1)"),
    (Rationale(box=(0, 0, 4, 3)), "rationale.image_size", "needs the image"),
    (Rationale(box=(0, 0, 4, 3), image_size=(0, 30)), "rationale.image_size", "positive"),
    (Rationale(tokens=(1,), source="synthetic"), "rationale.source", "reviewer"),
]


@pytest.mark.parametrize("rationale, field, problem", BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_a_bad_rationale_names_its_field_and_nothing_is_stored(imported, rationale, field, problem):
    sessions, ids = imported
    with sessions.begin() as session:
        with pytest.raises(LabelStoreError) as err:
            record_annotation(
                session,
                ids[OBAMA],
                status="accepted",
                annotator="ann",
                expected_revision=0,
                rationale=rationale,
            )
        assert f"'{field}'" in str(err.value) and problem in str(err.value)
    with sessions() as session:
        assert _count(session) == (0, 0)


def test_a_box_on_a_post_without_an_image_is_refused():
    with pytest.raises(LabelStoreError, match="'rationale.box': the post has no image"):
        check_rationale(Rationale(box=(0, 0, 1, 1), image_size=(4, 4)), 5, has_image=False)


def test_the_database_refuses_a_box_outside_its_image_even_past_the_checks(imported):
    sessions, ids = imported
    with sessions.begin() as session:
        decision = record_annotation(
            session, ids[OBAMA], status="accepted", annotator="ann", expected_revision=0
        )
    from sqlalchemy.exc import IntegrityError

    for values in (
        {"box_x0": 0.0, "box_y0": 0.0, "box_x1": 50.0, "box_y1": 3.0, "image_width": 40, "image_height": 30},
        {"box_x0": 5.0, "box_y0": 0.0, "box_x1": 4.0, "box_y1": 3.0, "image_width": 40, "image_height": 30},
        {"box_x0": 0.0, "box_y0": 0.0, "box_x1": 4.0, "box_y1": 3.0},
    ):
        with pytest.raises(IntegrityError), sessions.begin() as session:
            session.add(
                RationaleRow(
                    pair_id=ids[OBAMA], annotation_id=decision.id, source="reviewer", tokens=[], **values
                )
            )
    with (
        pytest.raises(IntegrityError),
        sessions.begin() as session,
    ):  # a reviewer's rationale needs its decision
        session.add(RationaleRow(pair_id=ids[OBAMA], annotation_id=None, source="reviewer", tokens=[1]))


def test_the_migration_builds_the_models_check_constraints(store):
    """compare_metadata (tests/db/test_schema.py) does not compare CHECK constraints: compare them by name."""
    from db.base import Base

    engine, _ = store
    for table in ("rationales", "annotations"):
        built = {c["name"] for c in inspect(engine).get_check_constraints(table)}
        declared = {
            c.name
            for c in Base.metadata.tables[table].constraints
            if c.__class__.__name__ == "CheckConstraint"
        }
        assert built == declared, table
