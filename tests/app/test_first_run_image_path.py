"""The image path of a first run on the synthetic set: `make app`'s launcher (app.services.model_jobs.
queue_default_jobs) picks the data's recipe, objects, since every synthetic post has its image; the worker's jobs
(run here in-process, in the order the worker takes them) train, activate and score that model and precompute the
top of the queue; Inspect then draws token-object attention, the visual attribution and the image reliance of an
image-using model from the label store, and the Queue shows that version's image reliance.

The synthetic set's own configs are swapped for a tiny one that names no variant (so the variant is the recipe's,
as with configs/synthetic_first_model.yaml) and trains in seconds."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from db.models import Job
from db.schema import open_database
from tests.app.conftest import TINY_VISION, no_exceptions


@pytest.fixture
def first_run(tmp_path, tiny_text_encoder, app_feature_cache, monkeypatch):
    from app.services import model_jobs
    from db.io import import_mnre
    from model.synthetic import generate

    data = generate(tmp_path / "synthetic", {"train": 32, "val": 16}, images_per_label=1, seed=0)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    for key, value in {
        "DATABASE_URL": url,
        "MRELENS_RUNS_DIR": str(tmp_path / "runs"),
        "MRELENS_EXPLAIN_LIMIT": "2",
        "TORCH_NUM_THREADS": "1",
    }.items():
        monkeypatch.setenv(key, value)
    for variable in ("MRELENS_FIRST_MODEL_CONFIG", "MRELENS_DEFAULT_MODEL_CONFIG"):
        monkeypatch.delenv(variable, raising=False)
    config = tmp_path / "tiny_synthetic.yaml"  # no variant: the recipe's is set over it
    config.write_text(
        f"text_encoder: {tiny_text_encoder}\nepochs: 1\nbatch_size: 8\nlr: 2.0e-3\nmax_length: 32\nseed: 0\n"
        f"vision_config: {json.dumps(TINY_VISION)}\n"
    )
    for kind in ("first_model", "default_model"):
        monkeypatch.setitem(model_jobs.SYNTHETIC_CONFIGS, kind, config)
    engine, sessions = open_database(url)
    with sessions.begin() as session:
        import_mnre(session, data, dataset=model_jobs.SYNTHETIC_DATASET)
    yield url, sessions, data
    engine.dispose()


def run_queued_jobs(sessions, skip: set[int]) -> list[tuple[str, str]]:
    """Run every queued job but `skip`, highest priority first (as the worker takes them), until none is left."""
    from app.jobs.runner import execute_job
    from db.jobs import pending_jobs

    ran = []
    while True:
        with sessions() as session:
            todo = [(job.id, job.kind) for job in pending_jobs(session) if job.id not in skip]
        if not todo:
            return ran
        job_id, kind = todo[0]
        ran.append((kind, execute_job(job_id, sessions)))


def test_a_first_run_on_the_synthetic_set_explains_through_the_image(first_run, make_app):
    from app.services.model_jobs import LAUNCHER, queue_default_jobs
    from app.services.store import active_version

    url, sessions, data = first_run
    first, default = queue_default_jobs(sessions, data, "synthetic")
    with sessions() as session:
        params = session.get(Job, first).params
    assert params["variant"] == "objects" and params["variant_from"].startswith(
        "the data: 48 of 48 posts have an image"
    ), params
    # the default recipe is the same training, only longer: left queued here
    ran = run_queued_jobs(sessions, skip={default})
    assert ran == [("first_model", "succeeded"), ("score", "succeeded"), ("explanations", "succeeded")], ran
    version = active_version(sessions)
    assert version is not None and version.variant == "objects"
    with sessions() as session:
        explain_job = session.scalars(select(Job).where(Job.kind == "explanations")).one()
        assert explain_job.started_by.startswith("job ") and explain_job.outcome, explain_job.outcome

    # Queue: that version's image reliance is shown for the pairs the precompute explained
    at = make_app(url)
    at.toggle(key="queue_more_columns").set_value(True).run()
    no_exceptions(at)
    table = at.dataframe(key="queue_table").value
    reliance = dict(zip(table["pair"], table["image reliance"], strict=True))
    explained = [pair for pair, value in reliance.items() if value == value and value is not None]
    assert len(explained) == 2, reliance
    warnings = " ".join(w.value for w in at.warning)
    assert "no pair shown has one" not in warnings, warnings

    # Inspect on an explained pair: every panel of an image-using model, read from the label store
    at = make_app(url, "views/inspect.py", reviewer=LAUNCHER)
    at.number_input(key="inspect_pair").set_value(int(explained[0])).run()
    no_exceptions(at)
    infos = " ".join(i.value for i in at.info)
    assert "No text-to-image attention" not in infos and "No visual attribution" not in infos, infos
    assert "Reliance is 0 by definition" not in infos, infos
    traces = [[trace["type"] for trace in json.loads(c.proto.spec)["data"]] for c in at.get("plotly_chart")]
    assert ["heatmap"] in traces, f"no token-object attention heat map among {traces}"
    metrics = {m.label for m in at.metric}
    assert {"Tokens comprehensiveness", "Image comprehensiveness", "Reliance score"} <= metrics, metrics
    stored = [c.value for c in at.caption if c.value.startswith("Read from the label store")]
    assert len(stored) == 3, "tokens, visual and reliance read from the store, none computed by the page"
