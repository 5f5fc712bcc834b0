"""What Review reads back after an undo (app.services.store.load_review_state): the note, the label and the status of
the decision the undo restores, never those of the decision it took back."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.services.store import decide, load_review_state, undo
from db.io import import_mnre
from db.models import EntityPair
from db.schema import open_database
from tests.db.conftest import write_mini_mnre


@pytest.fixture
def pair(tmp_path):
    """(sessions, pair id, gold label) of the first train pair of the mini MNRE folder in a fresh store."""
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'store.db'}")
    with sessions.begin() as session:
        import_mnre(session, write_mini_mnre(tmp_path / "mnre"))
    with sessions() as session:
        first = session.scalars(select(EntityPair).order_by(EntityPair.id)).first()
        pair_id, gold = first.id, first.gold_label
    yield sessions, pair_id, gold
    engine.dispose()


def test_an_undo_brings_back_the_restored_decisions_note_and_label(pair):
    sessions, pair_id, gold = pair
    decide(sessions, pair_id, "accepted", "ann", 0, note="first look")
    decide(sessions, pair_id, "corrected", "ann", 1, label="None", note="second look")
    with sessions() as session:
        state = load_review_state(session, pair_id)
    assert (state.status, state.label_in_effect, state.note) == ("corrected", "None", "second look")

    undo(sessions, pair_id, "ann", 2)
    with sessions() as session:
        state = load_review_state(session, pair_id)
    assert (state.status, state.label_in_effect, state.undone) == ("accepted", gold, True)
    assert state.note == "first look", "the undone decision's note must not stay on the pair"

    undo(sessions, pair_id, "ann", 3)  # back to before any decision: no note at all
    with sessions() as session:
        state = load_review_state(session, pair_id)
    assert (state.status, state.label_in_effect, state.note) == ("unreviewed", gold, None)
