"""Experiments and retraining as jobs: the pages enqueue them (no training in a page's script run), the runner
stores Table 1 / Table 2 runs through model.shuffle and model.train, and a retrain job registers a child version."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db.models import EvaluationRun, Job, ModelVersion
from tests.app.conftest import TINY_VISION, no_exceptions
from tests.app.test_jobs import job_env, tiny_config  # noqa: F401  (fixture)


def run_inline(sessions, job_id: int) -> Job:
    """The worker's code path (app.jobs.runner.execute_job) in this process: faster than a worker for checking
    what a job stores; the worker process itself is tested in test_jobs.py."""
    from app.jobs.runner import execute_job

    execute_job(job_id, sessions)
    with sessions() as session:
        job = session.get(Job, job_id)
        session.expunge(job)
    return job


@pytest.mark.slow
def test_experiments_page_queues_tables_and_the_runner_stores_them(job_env, tiny_text_encoder, make_app):  # noqa: F811
    sessions, tmp = job_env["sessions"], job_env["tmp"]
    at = make_app(job_env["env"]["DATABASE_URL"], "views/experiments.py")
    no_exceptions(at)
    at.button(key="experiments_run_ablation").click().run()
    no_exceptions(at)
    at.button(key="experiments_run_shuffle").click().run()
    with sessions() as session:
        ablation, shuffle = session.scalars(select(Job).order_by(Job.id)).all()
        assert (ablation.kind, shuffle.kind) == ("ablation", "shuffle") and ablation.status == "queued"
        assert ablation.params["data"] == str(job_env["data"]) and ablation.started_by == "tester"
        assert session.scalars(select(EvaluationRun)).all() == []  # the page trained nothing itself
    config = tiny_config(tmp / "exp", tiny_text_encoder, 1, vision_config=TINY_VISION)
    with sessions.begin() as session:
        for job_id in (ablation.id, shuffle.id):
            job = session.get(Job, job_id)
            job.params = {**job.params, "config": str(config), "variants": ["text_only", "objects"]}
        session.get(Job, shuffle.id).params = {**session.get(Job, shuffle.id).params, "variants": ["objects"]}
    done = run_inline(sessions, ablation.id)
    assert done.status == "succeeded", done.error
    assert done.progress["parts"] == 2 and done.progress["part"] == 2
    done = run_inline(sessions, shuffle.id)
    assert done.status == "succeeded", done.error
    with sessions() as session:
        runs = sorted((r.variant, r.setting) for r in session.scalars(select(EvaluationRun)))
        # no version is registered for these runs: the Experiments tables read the architecture the job recorded
        architectures = {
            (r.settings or {}).get("architecture") for r in session.scalars(select(EvaluationRun))
        }
    assert architectures == {"ifaformer"}
    assert runs == [
        ("objects", "shuffle-test"),
        ("objects", "shuffle-train"),
        ("objects", "standard"),
        ("objects", "standard"),
        ("text_only", "standard"),
    ]
    at = make_app(job_env["env"]["DATABASE_URL"], "views/experiments.py")
    no_exceptions(at)
    assert set(at.dataframe[1].value["variant"]) == {"text_only", "objects"}  # Table 2 from the job's runs


@pytest.mark.slow
def test_models_page_queues_a_retrain_job_that_registers_a_child(job_env, tiny_text_encoder, make_app):  # noqa: F811
    from app.jobs import enqueue

    sessions = job_env["sessions"]
    first = enqueue(sessions, "first_model", "tester", {"data": str(job_env["data"]), "dataset": "synthetic"})
    assert run_inline(sessions, first).status == "succeeded"
    at = make_app(job_env["env"]["DATABASE_URL"], "views/models.py")
    no_exceptions(at)
    assert "job " in at.dataframe[0].value["job"].iloc[0]  # the version names the job that made it
    at.button(key="models_retrain").click().run()
    no_exceptions(at)
    with sessions() as session:
        retrain = session.scalars(select(Job).where(Job.kind == "retrain")).one()
        assert retrain.status == "queued" and len(session.scalars(select(ModelVersion)).all()) == 1
    done = run_inline(sessions, retrain.id)
    assert done.status == "succeeded", done.error
    with sessions() as session:
        child = session.scalars(select(ModelVersion).where(ModelVersion.parent_id.is_not(None))).one()
        assert child.settings["job"] == retrain.id and child.version_id == done.outcome["model_version"]
        assert done.outcome["val_f1_before"] is not None and "activated" in done.outcome


def test_grounding_job_grounds_the_dataset_through_model_grounding(job_env):  # noqa: F811
    from app.jobs import enqueue

    sessions, tmp = job_env["sessions"], job_env["tmp"]
    out = tmp / "grounding"
    params = {
        "data": str(job_env["data"]),
        "dataset": "synthetic",
        "splits": ["val"],
        "limit": 5,
        "out": str(out),
    }
    job = run_inline(sessions, enqueue(sessions, "grounding", "tester", params))
    assert job.status == "succeeded", job.error
    assert job.outcome["counts"]["val"]["grounded"] == 5 and job.progress["fraction"] == 1.0
    assert len((out / "val.jsonl").read_text().splitlines()) == 5
    again = run_inline(sessions, enqueue(sessions, "grounding", "tester", params))
    assert again.outcome["counts"]["val"]["skipped"] == 5  # resumable: a second job skips what is stored
