"""Inspect's expensive results precomputed by a job: an activation queues the re-scoring job, which queues the
explanation job for the top of the queue; the real worker (a separate process) runs both with a tiny model. The
results are stored whole, keyed by model version, and a cancelled job leaves only complete pairs behind."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db.models import Explanation, Job, ModelVersion
from tests.app.test_jobs import final, job_env, start_worker, wait_for  # noqa: F401  (fixture)

TOP = 4


def stored_rows(sessions) -> list[Explanation]:
    with sessions() as session:
        rows = list(session.scalars(select(Explanation).order_by(Explanation.id)))
        session.expunge_all()
    return rows


def complete_pairs(rows: list[Explanation]) -> dict[int, set[str]]:
    """pair id -> the kinds stored for it; every row must read back as a whole result of its kind."""
    from app.services.stored_explanations import METHODS, from_json

    kinds = {method: kind for kind, method in METHODS.items()}
    pairs: dict[int, set[str]] = {}
    for row in rows:
        kind = kinds[row.method]
        result = from_json(kind, row.summary["result"])  # raises on a partial row
        if kind == "tokens":
            attribution, faith = result
            assert len(attribution.scores) == len(attribution.tokens) and faith.n_units > 0
        pairs.setdefault(row.pair_id, set()).add(kind)
    return pairs


@pytest.mark.slow
def test_activation_precomputes_the_top_of_the_queue_in_the_worker_and_a_cancel_keeps_only_whole_pairs(
    job_env,  # noqa: F811  (the fixture imported above)
    tiny_checkpoint,
    monkeypatch,
):
    import shutil

    from app.jobs import cancel
    from app.jobs.runner import activate_if_better
    from app.services.model_jobs import queue_explanations
    from app.services.stored_explanations import DEFAULT_SETTINGS, KINDS, queue_top
    from db.provenance import register_checkpoint

    sessions, tmp = job_env["sessions"], job_env["tmp"]
    monkeypatch.setenv("MRELENS_EXPLAIN_LIMIT", str(TOP))
    folder = tmp / "model"
    shutil.copytree(tiny_checkpoint, folder)
    with sessions.begin() as session:
        version = register_checkpoint(session, folder)
        version_key, version_id = version.id, version.version_id
    outcome = activate_if_better(sessions, version_id, "tester")
    log = tmp / "worker.log"
    worker = start_worker(job_env["env"], log)
    try:
        score = wait_for(sessions, outcome["score_job"], final, 90, "scored")
        assert score.status == "succeeded", (score.error, log.read_text()[-3000:])
        explain = wait_for(sessions, score.outcome["explain_job"], final, 180, "explained")
        assert explain.status == "succeeded", (explain.error, log.read_text()[-3000:])
        assert explain.kind == "explanations" and explain.params == {"model_version": version_id, "top": TOP}
        assert explain.progress["fraction"] == 1.0 and explain.outcome["explained"] == TOP
        rows = stored_rows(sessions)
        assert {r.model_version_id for r in rows} == {version_key}
        assert all(r.created_by == f"job {explain.id}" for r in rows)
        assert all(r.settings == DEFAULT_SETTINGS[r.method.split(":")[1]] for r in rows)
        with sessions() as session:
            top = queue_top(session, version_key, TOP)
        # the queue's first pairs (its default order, by the predictions the scoring job stored), every kind
        assert complete_pairs(rows) == {pair: set(KINDS) for pair in top}

        # the same job again finds everything stored and computes nothing
        again = queue_explanations(sessions, version_id, TOP, "tester")
        job = wait_for(sessions, again, final, 60, "finished")
        assert job.status == "succeeded" and job.outcome["already_stored"] == TOP
        assert len(stored_rows(sessions)) == len(rows)

        # a cancel while it runs: it stops, and every pair it stored has all of its kinds
        everything = queue_explanations(sessions, version_id, 1000, "tester")
        wait_for(
            sessions,
            everything,
            lambda j: j.status == "running" and (j.progress or {}).get("step", 0) >= 3,
            60,
            "ran",
        )
        assert cancel(sessions, everything) == "running"
        job = wait_for(sessions, everything, final, 60, "stopped")
        assert job.status == "cancelled"
        pairs = complete_pairs(stored_rows(sessions))
        assert all(kinds == set(KINDS) for kinds in pairs.values()), pairs
        with sessions() as session:
            queue_length = len(queue_top(session, version_key, 1000))
        assert TOP <= len(pairs) < queue_length, "cancelled before the end of the queue"
        with sessions() as session:
            assert session.get(Job, everything).outcome is None
            assert session.scalar(select(ModelVersion.is_active).where(ModelVersion.id == version_key))
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_an_error_in_the_middle_of_a_pair_stores_nothing_of_that_pair(seeded_url, monkeypatch):
    """The explanation job fails on the second pair's visual attribution: the first pair keeps its three results,
    the second has none (its token result, already computed, is not written alone)."""
    from sqlalchemy import select

    import app.services.stored_explanations as results
    from app.services.paths import feature_cache_dir
    from db.schema import open_database
    from model.checkpoint import load_checkpoint

    engine, sessions = open_database(seeded_url)
    with sessions() as session:
        version = session.scalar(select(ModelVersion).where(ModelVersion.is_active))
        version_key, path = version.id, version.path
        top = results.queue_top(session, version_key, 3)
    real_compute = results.compute

    def failing_compute(kind, model, tokenizer, inputs, sessions_, pair_id, settings, cache_dir):
        if pair_id == top[1] and kind == "visual":
            raise RuntimeError("visual attribution broke")
        return real_compute(kind, model, tokenizer, inputs, sessions_, pair_id, settings, cache_dir)

    monkeypatch.setattr(results, "compute", failing_compute)
    model, tokenizer = load_checkpoint(path)
    with pytest.raises(RuntimeError, match="visual attribution broke"):
        results.explain_top_of_queue(sessions, model, tokenizer, version_key, 3, str(feature_cache_dir()))
    pairs = complete_pairs(stored_rows(sessions))
    engine.dispose()
    assert pairs == {top[0]: {"tokens", "visual", "reliance"}}


def test_the_jobs_page_names_the_explanation_job_and_counts_its_pairs(make_app, seeded_url):
    from app.jobs import enqueue
    from db.jobs import start_job
    from db.schema import open_database

    engine, sessions = open_database(seeded_url)
    job_id = enqueue(sessions, "explanations", "make app", {"model_version": "v", "top": 4})
    with sessions.begin() as session:
        start_job(session, job_id)
        session.get(Job, job_id).progress = {
            "fraction": 0.6,
            "step": 7,
            "steps": 12,
            "message": "explanations: 2/4 pairs done; pair 9: visual",
        }
    engine.dispose()
    at = make_app(seeded_url, "views/jobs.py")
    running = " ".join(m.value for m in at.markdown)
    assert f"Job {job_id}: precomputing Inspect's explanations for the top 4 pairs" in running
    (bar,) = at.get("progress")
    assert "explanations: 2/4 pairs done; pair 9: visual" in bar.proto.text, bar.proto.text
