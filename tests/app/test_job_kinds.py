"""The job kinds are one table (db.job_kinds): every kind has a runner and every runner a kind, the jobs table
accepts exactly those, the queue takes priorities and the admin rule from it, and explanations are a kind of
their own (a store from before revision 0006 has its flagged score jobs moved to it)."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from db.base import make_engine
from db.errors import LabelStoreError
from db.job_kinds import JOB_KIND_TABLE, JOB_KINDS, MODEL_KINDS
from db.jobs import create_job
from db.models import Job, utcnow
from db.roles import Actor, PermissionDeniedError
from db.schema import open_database, upgrade_database


def test_every_kind_has_one_runner_and_every_runner_a_kind():
    from app.jobs.runner import RUNNERS

    assert set(RUNNERS) == set(JOB_KINDS)
    assert len({kind.name for kind in JOB_KIND_TABLE}) == len(JOB_KIND_TABLE)
    assert MODEL_KINDS == ("retrain", "first_model", "default_model")
    assert RUNNERS["explanations"].__name__ == "run_explanations"


def test_the_jobs_table_and_create_job_follow_the_table(tmp_path):
    engine, sessions = open_database(f"sqlite:///{tmp_path / 's.db'}")
    with sessions.begin() as session:
        scoring = create_job(session, "score", "ann")
        explaining = create_job(session, "explanations", "ann", {"top": 3})
        first = create_job(session, "first_model", "ann")
        assert (scoring.priority, explaining.priority, first.priority) == (10, 4, 2)
        with pytest.raises(LabelStoreError, match="unknown job kind 'nope'"):
            create_job(session, "nope", "ann")
    engine.dispose()


def test_enqueue_refuses_a_reviewer_a_training_kind_but_not_scoring(tmp_path, monkeypatch):
    from app.jobs import enqueue

    monkeypatch.setenv("MRELENS_JOBS_URL", f"sqlite:///{tmp_path / 'jobs.db'}")
    engine, sessions = open_database(f"sqlite:///{tmp_path / 's.db'}")
    reviewer = Actor("rev", "reviewer")
    trains = [kind.name for kind in JOB_KIND_TABLE if kind.trains]
    assert "retrain" in trains and "score" not in trains
    for kind in trains:
        with pytest.raises(PermissionDeniedError):
            enqueue(sessions, kind, "rev", {}, actor=reviewer)
    job_id = enqueue(sessions, "score", "rev", {}, actor=reviewer)
    with sessions() as session:
        assert session.get(Job, job_id).priority == 10
        assert list(session.scalars(select(Job.kind))) == ["score"]
    engine.dispose()


def test_upgrade_to_0006_moves_flagged_score_jobs_to_the_explanations_kind(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade_database(url, revision="0005")
    engine = make_engine(url)
    now = utcnow()
    rows = [
        {"kind": "score", "params": {"model_version": "v", "explanations": 5}},
        {"kind": "score", "params": {"model_version": "v", "then_explain": 5}},
    ]
    with engine.begin() as conn:
        conn.execute(
            insert(Job.__table__),
            [
                {
                    **row,
                    "started_by": "x",
                    "status": "queued",
                    "priority": 0,
                    "cancel_requested": False,
                    "created_at": now,
                }
                for row in rows
            ],
        )
    engine.dispose()
    engine, sessions = open_database(url)
    with sessions() as session:
        jobs = [(job.kind, job.params) for job in session.scalars(select(Job).order_by(Job.id))]
    engine.dispose()
    assert jobs == [
        ("explanations", {"model_version": "v", "top": 5}),
        ("score", {"model_version": "v", "then_explain": 5}),
    ]
