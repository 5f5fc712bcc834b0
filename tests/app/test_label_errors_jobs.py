"""Find label errors end to end: the crossfit job plans the folds, one crossfit_fold job per fold trains and
predicts, the last one stores the run; the Queue's label-error sort reads it back with the flips first. A cancelled
fold leaves no run; a worker killed during a fold is replaced and the run completes."""

from __future__ import annotations

import signal
import time

import pytest
from sqlalchemy import func, select

from db.models import CrossfitRun, Job, OutOfSamplePrediction
from db.schema import open_database
from tests.app.test_jobs import final, start_worker, wait_for
from tests.text_decided_data import write_text_decided


def tiny_crossfit_config(folder, text_encoder: str, epochs: int):
    settings = {
        "variant": "text_only",
        "text_encoder": text_encoder,
        "epochs": epochs,
        "batch_size": 8,
        "lr": 3e-3,
        "max_length": 16,
        "seed": 0,
        "tune_none_bias": "false",
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"crossfit_{epochs}.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in settings.items()))
    return path


@pytest.fixture
def noisy_store(tmp_path, tiny_text_encoder, monkeypatch):
    """A store holding a text-decided dataset with 10 % of its train labels flipped (noise.json says which)."""
    from db.io import import_mnre
    from model.noise import make_noisy_copy, read_flips

    clean = write_text_decided(tmp_path / "clean", n_train=150, n_val=40, seed=1)
    noisy = tmp_path / "noisy"
    make_noisy_copy(clean, noisy, 0.1, "uniform", seed=1)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine, sessions = open_database(url)
    with sessions.begin() as session:
        import_mnre(session, noisy, dataset="toy")
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("MRELENS_CROSSFIT_CONFIG", str(tiny_crossfit_config(tmp_path, tiny_text_encoder, 12)))
    monkeypatch.setenv("TORCH_NUM_THREADS", "1")
    yield {"sessions": sessions, "flips": {f.line for f in read_flips(noisy)}, "tmp": tmp_path, "url": url}
    engine.dispose()


def run_queued(sessions, job_id: int) -> Job:
    from app.jobs.runner import execute_job

    execute_job(job_id, sessions)
    with sessions() as session:
        job = session.get(Job, job_id)
        session.expunge(job)
    return job


def test_find_label_errors_stores_a_run_that_ranks_the_flips_first(noisy_store):
    from app.jobs import enqueue
    from app.services.store import decide
    from db.label_errors import AUDIT_ORIGIN, audit_progress, suspects
    from db.review_queue import QueueFilter, review_queue

    sessions, flips = noisy_store["sessions"], noisy_store["flips"]
    plan = run_queued(sessions, enqueue(sessions, "crossfit", "curator", {"dataset": "toy", "folds": 3}))
    assert plan.status == "succeeded", plan.error
    fold_jobs = plan.outcome["fold_jobs"]
    assert len(fold_jobs) == 3
    outcomes = [run_queued(sessions, job_id) for job_id in fold_jobs]
    assert [job.status for job in outcomes] == ["succeeded"] * 3, [job.error for job in outcomes]
    # only the last fold merges
    assert [("crossfit_run" in job.outcome) for job in outcomes] == [False, False, True]

    with sessions() as session:
        run = session.scalars(select(CrossfitRun)).one()
        rows = session.scalars(
            select(OutOfSamplePrediction).where(OutOfSamplePrediction.run_id == run.id)
        ).all()
        # no active model: only the train split is scored, each pair by the fold model that held it out
        assert run.pairs == len(rows) == 150 and run.folds == 3
        models = {m["fold"]: m for m in run.settings["fold_models"]}
        for fold, model in models.items():
            held = [row for row in rows if row.fold == fold]
            assert model["held_out"] == len(held) and model["trained_on"] == 150 - len(held)
            assert {row.model_version for row in held} == {model["version_id"]}
        assert sorted(row.rank for row in rows) == list(range(1, 151))

        top = suspects(session, "toy", top=len(flips))
        found = sum(s.source_line in flips for s in top)
        assert found >= 0.7 * len(flips), (found, len(flips))
        queue = review_queue(session, QueueFilter(dataset="toy", split="train"), sort="label_error", limit=10)
        assert [item.pair_id for item in queue] == [s.pair_id for s in top[:10]]
        assert queue[0].suspect_rank == 1 and queue[0].suggested_label == top[0].suggested_label
        assert len(review_queue(session, QueueFilter(suspects=5), sort="label_error", limit=50)) == 5
        first = top[0]

    # the audit: take the suggestion, recorded as an audit decision and counted
    decide(sessions, first.pair_id, "corrected", "curator", 0, first.suggested_label, origin=AUDIT_ORIGIN)
    with sessions() as session:
        progress = audit_progress(session, "toy", top=len(flips))
    assert (progress.reviewed, progress.in_audit) == (1, 1)
    assert progress.changed == (first.suggested_label != first.gold_label)


def test_a_cancelled_fold_leaves_no_run(noisy_store):
    from app.jobs import cancel, enqueue

    sessions = noisy_store["sessions"]
    plan = run_queued(sessions, enqueue(sessions, "crossfit", "curator", {"dataset": "toy", "folds": 2}))
    first, second = plan.outcome["fold_jobs"]
    assert cancel(sessions, second) == "cancelled"
    assert run_queued(sessions, first).status == "succeeded"
    from app.jobs.runner import execute_job

    assert execute_job(second, sessions) is None  # a cancelled job is never started
    with sessions() as session:
        assert session.get(Job, second).status == "cancelled"
        assert session.scalar(select(func.count()).select_from(CrossfitRun)) == 0


def test_planning_refuses_a_dataset_without_enough_labelled_pairs(noisy_store):
    from app.jobs import enqueue

    sessions = noisy_store["sessions"]
    job = run_queued(sessions, enqueue(sessions, "crossfit", "curator", {"dataset": "toy", "folds": 500}))
    assert job.status == "failed" and "needs at least 500" in job.error
    job = run_queued(sessions, enqueue(sessions, "crossfit", "curator", {"dataset": "nope"}))
    assert job.status == "failed" and "no dataset named 'nope'" in job.error


@pytest.mark.slow
def test_a_fold_interrupted_by_a_killed_worker_is_trained_again_and_the_run_completes(
    noisy_store, tiny_text_encoder, app_feature_cache, monkeypatch
):
    import os

    from app.jobs import enqueue

    sessions, tmp = noisy_store["sessions"], noisy_store["tmp"]
    # folds long enough to be killed in the middle of one
    monkeypatch.setenv("MRELENS_CROSSFIT_CONFIG", str(tiny_crossfit_config(tmp, tiny_text_encoder, 25)))
    env = {
        **os.environ,
        "MRELENS_WORKER_NICE": "0",
        "MRELENS_FEATURE_CACHE": str(app_feature_cache),
    }
    log = tmp / "worker.log"
    plan_id = enqueue(sessions, "crossfit", "curator", {"dataset": "toy", "folds": 2})
    worker = start_worker(env, log)
    try:
        plan = wait_for(sessions, plan_id, final, 60, "planned")
        assert plan.status == "succeeded", (plan.error, log.read_text()[-2000:])
        first_fold = plan.outcome["fold_jobs"][0]
        wait_for(
            sessions,
            first_fold,
            lambda j: j.status == "running" and (j.progress or {}).get("step"),
            90,
            "ran",
        )
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        worker = start_worker(env, log)
        interrupted = wait_for(sessions, first_fold, final, 180, "marked failed")
        assert interrupted.status == "failed" and "interrupted" in interrupted.error
        with sessions() as session:
            again = session.scalars(
                select(Job).where(Job.kind == "crossfit_fold", Job.id > max(plan.outcome["fold_jobs"]))
            ).all()
            assert [job.params["fold"] for job in again] == [interrupted.params["fold"]], log.read_text()[
                -3000:
            ]
        deadline = time.time() + 600
        while time.time() < deadline:
            with sessions() as session:
                if session.scalar(select(func.count()).select_from(CrossfitRun)):
                    break
            time.sleep(0.5)
        with sessions() as session:
            runs = session.scalars(select(CrossfitRun)).all()
            assert len(runs) == 1 and runs[0].pairs == 150, log.read_text()[-3000:]
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
