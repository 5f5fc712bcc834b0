"""Plausibility in the app: per post on Inspect beside faithfulness (the reviewer's rationale, else the dataset's
own), and per dataset as the Experiments page's `plausibility` job and `python -m app.plausibility`."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from app.services.plausibility import (
    attention_view_name,
    dataset_plausibility,
    map_plausibility,
    stored_results,
    table_rows,
    token_plausibility,
)
from app.services.rationales import Rationale
from db.models import Job
from db.schema import open_database
from tests.app.conftest import no_exceptions
from tests.app.test_inspect_stored import _store_results


def test_token_and_map_plausibility_have_known_answers():
    # words 0..4, entities at 0 and 4; pieces: [CLS] w0 w1 w1 w2 w3 w4 [SEP]
    word_index = [-1, 0, 1, 1, 2, 3, 4, -1]
    scores = [0, 9, 0.5, 0.5, 0.1, 0.2, 9, 0]  # word 1 scores 1.0, the highest candidate
    gold = Rationale(tokens=(1,))
    metrics = token_plausibility(scores, word_index, 5, [(0, 1), (4, 5)], gold)
    assert metrics == {"token_f1": 1.0, "iou_f1": 1.0, "auprc": 1.0}
    wrong = token_plausibility(scores, word_index, 5, [(0, 1), (4, 5)], Rationale(tokens=(3,)))
    assert wrong["token_f1"] == 0.0 and wrong["auprc"] == 0.5
    assert token_plausibility(scores, word_index, 5, [(0, 1), (4, 5)], Rationale(box=(0, 0, 1, 1))) is None
    heatmap = np.zeros((10, 20))
    heatmap[2, 15] = 1.0
    box = Rationale(box=(10.0, 0.0, 20.0, 5.0), image_size=(20, 10))
    assert map_plausibility(heatmap, box) == {"pointing_game": 1.0, "mass_in_box": 1.0}
    assert (
        map_plausibility(heatmap, Rationale(box=(0.0, 0.0, 5.0, 5.0), image_size=(20, 10)))["pointing_game"]
        == 0
    )
    assert map_plausibility(heatmap, Rationale(tokens=(1,))) is None
    assert attention_view_name(None, None, False) == "attention, mean of layers and heads"
    assert attention_view_name(2, 1, False) == "attention, layer 2, head 1"
    assert attention_view_name(None, 1, False) is None


def test_inspect_shows_plausibility_beside_faithfulness(make_app, seeded_url):
    from db.annotations import record_annotation
    from db.rationales import Rationale as StoreRationale
    from explain.plausibility import candidate_words, image_metrics, token_metrics, word_scores

    results = _store_results(seeded_url, 1)
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as s:
        from db.models import EntityPair, Post

        pair = s.get(EntityPair, 1)
        post = s.get(Post, pair.post_id)
        n_words = len(post.tokens)
        from PIL import Image

        with Image.open(post.image_path) as image:
            size = image.size
        spans = [(pair.head_start, pair.head_end), (pair.tail_start, pair.tail_end)]
        words = [w for w in range(n_words) if not any(a <= w < b for a, b in spans)][:2]
        rationale = StoreRationale(tuple(words), (0.0, 0.0, size[0] / 2, size[1] / 2), size)
        record_annotation(s, 1, status="accepted", annotator="ann", expected_revision=0, rationale=rationale)
    engine.dispose()
    at = make_app(seeded_url, "views/inspect.py")
    no_exceptions(at)
    metrics = {m.label: m.value for m in at.metric}
    assert "Tokens comprehensiveness" in metrics and "Image comprehensiveness" in metrics
    # the numbers the page shows are explain.plausibility's on the stored results
    attribution = results["tokens"][0]
    word_index = _word_index(seeded_url, 1)
    scores, seen = word_scores(attribution.scores, word_index, n_words)
    gold = np.zeros(n_words, dtype=bool)
    gold[words] = True
    expected = token_metrics(scores, gold, candidate_words(n_words, spans, seen))
    assert metrics["Tokens AUPRC"] == f"{expected['auprc']:.3f}"
    assert metrics["Tokens token F1"] == f"{expected['token_f1']:.3f}"
    assert {"Tokens token F1", "Tokens IOU F1", "Tokens AUPRC"} <= set(metrics)
    visual = results["visual"][0]
    expected = image_metrics(visual.heatmap(size), rationale.box)
    assert metrics["Image pointing game"] == f"{float(expected['pointing_game']):.3f}"
    assert metrics["Image mass in box"] == f"{expected['mass_in_box']:.3f}"
    assert "Attention pointing game" in metrics
    assert any("against the reviewer's rationale" in c.value for c in at.caption)


def _word_index(url: str, pair_id: int) -> list[int]:
    from app.services.paths import feature_cache_dir
    from app.services.stored_explanations import encode
    from db.models import ModelVersion
    from model.checkpoint import load_checkpoint

    engine, sessions = open_database(url)
    with sessions() as s:
        path = s.scalar(select(ModelVersion.path).where(ModelVersion.is_active))
    model, tokenizer = load_checkpoint(path)
    inputs = encode(model, tokenizer, sessions, pair_id, str(feature_cache_dir()))
    engine.dispose()
    return list(inputs.word_index)


def test_inspect_says_when_a_pair_has_no_rationale(make_app, seeded_url):
    from db.models import Rationale as RationaleRow

    engine, sessions = open_database(seeded_url)
    with sessions.begin() as s:
        for row in s.scalars(select(RationaleRow)):
            s.delete(row)
    engine.dispose()
    _store_results(seeded_url, 1)
    at = make_app(seeded_url, "views/inspect.py")
    no_exceptions(at)
    assert not [m for m in at.metric if "AUPRC" in m.label or "pointing" in m.label]
    assert any("has no rationale" in c.value for c in at.caption)


@pytest.fixture
def synthetic_val_sessions(seeded_url):
    engine, sessions = open_database(seeded_url)
    yield sessions
    engine.dispose()


def test_dataset_plausibility_scores_the_stored_rationales(synthetic_val_sessions, seeded_url):
    with synthetic_val_sessions() as s:
        version = s.scalar(select(__import__("db.models").models.ModelVersion.version_id))
    result = dataset_plausibility(synthetic_val_sessions, "synthetic", version, "val", limit=2, n_steps=4)
    assert result.n_with_rationale == 8  # the synthetic val pairs' own evidence (a box each)
    assert result.table["n_posts"] == 2 and result.model_version == version
    rows = {row["method"]: row for row in table_rows([result.to_json()])}
    ig = rows["visual IG"]
    assert ig["pointing_game"] is not None and ig["comprehensiveness"] is not None and ig["auprc"] is None
    assert rows["random map"]["comprehensiveness"] is None  # faithfulness only where it applies
    assert all(row["posts with rationales"] == 8 for row in rows.values())


def _version(url: str) -> str:
    engine, sessions = open_database(url)
    with sessions() as s:
        from db.models import ModelVersion

        version = s.scalar(select(ModelVersion.version_id))
    engine.dispose()
    return version


def test_the_cli_prints_and_stores_its_table_where_the_experiments_page_shows_it(
    seeded_url, monkeypatch, capsys, make_app
):
    from app.plausibility import main

    monkeypatch.setenv("DATABASE_URL", seeded_url)
    version = _version(seeded_url)
    args = ["--dataset", "synthetic", "--model", version, "--limit", "1", "--n-steps", "4", "--by", "Ann"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| visual IG |" in out and "comprehensiveness" in out and "1 of 8 pairs" in out
    engine, sessions = open_database(seeded_url)
    with sessions() as s:
        job = s.scalars(select(Job).where(Job.kind == "plausibility")).one()
        assert (job.status, job.started_by, job.params["via"]) == ("succeeded", "Ann", "cli"), job.error
        assert job.worker and job.started_at and job.finished_at and f"job {job.id}" in out
    (result,) = stored_results(sessions)
    assert (result["run_by"], result["how"], result["job"]) == ("Ann", "python -m app.plausibility", job.id)
    engine.dispose()
    at = make_app(seeded_url, "views/experiments.py")
    no_exceptions(at)
    table = next(d.value for d in at.dataframe if "pointing_game" in d.value.columns)
    assert set(table["how"]) == {"python -m app.plausibility"} and set(table["run by"]) == {"Ann"}
    assert table["finished"].notna().all()

    # a model that does not exist: an error, and the failed run is on record like a failed worker job
    assert main(["--dataset", "synthetic", "--model", "no-such-version"]) == 2
    assert "no-such-version" in capsys.readouterr().err
    engine, sessions = open_database(seeded_url)
    with sessions() as s:
        statuses = sorted(s.scalars(select(Job.status).where(Job.kind == "plausibility")))
    assert statuses == ["failed", "succeeded"] and len(stored_results(sessions)) == 1
    engine.dispose()


def test_the_job_reports_progress_per_method_and_version(synthetic_val_sessions, seeded_url):
    """The runner's progress callback (app.jobs.runner.Reporter, which the Jobs page's bar and ETA read) is called
    as each method starts on each post, naming the method and the model version; the fraction only grows."""
    from app.jobs.runner import JobRequest, run_plausibility

    calls = []

    class Recorder:
        def __call__(self, fraction, message=""):
            calls.append((fraction, message))

        def log(self, line):
            pass

    version = _version(seeded_url)
    params = {"dataset": "synthetic", "model_version": version, "split": "val", "limit": 2, "n_steps": 4}
    outcome = run_plausibility(synthetic_val_sessions, JobRequest(1, "plausibility", params, "t"), Recorder())
    assert outcome["table"]["n_posts"] == 2
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(set(fractions)) >= 6
    messages = [m for _, m in calls]
    assert all(m.startswith(f"{version}: ") for m in messages)
    for post in (1, 2):
        for method in ("attention", "occlusion", "visual IG"):
            assert f"{version}: post {post}/2: {method}" in messages


def test_experiments_page_queues_the_job_and_shows_its_table(make_app, seeded_url):
    from app.jobs.runner import execute_job

    at = make_app(seeded_url, "views/experiments.py")
    no_exceptions(at)
    at.number_input(key="experiments_plaus_limit").set_value(1).run()
    at.button(key="experiments_run_plausibility").click().run()
    no_exceptions(at)
    engine, sessions = open_database(seeded_url)
    with sessions() as s:
        job = s.scalars(select(Job).where(Job.kind == "plausibility")).one()
        job_id, params = job.id, job.params
    assert params["dataset"] == "synthetic" and params["limit"] == 1
    with sessions.begin() as s:
        s.get(Job, job_id).params = {**params, "n_steps": 4}
    execute_job(job_id, sessions)
    with sessions() as s:
        job = s.get(Job, job_id)
        assert job.status == "succeeded", job.error
    assert len(stored_results(sessions)) == 1
    engine.dispose()
    at.run()
    no_exceptions(at)
    table = next(d.value for d in at.dataframe if "pointing_game" in d.value.columns)
    assert {"comprehensiveness", "sufficiency", "posts with rationales", "model_version"} <= set(
        table.columns
    )
    assert "visual IG" in set(table["method"])
