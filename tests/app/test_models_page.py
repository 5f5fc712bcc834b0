"""Models page: trainings are queued from the page (also before any version exists, never twice), every activation
goes through app.services.model_jobs.activate (re-scoring and explanation precompute queued), and a per-label F1 that a
version did not store is shown as missing, not as 0."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from db.io import import_mnre
from db.models import Job, ModelVersion
from db.provenance import register_model_version
from db.schema import open_database
from tests.app.conftest import REVIEWER, no_exceptions


@pytest.fixture
def default_configs(monkeypatch):
    """The configs a plain `make app` uses (the tests elsewhere point them at tiny ones)."""
    for variable in ("MRELENS_FIRST_MODEL_CONFIG", "MRELENS_DEFAULT_MODEL_CONFIG"):
        monkeypatch.delenv(variable, raising=False)


def jobs(url: str) -> list[Job]:
    engine, sessions = open_database(url)
    try:
        with sessions() as session:
            rows = session.scalars(select(Job).order_by(Job.id)).all()
            session.expunge_all()
            return rows
    finally:
        engine.dispose()


def test_an_empty_store_can_queue_the_first_model_and_the_default_recipe_once(
    make_app, empty_url, tmp_path, default_configs
):
    from model.synthetic import generate

    data = generate(tmp_path / "synthetic", {"train": 8, "val": 4}, images_per_label=1, seed=0)
    engine, sessions = open_database(empty_url)
    with sessions.begin() as session:
        import_mnre(session, data, dataset="synthetic")
    engine.dispose()

    at = make_app(empty_url, "views/models.py")
    no_exceptions(at)
    assert any("No model is registered yet" in info.value for info in at.info)
    at.button(key="models_queue_first_model").click().run()
    no_exceptions(at)
    at.button(key="models_queue_default_model").click().run()
    no_exceptions(at)
    (first, default) = jobs(empty_url)
    assert (first.kind, default.kind) == ("first_model", "default_model")
    assert first.status == default.status == "queued" and first.started_by == REVIEWER
    assert first.params["data"] == str(data) and first.params["dataset"] == "synthetic"
    # the synthetic demo set is decided by the image: both trainings are of the objects variant
    assert Path(first.params["config"]).name == "synthetic_first_model.yaml"
    assert Path(default.params["config"]).name == "synthetic_default.yaml"

    # a second click while the first is still queued: refused with a message, no second job
    at.button(key="models_queue_first_model").click().run()
    no_exceptions(at)
    assert len(jobs(empty_url)) == 2
    assert any(f"already queued (job {first.id})" in error.value for error in at.error)


def test_make_active_queues_the_same_follow_ups_as_a_job_activation(
    make_app, seeded_url, tiny_checkpoint, tmp_path
):
    from app.services.model_jobs import explain_limit

    other = tmp_path / "other"
    shutil.copytree(tiny_checkpoint, other)
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        register_model_version(session, "v-other", other, "objects")
    engine.dispose()
    at = make_app(seeded_url, "views/models.py")
    at.selectbox(key="models_pick").set_value("v-other").run()
    at.button(key="models_activate").click().run()
    no_exceptions(at)
    (score,) = jobs(seeded_url)
    # re-scoring, then the precompute of Inspect's explanations for the queue's top (app.jobs.runner.run_score)
    assert score.kind == "score" and score.params == {
        "model_version": "v-other",
        "then_explain": explain_limit(),
    }
    engine, sessions = open_database(seeded_url)
    with sessions() as session:
        assert session.scalar(select(ModelVersion.version_id).where(ModelVersion.is_active)) == "v-other"
    engine.dispose()


def test_compare_shows_a_label_a_version_did_not_store_as_missing(
    make_app, seeded_url, tiny_checkpoint, tmp_path
):
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        for name, per_label in (
            ("v-before", {"/per/per/peer": {"f1": 0.5}}),
            ("v-after", {"/per/per/peer": {"f1": 0.75}, "/per/loc/place_of_residence": {"f1": 0.25}}),
        ):
            folder = tmp_path / name
            shutil.copytree(tiny_checkpoint, folder)
            register_model_version(
                session, name, folder, "objects", metrics={"val": {"f1": 0.6, "per_label": per_label}}
            )
    engine.dispose()
    at = make_app(seeded_url, "views/models.py")
    at.selectbox(key="models_compare_a").set_value("v-before").run()
    at.selectbox(key="models_compare_b").set_value("v-after").run()
    no_exceptions(at)
    table = next(frame.value for frame in at.dataframe if "change" in frame.value.columns).set_index("label")
    assert table.loc["/per/per/peer", "change"] == pytest.approx(25.0)
    missing = table.loc["/per/loc/place_of_residence"]
    assert math.isnan(missing["F1 before"]) and math.isnan(missing["change"])
    assert missing["F1 after"] == pytest.approx(25.0)


def test_make_active_says_what_it_did_after_the_page_redraws(make_app, seeded_url, tiny_checkpoint, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_checkpoint, other)
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        register_model_version(session, "v-other", other, "objects")
    engine.dispose()
    at = make_app(seeded_url, "views/models.py")
    at.selectbox(key="models_pick").set_value("v-other").run()
    at.button(key="models_activate").click().run()
    no_exceptions(at)
    (score,) = jobs(seeded_url)
    assert any(
        f"v-other is now the active model; job {score.id} stores its predictions" in s.value
        for s in at.success
    ), [s.value for s in at.success]
    at.run()  # said once, not on every later run
    assert not any("is now the active model" in s.value for s in at.success)


def test_compare_says_a_version_is_still_scoring_instead_of_changed_on_0(
    make_app, seeded_url, tiny_checkpoint, tmp_path
):
    from app.jobs import enqueue

    other = tmp_path / "other"
    shutil.copytree(tiny_checkpoint, other)
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        register_model_version(session, "v-new", other, "objects")
        old = session.scalar(select(ModelVersion.version_id).where(ModelVersion.is_active))
    enqueue(sessions, "score", "ann", {"model_version": "v-new"})
    engine.dispose()
    at = make_app(seeded_url, "views/models.py")
    at.selectbox(key="models_compare_a").set_value(old).run()
    at.selectbox(key="models_compare_b").set_value("v-new").run()
    no_exceptions(at)
    texts = [c.value for c in at.caption] + [i.value for i in at.info]
    assert not any("changed on 0" in text for text in texts), texts
    assert any("v-new has not scored val yet" in text for text in texts), texts


def test_compare_leaves_a_label_without_val_records_blank_and_lists_it_last():
    """On the synthetic set 19 of 23 labels have no val record: their stored F1 0.0 filled the top of the
    comparison with '0.0 -> 0.0 (+0.0)' rows that read as 'both fail on it'."""
    from app.services.model_catalog import label_f1_rows
    from db.model_versions import ModelVersionInfo, TrainingOrigin, ValMetrics

    def version(per_label: dict) -> ModelVersionInfo:
        return ModelVersionInfo(
            key=1,
            version_id="v",
            folder="/v",
            architecture="ifaformer",
            variant="objects",
            text_encoder=None,
            active=True,
            val=ValMetrics.of({"f1": 0.9, "per_label": per_label}),
            val_before=None,
            origin=TrainingOrigin.of({}),
            created_by=None,
            created_at=None,
        )

    before = version({"/a/none": {"f1": 0.0, "support": 0}, "/z/peer": {"f1": 0.5, "support": 50}})
    after = version({"/a/none": {"f1": 0.0, "support": 0}, "/z/peer": {"f1": 0.75, "support": 50}})
    rows = label_f1_rows(before, after)
    assert [row["label"] for row in rows] == ["/z/peer", "/a/none", "micro (non-None)"]
    assert rows[0]["F1 before"] == pytest.approx(50.0) and rows[0]["F1 after"] == pytest.approx(75.0)
    assert rows[1]["F1 before"] is None and rows[1]["F1 after"] is None
