"""Overlap >= 2: a slot holder's save goes on top of other slot holders' decisions made since they were shown the
pair, but an undo in between is a change of the pair, not an independent judgement: the save is a conflict even
when the undo restored a decision and was made by another slot holder (db.leases.independent_base)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from db.annotations import pair_history, undo_last
from db.errors import ConcurrentEditError
from db.io import import_mnre
from db.leases import record_decision, set_team_settings, take_next
from db.models import EntityPair

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_an_undo_by_another_slot_holder_in_between_is_a_conflict(sessions, mini_mnre):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre, dataset="mini")
        set_team_settings(session, "mini", 4, 10)
    for reviewer in ("ann", "bob", "cyd", "dan"):
        with sessions.begin() as session:
            taken = take_next(session, reviewer, now=T0)
        if reviewer == "ann":
            pair_id = taken.pair_id
        assert taken.pair_id == pair_id, reviewer  # overlap 4: the four hold a slot of the same pair

    def save(reviewer, seen_revision, label):
        with sessions.begin() as session:
            return record_decision(
                session,
                pair_id,
                status="corrected",
                annotator=reviewer,
                expected_revision=seen_revision,
                label=label,
            ).revision

    assert save("ann", 0, "/per/per/peer") == 1
    assert save("bob", 0, "/loc/loc/contain") == 2  # independent judgements: recorded on top, no conflict
    # cyd (a slot holder) takes bob's decision back: ann's label is in effect
    with sessions.begin() as session:
        undone = undo_last(session, pair_id, annotator="cyd", expected_revision=2)
    assert (undone.revision, undone.label, undone.undoes_id is not None) == (3, "/per/per/peer", True)
    with pytest.raises(ConcurrentEditError, match="cyd"):  # dan was shown revision 2, before the undo
        save("dan", 2, "None")
    with sessions() as session:
        assert [a.annotator for a in pair_history(session, pair_id)] == ["ann", "bob", "cyd"]
        assert session.scalar(select(EntityPair.id).where(EntityPair.id == pair_id)) == pair_id
