"""Experiments page: a retraining's before/after evaluations stay out of the paper's tables, and the progress of an
experiment job re-reads itself (an st.fragment with run_every) while the job is queued or running."""

from __future__ import annotations

import shutil

import pytest
import streamlit
from sqlalchemy import select

from app.services.store import evaluation_run_rows
from db.jobs import create_job, report_progress, start_job
from db.models import ModelVersion
from db.provenance import register_model_version, save_evaluation_run
from db.schema import open_database
from explain.tables import RETRAIN_BASELINE, RETRAIN_RESULT, ablation_table, shuffle_table
from tests.app.conftest import no_exceptions


def scores(f1: float) -> dict:
    return {"accuracy": f1, "precision": f1, "recall": f1, "f1": f1}


def add_retraining(url: str, checkpoint, tmp_path) -> None:
    """What app.services.retrain stores: the base's evaluation and the fine-tuned child's, both of the objects variant."""
    engine, sessions = open_database(url)
    folder = tmp_path / "retrained"
    shutil.copytree(checkpoint, folder)
    with sessions.begin() as session:
        base = session.scalars(select(ModelVersion)).one()
        child = register_model_version(
            session, "v-retrained", folder, "objects", parent_version_id=base.version_id
        )
        save_evaluation_run(
            session, "objects", "standard", "val", scores(0.5), base.id, {"purpose": RETRAIN_BASELINE}
        )
        save_evaluation_run(
            session, "objects", "standard", "val", scores(0.95), child.id, {"purpose": RETRAIN_RESULT}
        )
    engine.dispose()


def test_a_retrainings_evaluations_stay_out_of_table_1_and_table_2(
    make_app, seeded_url, tiny_checkpoint, tmp_path
):
    add_retraining(seeded_url, tiny_checkpoint, tmp_path)
    engine, sessions = open_database(seeded_url)
    with sessions() as session:
        runs = evaluation_run_rows(session)
    engine.dispose()
    assert len(runs) == 4  # stored, only not tabled
    (row,) = ablation_table(runs)
    # the seeded experiment run alone: not averaged with the base's retrain baseline (0.5), and the fine-tuned
    # child (0.95) does not become a second objects row, nor the full model others are compared with
    assert row["f1"] == pytest.approx(0.8) and row["n_runs"] == 1 and row["model"] != "v-retrained"
    assert [r["model"] for r in shuffle_table(runs)] == [row["model"]]

    at = make_app(seeded_url, "views/experiments.py")
    no_exceptions(at)
    table_2 = at.dataframe[1].value
    assert list(table_2["model"]) == [row["model"]] and table_2["f1"].iloc[0] == pytest.approx(80.0)


def test_experiment_progress_refreshes_itself_while_a_job_is_pending(make_app, seeded_url, monkeypatch):
    intervals = []
    real_fragment = streamlit.fragment

    def recording_fragment(func=None, *, run_every=None, **kwargs):
        intervals.append(run_every)
        return real_fragment(func, run_every=run_every, **kwargs)

    monkeypatch.setattr(streamlit, "fragment", recording_fragment)
    at = make_app(seeded_url, "views/experiments.py")
    no_exceptions(at)
    assert intervals and intervals[-1] is None  # nothing queued: no timer

    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        job_id = create_job(session, "ablation", "tester", {"data": "x"}).id
    at.run()
    no_exceptions(at)
    assert intervals[-1] and intervals[-1] > 0
    assert any(f"Job {job_id}: Table 2 (ablation) queued" in p.proto.text for p in at.get("progress"))

    with sessions.begin() as session:
        start_job(session, job_id, worker="elsewhere:1")
        report_progress(session, job_id, {"fraction": 0.5, "part": 2, "parts": 4, "epoch": 1, "epochs": 1})
    at.run()
    no_exceptions(at)
    assert intervals[-1] and intervals[-1] > 0
    assert any("training 2/4, epoch 1/1" in p.proto.text for p in at.get("progress"))
    engine.dispose()


def test_every_metric_in_percent_says_so_in_its_header(make_app, seeded_url):
    import json

    at = make_app(seeded_url, "views/experiments.py")
    no_exceptions(at)
    configs = [json.loads(frame.proto.columns) for frame in at.dataframe]
    for table, metrics in (
        ("Table 1", ["standard_f1", "shuffle_test_f1", "f1_drop_shuffle_test"]),
        ("Table 2", ["accuracy", "f1", "f1_std", "f1_vs_full", "paper_f1"]),
    ):
        config = next(c for c in configs if metrics[0] in c)
        shown = {column: config.get(column, {}).get("label") for column in metrics}
        assert all(label == f"{column} %" for column, label in shown.items()), (table, shown)
