"""Jobs end to end: the real worker (`python -m app.worker`, a separate process) runs tiny trainings from the
label store's jobs table: success (registered, activated, queue scored), cancel and failure (nothing registered),
and a worker killed mid-job (the next worker marks the job failed, the app shows it). Fast checks of the rules
(activation only when better, atomic scoring, no duplicate launcher jobs) run in-process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.models import EntityPair, Job, ModelVersion, Prediction
from db.schema import open_database

REPO = Path(__file__).resolve().parents[2]


def tiny_config(folder: Path, text_encoder: str, epochs: int = 2, **extra) -> Path:
    """A TrainConfig YAML for a tiny text-only model (2 layers, 32 wide): seconds per epoch on the CPU."""
    settings = {
        "variant": "text_only",
        "text_encoder": text_encoder,
        "epochs": epochs,
        "batch_size": 8,
        "lr": 2e-3,
        "max_length": 24,
        "seed": 0,
        **extra,
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"tiny_{epochs}.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in settings.items()))
    return path


@pytest.fixture
def job_env(tmp_path, tiny_text_encoder, app_feature_cache, monkeypatch):
    """A store with a small synthetic dataset, a queue file, tiny first/default configs; the env the worker needs
    (also set in this process, so that enqueue() writes to the same queue)."""
    from db.io import import_mnre
    from model.synthetic import generate

    data = generate(tmp_path / "synthetic", {"train": 48, "val": 24}, images_per_label=1, seed=0)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine, sessions = open_database(url)
    with sessions.begin() as session:
        import_mnre(session, data, dataset="synthetic")
    env = {
        "DATABASE_URL": url,
        "MRELENS_JOBS_URL": f"sqlite:///{tmp_path / 'jobs.db'}",
        "MRELENS_RUNS_DIR": str(tmp_path / "runs"),
        "MRELENS_FEATURE_CACHE": str(app_feature_cache),
        "MRELENS_FIRST_MODEL_CONFIG": str(tiny_config(tmp_path / "configs", tiny_text_encoder, 2)),
        "MRELENS_DEFAULT_MODEL_CONFIG": str(tiny_config(tmp_path / "configs", tiny_text_encoder, 3)),
        "MRELENS_WORKER_NICE": "0",
        "TORCH_NUM_THREADS": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield {"env": {**os.environ, **env}, "sessions": sessions, "data": data, "tmp": tmp_path}
    engine.dispose()


def start_worker(env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app.worker"],
        cwd=REPO,
        env=env,
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
    )


def wait_for(sessions, job_id: int, condition, timeout: float = 60, what: str = "") -> Job:
    deadline = time.time() + timeout
    while True:
        with sessions() as session:
            job = session.get(Job, job_id)
            session.expunge(job)
        if condition(job):
            return job
        if time.time() > deadline:
            raise AssertionError(f"job {job_id} never {what}: {job.status} {job.progress} {job.error}")
        time.sleep(0.2)


def final(job: Job) -> bool:
    return job.status in ("succeeded", "failed", "cancelled")


def count(sessions, model) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


@pytest.mark.slow
def test_worker_runs_trains_cancels_fails_and_survives_a_killed_worker(job_env, tiny_text_encoder, make_app):
    from app.jobs import cancel, enqueue

    sessions, env, tmp = job_env["sessions"], job_env["env"], job_env["tmp"]
    params = {"data": str(job_env["data"]), "dataset": "synthetic"}
    log = tmp / "worker.log"
    worker = start_worker(env, log)
    try:
        # 1. the first model: trained in the worker, registered with its val figures, activated, queue scored
        first = enqueue(sessions, "first_model", "tester", params)
        job = wait_for(sessions, first, final, 90, "finished")
        assert job.status == "succeeded", (job.error, log.read_text()[-3000:])
        assert (
            job.progress["epoch"] == 2
            and job.progress["fraction"] == 1.0
            and job.progress["val_f1"] is not None
        )
        assert "epoch 2" in job.log_tail and job.worker.endswith(f":{worker.pid}")
        with sessions() as session:
            (version,) = session.scalars(select(ModelVersion)).all()
            assert version.is_active and version.version_id == job.outcome["model_version"]
            assert version.settings["job"] == first and version.metrics["val"]["per_label"]
        score = wait_for(sessions, job.outcome["score_job"], final, 60, "scored")
        assert score.status == "succeeded" and score.started_by == f"job {first}"
        assert count(sessions, Prediction) == count(sessions, EntityPair) == 72

        # 2. cancel a long training while it runs: it stops at its next step and registers nothing
        long_config = tiny_config(tmp / "configs", tiny_text_encoder, 300)
        long_job = enqueue(sessions, "default_model", "tester", {**params, "config": str(long_config)})
        wait_for(
            sessions, long_job, lambda j: j.status == "running" and (j.progress or {}).get("step"), 60, "ran"
        )
        assert cancel(sessions, long_job) == "running"
        job = wait_for(sessions, long_job, final, 30, "stopped")
        assert job.status == "cancelled" and "nothing it made was registered" in job.error
        assert job.progress["epoch"] < 300
        assert count(sessions, ModelVersion) == 1

        # 3. a job that fails shows its error and registers nothing; the worker goes on with the next job
        broken = enqueue(sessions, "first_model", "tester", {**params, "data": str(tmp / "no-such-data")})
        job = wait_for(sessions, broken, final, 30, "failed")
        assert job.status == "failed" and "no-such-data" in job.error and "ours_rel2id.json" in job.log_tail
        assert count(sessions, ModelVersion) == 1

        # 4. the worker dies (SIGKILL) mid-job: the next worker marks the job failed and takes the next one
        doomed = enqueue(sessions, "default_model", "tester", {**params, "config": str(long_config)})
        wait_for(
            sessions, doomed, lambda j: j.status == "running" and (j.progress or {}).get("step"), 60, "ran"
        )
        waiting = enqueue(sessions, "score", "tester", {})
        worker.kill()
        worker.wait(10)
        with sessions() as session:
            assert session.get(Job, doomed).status == "running"  # nobody is left to say otherwise
        worker = start_worker(env, log)
        job = wait_for(sessions, doomed, final, 60, "marked failed")
        assert job.status == "failed" and job.error.startswith("interrupted: its worker")
        assert wait_for(sessions, waiting, final, 60, "run").status == "succeeded"
        assert count(sessions, ModelVersion) == 1

        # the app (a new process: an app restart) shows the interrupted job and its error
        at = make_app(env["DATABASE_URL"], "views/jobs.py")
        assert not at.exception, [e.value for e in at.exception]
        table = at.dataframe[0].value
        assert table.set_index("job").loc[doomed, "status"] == "failed"
        assert table.set_index("job").loc[long_job, "status"] == "cancelled"

        # 5. SIGINT (Ctrl-C) while a job runs: the job ends as failed at its next step and the worker exits
        last = enqueue(sessions, "default_model", "tester", {**params, "config": str(long_config)})
        wait_for(
            sessions, last, lambda j: j.status == "running" and (j.progress or {}).get("step"), 60, "ran"
        )
        worker.send_signal(signal.SIGINT)
        assert worker.wait(30) == 0
        job = wait_for(sessions, last, final, 5, "ended")
        assert job.status == "failed" and "worker was stopped" in job.error
        assert count(sessions, ModelVersion) == 1
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def _register(sessions, checkpoint: Path, version_id: str, f1: float | None, tmp: Path) -> None:
    import shutil

    from db.provenance import register_model_version

    folder = tmp / version_id
    shutil.copytree(checkpoint, folder)
    with sessions.begin() as session:
        register_model_version(
            session, version_id, folder, "objects", metrics={"val": {"f1": f1}} if f1 else None
        )


def test_a_later_model_is_activated_only_when_its_val_f1_beats_the_active_one(job_env, tiny_checkpoint):
    from app.jobs.runner import activate_if_better
    from db.provenance import active_model_version

    sessions, tmp = job_env["sessions"], job_env["tmp"]
    _register(sessions, tiny_checkpoint, "v-first", 0.52, tmp)
    assert activate_if_better(sessions, "v-first", "t")["activated"]  # no active model: the first one is
    _register(sessions, tiny_checkpoint, "v-worse", 0.40, tmp)
    _register(sessions, tiny_checkpoint, "v-equal", 0.52, tmp)
    _register(sessions, tiny_checkpoint, "v-better", 0.61, tmp)
    for name, expected in (("v-worse", False), ("v-equal", False), ("v-better", True)):
        outcome = activate_if_better(sessions, name, "t")
        assert outcome["activated"] is expected, name
        assert ("score_job" in outcome) is expected  # every activation queues a re-scoring
    with sessions() as session:
        assert active_model_version(session).version_id == "v-better"
        scoring = session.scalars(select(Job).where(Job.kind == "score")).all()
        assert [j.params["model_version"] for j in scoring] == ["v-first", "v-better"]


def test_a_checkpoint_that_does_not_load_is_never_registered(job_env, tiny_checkpoint):
    import shutil

    from app.jobs.runner import JobRequest, Reporter, register_trained
    from db.jobs import create_job, start_job

    sessions, tmp = job_env["sessions"], job_env["tmp"]
    broken = tmp / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    (broken / "model.safetensors").write_bytes(b"not weights")
    with sessions.begin() as session:
        job_id = create_job(session, "first_model", "t").id
        start_job(session, job_id)
    with pytest.raises(Exception, match="safetensors|header|deserializ|Error"):
        register_trained(
            sessions,
            JobRequest(job_id, "first_model", {}, "t"),
            Reporter(sessions, job_id),
            broken,
            {"f1": 0.9},
            {},
        )
    assert count(sessions, ModelVersion) == 0


def test_a_cancelled_scoring_job_stores_no_prediction(job_env, tiny_checkpoint):
    from app.services.inference import predict_and_store
    from db.jobs import JobCancelled
    from db.provenance import register_checkpoint
    from model.checkpoint import load_checkpoint

    sessions = job_env["sessions"]
    with sessions.begin() as session:
        version = register_checkpoint(session, tiny_checkpoint).id
        ids = list(session.scalars(select(EntityPair.id).order_by(EntityPair.id)))
    model, tokenizer = load_checkpoint(tiny_checkpoint)

    def cancel_after_first_chunk(done, total):
        if done < total:
            raise JobCancelled("cancelled")

    with pytest.raises(JobCancelled):
        predict_and_store(
            sessions, model, tokenizer, version, ids, chunk=16, progress=cancel_after_first_chunk, atomic=True
        )
    assert count(sessions, Prediction) == 0  # per-chunk commits would have left 16 behind


def test_launcher_queues_missing_jobs_once(job_env):
    from app.services.model_jobs import queue_default_jobs

    sessions = job_env["sessions"]
    first = queue_default_jobs(sessions, job_env["data"], "synthetic")
    with sessions() as session:
        assert [session.get(Job, j).kind for j in first] == ["first_model", "default_model"]
        assert session.get(Job, first[0]).priority > session.get(Job, first[1]).priority
    assert queue_default_jobs(sessions, job_env["data"], "synthetic") == []  # a second `make app` reuses them


def test_cancel_and_status_rules(job_env):
    from app.jobs import cancel, enqueue
    from app.jobs.queue import get_queue
    from db.errors import LabelStoreError
    from db.jobs import fail_abandoned_jobs, finish_job, start_job

    sessions = job_env["sessions"]
    queued = enqueue(sessions, "score", "ann", {})
    assert get_queue().pending_count() == 1
    assert cancel(sessions, queued) == "cancelled"
    with sessions.begin() as session:
        assert start_job(session, queued) is None  # the worker skips a job cancelled while queued
    with pytest.raises(LabelStoreError, match="already cancelled"):
        cancel(sessions, queued)
    running = enqueue(sessions, "score", "ann", {})
    with sessions.begin() as session:
        start_job(session, running, worker="elsewhere:1")
        assert fail_abandoned_jobs(session) == []  # another host's job with a fresh heartbeat is left alone
        start = start_job(session, enqueue_id := running)
        assert start is None and enqueue_id == running  # already running: not taken twice
    with sessions.begin() as session:
        finish_job(session, running, "succeeded", {"scored": 0})
        with pytest.raises(LabelStoreError):
            finish_job(session, running, "failed")
    with pytest.raises(LabelStoreError, match="unknown job kind"):
        enqueue(sessions, "mine_bitcoin", "ann", {})


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("TEST_REDIS_URL"), reason="needs TEST_REDIS_URL (.ci/services/redis.sh)"
)
def test_redis_storage_by_configuration_alone(job_env, monkeypatch):
    """MRELENS_JOBS_URL=redis://... and nothing else: the app enqueues into Redis and the worker runs from it."""
    from app.jobs import enqueue
    from app.jobs.queue import get_queue

    redis_url = os.environ["TEST_REDIS_URL"]
    monkeypatch.setenv("MRELENS_JOBS_URL", redis_url)
    queue = get_queue()
    assert type(queue).__name__ == "PriorityRedisHuey"
    queue.flush()
    sessions = job_env["sessions"]
    first = enqueue(sessions, "first_model", "tester", {"data": str(job_env["data"]), "dataset": "synthetic"})
    assert queue.pending_count() == 1
    worker = start_worker({**job_env["env"], "MRELENS_JOBS_URL": redis_url}, job_env["tmp"] / "worker.log")
    try:
        job = wait_for(sessions, first, final, 90, "finished")
        assert job.status == "succeeded", (job.error, (job_env["tmp"] / "worker.log").read_text()[-2000:])
        assert wait_for(sessions, job.outcome["score_job"], final, 60, "scored").status == "succeeded"
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(30)
        queue.flush()
