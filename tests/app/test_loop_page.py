"""The Loop page and its service: review activity, what the review found, the app's own learning curve beside the
benchmark's measured one, the gain it predicts, and the retraining schedule."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.services.loop_report import (
    MeasuredCurve,
    estimate_gain,
    learning_curve_figure,
    loop_report,
    measured_curve,
)
from db.annotations import record_annotation
from db.loop import retrain_schedule
from db.models import EntityPair
from db.provenance import register_model_version
from db.schema import open_database
from tests.app.conftest import no_exceptions

LOOP = "views/loop.py"


def benchmark_file(path):
    path.write_text(
        json.dumps(
            {
                "mnre": {
                    "winner": "margin",
                    "strategies": {
                        "margin": {
                            "labels": [500, 750, 1000],
                            "mean_f1": [0.30, 0.36, 0.40],
                            "seeds": [1, 2, 3],
                        }
                    },
                }
            }
        )
    )
    return path


def review_some(url, n=3):
    engine, sessions = open_database(url)
    with sessions.begin() as session:
        pairs = list(session.scalars(select(EntityPair).order_by(EntityPair.id)))[:n]
        for k, pair in enumerate(pairs):
            other = "None" if pair.gold_label != "None" else "/per/per/peer"
            status, label = ("corrected", other) if k == 0 else ("accepted", None)
            record_annotation(
                session, pair.id, status=status, annotator=f"rev{k % 2}", expected_revision=0, label=label
            )
        # a retraining registered after the decisions: a point of the app's own learning curve
        register_model_version(
            session,
            "retrained-1",
            "/models/retrained-1",
            "ifaformer",
            metrics={"val": {"f1": 0.42, "precision": 0.4, "recall": 0.44}},
            settings={"base": "x", "dataset": "synthetic", "train_records": 16},
        )
    return engine, sessions


def test_the_loop_page_shows_activity_findings_curve_and_gain(make_app, seeded_url, tmp_path, monkeypatch):
    monkeypatch.setattr("app.services.loop_report.BENCHMARK", benchmark_file(tmp_path / "loop.json"))
    engine, sessions = review_some(seeded_url)
    engine.dispose()
    at = make_app(seeded_url, LOOP)
    no_exceptions(at)
    findings = at.dataframe[0].value
    assert list(findings["share"]) == ["33.3 % (1 of 3)", findings["share"][1]]
    charts = at.get("plotly_chart")
    # the learning curve (the benchmark's figure of every order is in a collapsed expander, drawn too)
    assert len(charts) == 3
    curve = json.loads(charts[1].proto.spec)["data"]
    assert curve[0]["x"] == [3] and curve[0]["y"] == [
        42.0
    ]  # the retrained version, 3 reviewed labels before it
    assert curve[1]["x"] == [500, 750, 1000]
    # the seeded active model was registered before any decision: 3 new decisions, extrapolated from the last step
    (metric,) = at.metric
    assert "3 new decision(s)" in metric.label and metric.value == "+0.05 points"


def test_an_admin_turns_the_schedule_on_and_off(make_app, seeded_url):
    at = make_app(seeded_url, LOOP)
    at.number_input(key="loop_every").set_value(200)
    at.number_input(key="loop_epochs").set_value(2)
    at.button[0].click().run()
    no_exceptions(at)
    assert any("every 200 new decisions" in s.value for s in at.success)
    engine, sessions = open_database(seeded_url)
    with sessions() as session:
        schedule = retrain_schedule(session, "synthetic")
    assert (schedule.every, schedule.epochs, schedule.set_by) == (200, 2, "tester")
    at.number_input(key="loop_every").set_value(0)
    at.button[0].click().run()
    with sessions() as session:
        assert retrain_schedule(session, "synthetic").every is None
    engine.dispose()


def test_the_gain_is_read_off_the_curve_or_extrapolated_and_said_so():
    measured = MeasuredCurve("mnre", "margin", [500, 750, 1000], [0.30, 0.36, 0.40], 3)
    inside = estimate_gain(measured, 600, 900)
    assert inside.points == pytest.approx(
        (0.36 + 0.4 * (150 / 250) - 0.36 * (150 / 250)) - (0.30 + 0.06 * 0.4)
    )
    assert "between 600 and 900" in inside.how
    outside = estimate_gain(measured, 20000, 20100)
    assert outside.new_decisions == 100 and outside.points == pytest.approx(0.04 / 250 * 100)
    assert "extrapolation" in outside.how


def test_the_benchmark_curve_alone_is_named_in_a_legend():
    """Before any model version of the dataset has a val F1, the chart holds the benchmark's curve only: Plotly hides
    the legend of a one-trace figure, and the dotted curve read as this dataset's own learning curve."""
    measured = MeasuredCurve("mnre", "margin", [500, 750, 1000], [0.30, 0.36, 0.40], 3)
    figure = learning_curve_figure([], measured)
    assert [trace.name for trace in figure.data] == ["benchmark: margin order on mnre (3 seeds)"]
    assert figure.layout.showlegend is True


def test_the_loop_opens_on_the_dataset_the_active_model_learned(make_app, seeded_url):
    """After Add post, its one-post dataset came first by name and the page opened on it: no decisions, no curve."""
    from db.datasets import get_or_create_dataset
    from db.provenance import set_active

    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        get_or_create_dataset(session, "added")  # as Add post's posts: before "synthetic" by name
        register_model_version(
            session,
            "v1",
            "/models/v1",
            "objects",
            metrics={"val": {"f1": 0.9}},
            settings={"dataset": "synthetic"},
        )
        set_active(session, "v1")
    engine.dispose()
    at = make_app(seeded_url, LOOP)
    no_exceptions(at)
    picker = at.selectbox(key="loop_dataset")
    assert picker.value == "synthetic" and sorted(picker.options) == ["added", "synthetic"], picker.options


def test_a_malformed_benchmark_file_is_named(tmp_path):
    bad = tmp_path / "loop.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="loop.json"):
        measured_curve(bad)
    bad.write_text(json.dumps({"mnre": {"winner": "margin", "strategies": {"margin": {"labels": ["x"]}}}}))
    with pytest.raises(ValueError, match="loop.json"):
        measured_curve(bad)
    assert measured_curve(tmp_path / "missing.json") is None
    benchmark_file(bad)
    assert (
        measured_curve(bad, dataset="synthetic") is None and measured_curve(bad, strategy="entropy") is None
    )
    assert measured_curve(bad).labels == [500, 750, 1000]


def test_loop_report_without_decisions_or_models(tmp_path):
    from db.io import import_mnre
    from tests.text_decided_data import write_text_decided

    data = write_text_decided(tmp_path / "data", n_train=5, n_val=2)
    engine, sessions = open_database(f"sqlite:///{tmp_path / 's.db'}")
    with sessions.begin() as session:
        import_mnre(session, data, dataset="d")
    report = loop_report(sessions, "d", benchmark=tmp_path / "none.json")
    assert report.decisions == [] and report.curve == [] and report.gain is None and report.measured is None
    assert report.outcomes.correction_share is None
    engine.dispose()
