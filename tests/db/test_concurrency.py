"""Racing reviewers: every save and every undo is checked against the revision the reviewer saw."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event, select

from app.services.store import decide, undo
from db.annotations import pair_history, record_annotation
from db.errors import ConcurrentEditError
from db.io import import_mnre
from db.models import EntityPair


@pytest.fixture
def imported(sessions, mini_mnre):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
    with sessions() as session:
        ids = {(pair.split, pair.source_line): pair.id for pair in session.scalars(select(EntityPair))}
    return sessions, ids


def _alice_saves_between_check_and_insert(sessions, pair_id):
    """A sessionmaker whose sessions let alice commit revision 1 right before their annotation insert runs."""
    alice_done: list[bool] = []

    def before_insert(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO ANNOTATIONS") and not alice_done:
            alice_done.append(True)
            with sessions.begin() as alice:
                record_annotation(alice, pair_id, status="rejected", annotator="alice", expected_revision=0)

    class RacingSessions:
        @contextmanager
        def begin(self):
            engine = sessions.kw["bind"]
            event.listen(engine, "before_cursor_execute", before_insert)
            try:
                with sessions() as session, session.begin():
                    yield session
            finally:
                event.remove(engine, "before_cursor_execute", before_insert)

    return RacingSessions()


def test_lost_race_inside_the_callers_transaction_is_a_concurrent_edit_error(imported):
    sessions, ids = imported
    pair_id = ids[("train", 4)]
    racing = _alice_saves_between_check_and_insert(sessions, pair_id)
    # the caller's own `sessions.begin()` block, as app.services.store.decide uses: no rollback may happen inside it
    with pytest.raises(ConcurrentEditError, match="changed by alice meanwhile"), racing.begin() as bob:
        record_annotation(bob, pair_id, status="accepted", annotator="bob", expected_revision=0)
    with sessions() as session:
        assert [(a.annotator, a.status) for a in pair_history(session, pair_id)] == [("alice", "rejected")]


def test_app_decide_reports_a_lost_race_as_a_concurrent_edit(imported):
    sessions, ids = imported
    pair_id = ids[("train", 5)]
    racing = _alice_saves_between_check_and_insert(sessions, pair_id)
    with pytest.raises(ConcurrentEditError) as caught:
        decide(racing, pair_id, "accepted", "bob", 0)
    assert caught.value.annotator == "alice" and caught.value.revision == 1


def test_undo_is_refused_when_someone_decided_after_the_undoers_decision(imported):
    sessions, ids = imported
    pair_id = ids[("train", 1)]
    mine = decide(sessions, pair_id, "corrected", "A", 0, label="None")
    decide(sessions, pair_id, "corrected", "B", mine.revision, label="/per/org/member_of")
    # A presses undo on the decision A made (revision 1): B's decision (revision 2) must not be cancelled
    with pytest.raises(ConcurrentEditError, match="changed by B meanwhile"):
        undo(sessions, pair_id, "A", expected_revision=mine.revision)
    with sessions() as session:
        history = pair_history(session, pair_id)
    assert [(a.revision, a.annotator, a.label) for a in history] == [
        (1, "A", "None"),
        (2, "B", "/per/org/member_of"),
    ]
    # undo on the revision B saw works and restores A's decision
    undone = undo(sessions, pair_id, "B", expected_revision=2)
    assert (undone.revision, undone.label) == (3, "None")


def test_a_decision_inside_a_failed_transaction_is_not_kept(imported):
    sessions, ids = imported
    pair_id = ids[("train", 2)]
    # the caller groups writes; a failure after the decision must take the decision back too (all or nothing)
    with pytest.raises(RuntimeError), sessions.begin() as session:
        record_annotation(session, pair_id, status="accepted", annotator="ann", expected_revision=0)
        raise RuntimeError("a later write in the same transaction failed")
    with sessions() as session:
        assert pair_history(session, pair_id) == []
