"""The annotation loop in the store (db.loop) and the retraining it schedules (app.jobs.auto_retrain)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from app.jobs.auto_retrain import AUTO_RETRAIN_BY, schedule_due_retrains
from db.annotations import record_annotation, undo_last
from db.errors import LabelStoreError
from db.io import import_mnre
from db.jobs import create_job, finish_job
from db.loop import (
    decision_counts,
    mark_scheduled,
    retrain_schedule,
    review_outcomes,
    reviewed_labels_at,
    set_retrain_schedule,
)
from db.models import Annotation, EntityPair
from db.provenance import register_model_version, save_predictions, set_active


@pytest.fixture
def pairs(sessions, mini_mnre):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre, dataset="mnre")
    with sessions() as session:
        return sessions, {
            (p.split, p.source_line): (p.id, p.gold_label) for p in session.scalars(select(EntityPair))
        }


def decide(sessions, pair_id, status, annotator="ann", label=None):
    with sessions.begin() as session:
        revision = max(
            [a.revision for a in session.scalars(select(Annotation).where(Annotation.pair_id == pair_id))],
            default=0,
        )
        record_annotation(
            session, pair_id, status=status, annotator=annotator, expected_revision=revision, label=label
        )


def test_decisions_per_day_reviewer_and_status_leave_undo_rows_out(pairs):
    sessions, ids = pairs
    (a, _), (b, _), (c, _) = ids[("train", 1)], ids[("train", 2)], ids[("train", 3)]
    decide(sessions, a, "accepted", "ann")
    decide(sessions, b, "corrected", "bob", "/per/per/peer")
    decide(sessions, c, "accepted", "bob")
    with sessions.begin() as session:
        undo_last(session, c, annotator="bob", expected_revision=1)
        # one decision made yesterday
        session.execute(
            update(Annotation)
            .where(Annotation.pair_id == a)
            .values(created_at=datetime.now(UTC) - timedelta(days=1))
        )
    with sessions() as session:
        counts = {(c.day, c.annotator, c.status): c.count for c in decision_counts(session, "mnre")}
    today = datetime.now(UTC).date()
    assert counts == {
        (today - timedelta(days=1), "ann", "accepted"): 1,
        (today, "bob", "corrected"): 1,
        (today, "bob", "accepted"): 1,
    }
    with sessions() as session, pytest.raises(LabelStoreError, match="no dataset named 'other'.*mnre"):
        decision_counts(session, "other")


def test_review_outcomes_count_corrections_and_model_errors(pairs):
    sessions, ids = pairs
    (a, gold_a), (b, gold_b), (c, _), (d, _) = (ids[("train", i)] for i in (1, 2, 3, 4))
    with sessions.begin() as session:
        key = register_model_version(session, "v1", "/m/v1", "ifaformer").id
        set_active(session, "v1")
        save_predictions(
            session,
            key,
            [
                {
                    "pair_id": a,
                    "probabilities": {gold_a: 0.9, "None" if gold_a != "None" else "/per/per/peer": 0.1},
                },
                {
                    "pair_id": b,
                    "probabilities": {gold_b: 0.8, "None" if gold_b != "None" else "/per/per/peer": 0.2},
                },
            ],
        )
    other = "/per/per/peer" if gold_b != "/per/per/peer" else "/per/org/member_of"
    decide(sessions, a, "accepted")  # model right, gold right
    decide(sessions, b, "corrected", label=other)  # gold wrong, and the model (which said gold) wrong
    decide(sessions, c, "rejected")  # no label: a correction, no model comparison
    decide(sessions, d, "skipped")  # not a decision
    with sessions() as session:
        outcomes = review_outcomes(session, "mnre", key)
    assert (outcomes.reviewed, outcomes.corrected, outcomes.with_prediction, outcomes.model_wrong) == (
        3,
        2,
        2,
        1,
    )
    assert outcomes.correction_share == pytest.approx(2 / 3) and outcomes.model_error_share == pytest.approx(
        0.5
    )


def test_reviewed_labels_at_counts_each_pair_once_from_its_first_decision(pairs):
    sessions, ids = pairs
    (a, _), (b, _) = ids[("train", 1)], ids[("train", 2)]
    before = datetime.now(UTC) - timedelta(seconds=1)
    decide(sessions, a, "accepted")
    decide(sessions, a, "corrected", label="/per/per/peer")
    decide(sessions, b, "skipped")
    after = datetime.now(UTC) + timedelta(seconds=1)
    with sessions() as session:
        assert reviewed_labels_at(session, "mnre", [before, after]) == [0, 1]


def test_the_schedule_is_off_by_default_and_counts_from_when_it_is_turned_on(pairs):
    sessions, ids = pairs
    train = [pair_id for (split, _), (pair_id, _) in sorted(ids.items()) if split == "train"]
    decide(sessions, train[0], "accepted")  # before the schedule: does not count
    with sessions() as session:
        schedule = retrain_schedule(session, "mnre")
    assert schedule.every is None and not schedule.due
    with sessions.begin() as session:
        set_retrain_schedule(session, "mnre", 2, 1, "admin")
    decide(sessions, train[1], "accepted")
    decide(sessions, train[2], "skipped")  # not a decision
    with sessions() as session:
        assert retrain_schedule(session, "mnre").new_decisions == 1
    decide(sessions, train[3], "corrected", label="/per/per/peer")
    with sessions() as session:
        schedule = retrain_schedule(session, "mnre")
    assert schedule.due and schedule.new_decisions == 2
    with sessions.begin() as session:
        mark_scheduled(session, "mnre", None)
    with sessions() as session:
        assert retrain_schedule(session, "mnre").new_decisions == 0
    with sessions.begin() as session:
        set_retrain_schedule(session, "mnre", None, 1, "admin")
    decide(sessions, train[1], "corrected", label="/per/per/peer")
    decide(sessions, train[4], "accepted")
    with sessions() as session:
        assert not retrain_schedule(session, "mnre").due


@pytest.mark.parametrize("every", [0, -3, True, 2.5, "3"])
def test_a_schedule_that_is_not_a_positive_count_is_refused(pairs, every):
    sessions, _ = pairs
    with sessions.begin() as session, pytest.raises(LabelStoreError, match="retrain every"):
        set_retrain_schedule(session, "mnre", every, 1, "admin")
    with sessions() as session:
        assert retrain_schedule(session, "mnre").every is None


def test_due_schedules_queue_one_retraining_from_the_active_model(pairs):
    sessions, ids = pairs
    # decisions on any split of the dataset count
    train = [pair_id for _, (pair_id, _) in sorted(ids.items())]
    queued: list[tuple] = []

    def fake_enqueue(sessions_, kind, started_by, params):
        with sessions_.begin() as session:
            job = create_job(session, kind, started_by, params, 0)
        queued.append((job.id, kind, started_by, params))
        return job.id

    with sessions.begin() as session:
        set_retrain_schedule(session, "mnre", 2, 3, "admin")
    for pair_id in train[:2]:
        decide(sessions, pair_id, "accepted")
    # due, but no active model to start from: nothing queued, counting starts again
    assert schedule_due_retrains(sessions, fake_enqueue) == []
    with sessions() as session:
        assert retrain_schedule(session, "mnre").new_decisions == 0
    with sessions.begin() as session:
        register_model_version(session, "v1", "/m/v1", "ifaformer")
        set_active(session, "v1")
    for pair_id in train[2:4]:
        decide(sessions, pair_id, "accepted")
    (job_id,) = schedule_due_retrains(sessions, fake_enqueue)
    _, kind, started_by, params = queued[-1]
    assert kind == "retrain" and started_by.startswith(AUTO_RETRAIN_BY)
    assert params["base"] == "v1" and params["dataset"] == "mnre" and params["epochs"] == 3
    # due again while that job is queued: no second job
    for pair_id in train[4:6]:
        decide(sessions, pair_id, "accepted")
    assert schedule_due_retrains(sessions, fake_enqueue) == []
    with sessions.begin() as session:
        finish_job(session, job_id, "succeeded")
    assert len(schedule_due_retrains(sessions, fake_enqueue)) == 1


def test_a_due_schedule_whose_source_folder_is_gone_queues_nothing(pairs, mini_mnre):
    import shutil

    sessions, ids = pairs
    with sessions.begin() as session:
        register_model_version(session, "v1", "/m/v1", "ifaformer")
        set_active(session, "v1")
        set_retrain_schedule(session, "mnre", 1, 1, "admin")
    decide(sessions, next(iter(ids.values()))[0], "accepted")
    shutil.rmtree(mini_mnre)
    assert schedule_due_retrains(sessions, lambda *args: pytest.fail("nothing may be queued")) == []
    with sessions() as session:
        assert retrain_schedule(session, "mnre").new_decisions == 0
