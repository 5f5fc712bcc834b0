"""A reviewer's undo stack comes from the store's history (it survives a reload): only their own decisions still in
effect, most recent first. A bulk accept (admin only) writes one decision per pair under one batch id, skips and
counts pairs without a label or already decided, and its undo takes back exactly that batch."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db.annotations import own_decisions_in_effect, pair_history, record_annotation, undo_last
from db.bulk_review import bulk_accept, undo_bulk_accept
from db.errors import LabelStoreError
from db.io import import_mnre, import_post
from db.models import EntityPair
from db.roles import ADMIN, REVIEWER, Actor, PermissionDeniedError

ALICE, BOSS = Actor("alice", REVIEWER), Actor("boss", ADMIN)


@pytest.fixture
def pairs(sessions, mini_mnre) -> list[int]:
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
        return list(session.scalars(select(EntityPair.id).order_by(EntityPair.id)))


def decide(sessions, pair_id, who, status="accepted", label=None, revision=0):
    with sessions.begin() as session:
        return record_annotation(
            session, pair_id, status=status, annotator=who, expected_revision=revision, label=label
        ).revision


def stack(sessions, who) -> list[int]:
    with sessions() as session:
        return [entry.pair_id for entry in own_decisions_in_effect(session, who)]


def test_the_stack_is_the_reviewers_own_decisions_in_effect_newest_first(sessions, pairs):
    a, b, c = pairs[:3]
    decide(sessions, a, "alice")
    decide(sessions, b, "alice", "rejected")
    decide(sessions, c, "bob")
    decide(sessions, a, "alice", "corrected", "None", revision=1)  # a again: now her newest
    assert stack(sessions, "alice") == [a, b]
    assert stack(sessions, "bob") == [c]
    with sessions() as session:
        top = own_decisions_in_effect(session, "alice")[0]
    assert (top.revision, top.current_revision, top.status) == (2, 2, "corrected")


def test_a_pair_another_reviewer_decided_later_leaves_the_stack(sessions, pairs):
    a, b = pairs[:2]
    decide(sessions, a, "alice")
    decide(sessions, b, "alice")
    decide(sessions, b, "bob", "rejected", revision=1)  # bob decides on top of alice's decision
    assert stack(sessions, "alice") == [a]
    # bob undoes his decision: alice's is in effect again, and hers to undo again
    with sessions.begin() as session:
        undo_last(session, b, annotator="bob", expected_revision=2)
    assert stack(sessions, "alice") == [b, a]
    assert stack(sessions, "bob") == []


def test_an_undo_takes_the_decision_off_and_brings_the_earlier_own_one_back_in_order(sessions, pairs):
    a, b = pairs[:2]
    decide(sessions, a, "alice")
    decide(sessions, b, "alice")
    decide(sessions, a, "alice", "rejected", revision=1)
    assert stack(sessions, "alice") == [a, b]
    with sessions.begin() as session:
        undo_last(session, a, annotator="alice", expected_revision=2, actor=ALICE)
    # a's first decision is in effect again; it was made before b's
    assert stack(sessions, "alice") == [b, a]


def test_bulk_accept_is_for_admins_only(sessions, pairs):
    with pytest.raises(PermissionDeniedError, match="alice is a reviewer"), sessions.begin() as session:
        bulk_accept(session, pairs, annotator="alice", actor=ALICE)
    with sessions() as session:
        assert all(not pair_history(session, p) for p in pairs)


def test_bulk_accept_skips_and_counts_decided_and_unlabelled_pairs_and_its_undo_takes_back_only_the_batch(
    sessions, pairs
):
    decided, rejected, skipped, later, *rest = pairs
    with sessions.begin() as session:  # a post added here that nobody labelled: no label to accept
        unlabelled = import_post(session, "Ann visits Rome", (0, 1), (2, 3))[0].id
    pairs = [*pairs, unlabelled]
    decide(sessions, decided, "alice", "corrected", "None")
    decide(sessions, rejected, "alice", "rejected")
    decide(sessions, skipped, "alice", "skipped")  # skipped: not decided, its gold label is accepted
    with sessions.begin() as session:
        done = bulk_accept(session, pairs, annotator="boss", actor=BOSS)
    assert done.accepted == [skipped, later, *rest]
    assert done.skipped_no_label == [unlabelled] and done.skipped_decided == [decided, rejected]
    with sessions() as session:
        rows = [pair_history(session, p)[-1] for p in done.accepted]
        gold = {p.id: p.gold_label for p in session.scalars(select(EntityPair))}
    assert {row.origin for row in rows} == {f"bulk:{done.batch}"}
    assert all(row.status == "accepted" and row.label == gold[row.pair_id] for row in rows)
    assert stack(sessions, "boss") == [], "a bulk accept is undone as a batch, not press by press"
    # a reviewer decides one of the batch's pairs after it: the undo keeps that decision
    decide(sessions, later, "alice", "rejected", revision=1)
    with pytest.raises(PermissionDeniedError), sessions.begin() as session:
        undo_bulk_accept(session, done.batch, annotator="alice", actor=ALICE)
    with sessions.begin() as session:
        undone = undo_bulk_accept(session, done.batch, annotator="boss", actor=BOSS)
    assert undone.undone == sorted([skipped, *rest]) and undone.kept == [later]
    with sessions() as session:
        assert pair_history(session, later)[-1].status == "rejected"
        assert pair_history(session, skipped)[-1].status == "skipped", "back to the state before the batch"
        assert all(pair_history(session, p)[-1].status == "unreviewed" for p in rest)
        assert [a.status for a in pair_history(session, decided)] == ["corrected"], "untouched"
        assert not pair_history(session, unlabelled)
    with pytest.raises(LabelStoreError, match="already undone"), sessions.begin() as session:
        undo_bulk_accept(session, done.batch, annotator="boss", actor=BOSS)


def test_bulk_accept_of_a_missing_pair_writes_nothing(sessions, pairs):
    with pytest.raises(LabelStoreError, match="no entity pair with id 999999"), sessions.begin() as session:
        bulk_accept(session, [pairs[0], 999999], annotator="boss", actor=BOSS)
    with sessions() as session:
        assert not pair_history(session, pairs[0])
    with pytest.raises(LabelStoreError, match="no bulk accept"), sessions.begin() as session:
        undo_bulk_accept(session, "nope", annotator="boss", actor=BOSS)
