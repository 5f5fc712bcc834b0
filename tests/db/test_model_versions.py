"""One frozen object per model version: its val figures and its training origin typed, whichever job wrote the
settings (a training job's "train"/"config_file" or a retraining's "options"/"mnre"/"train_records")."""

from __future__ import annotations

import dataclasses

import pytest

from db.errors import LabelStoreError
from db.jobs import create_job
from db.model_versions import (
    ModelVersionInfo,
    ValMetrics,
    active_model,
    find_model,
    model_or_none,
    registered_models,
    summarize_metrics,
)
from db.provenance import register_model_version, set_active

EVALUATION = {  # model.evaluate.compute_metrics' shape
    "accuracy": 0.8,
    "precision": 0.6,
    "recall": 0.5,
    "f1": 0.5454,
    "records": 40,
    "per_label": {
        "None": {"precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 20, "predicted": 20},
        "/per/per/peer": {"precision": 0.7, "recall": 0.6, "f1": 0.646, "support": 15, "predicted": 13},
        "/loc/loc/contain": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 5, "predicted": 0},
    },
    "confusion": [[1]],
    "labels": ["None"],
}
TRAINING_SETTINGS = {  # app.jobs.runner.run_training
    "kind": "default_model",
    "config_file": "configs/default.yaml",
    "dataset": "mnre",
    "train": {"data": "/data/mnre", "epochs": 6, "limit_train": None, "variant": "objects"},
    "history": [],
}
RETRAIN_SETTINGS = {  # app.services.retrain.retrain (+ "job" from db.jobs.link_model_version)
    "base": "v-base",
    "dataset": "mnre",
    "mnre": "/data/mnre",
    "epochs": 2,
    "train_records": 1200,
    "options": {"limit_train": 1500},
    "job": 7,
}


def test_summarize_metrics_keeps_the_figures_and_drops_the_confusion_matrix():
    summary = summarize_metrics(EVALUATION)
    assert set(summary) == {"accuracy", "precision", "recall", "f1", "records", "per_label"}
    assert summary["per_label"]["/per/per/peer"] == {
        "precision": 0.7,
        "recall": 0.6,
        "f1": 0.646,
        "support": 15,
    }
    val = ValMetrics.of(summary)
    assert (val.f1, val.precision, val.recall, val.records) == (0.5454, 0.6, 0.5, 40)
    assert val.label_f1("/per/per/peer") == 0.646 and val.label_f1("nope") is None
    assert val.unlearned_labels() == ["/loc/loc/contain"] and val.relations_with_support() == 2
    assert ValMetrics.of(None) is None and ValMetrics.of({}) is None


def test_both_settings_shapes_read_as_one_training_origin(sessions):
    with sessions.begin() as session:
        base = register_model_version(
            session,
            "v-base",
            "/ckpt/base",
            "objects",
            {"val": summarize_metrics(EVALUATION)},
            None,
            settings={**TRAINING_SETTINGS, "job": 3},
        )
        retrained = register_model_version(
            session,
            "v-new",
            "/ckpt/new",
            "objects",
            {"val": {"f1": 0.6}},
            "v-base",
            settings=RETRAIN_SETTINGS,
        )
        by_hand = register_model_version(session, "v-hand", "/ckpt/hand", "text_only")
        base_key, new_key = base.id, retrained.id
        set_active(session, "v-new")
        assert by_hand.id
    with sessions() as session:
        trained, new, hand = (find_model(session, v) for v in ("v-base", "v-new", "v-hand"))
        active = active_model(session)
    assert (trained.key, trained.folder, trained.active, trained.val_f1) == (
        base_key,
        "/ckpt/base",
        False,
        0.5454,
    )
    origin = trained.origin
    assert (origin.kind, origin.dataset, origin.data, origin.epochs, origin.job, origin.parent) == (
        "default_model",
        "mnre",
        "/data/mnre",
        6,
        3,
        None,
    )
    assert origin.config_file == "configs/default.yaml"
    assert origin.describe_data() == "mnre, full train split, 6 epoch(s)"
    assert (
        new.origin.kind,
        new.origin.parent,
        new.origin.records,
        new.origin.limit_train,
        new.origin.job,
    ) == (
        "retrain",
        "v-base",
        1200,
        1500,
        7,
    )
    assert new.origin.describe_data() == "mnre, 1200 records, 2 epoch(s)"
    assert active == new and active.key == new_key and active.active
    assert hand.val is None and hand.val_f1 is None and hand.origin.describe_data() == "not recorded"
    with pytest.raises(dataclasses.FrozenInstanceError):
        trained.active = True  # type: ignore[misc]


def test_lookups_and_the_listing_with_the_job_that_made_each_version(sessions):
    with sessions.begin() as session:
        job_id = create_job(session, "first_model", "make app").id
        register_model_version(
            session, "v1", "/a", "text_only", settings={"kind": "first_model", "job": job_id}
        )
        register_model_version(session, "v2", "/b", "objects")
    with sessions() as session:
        listed = registered_models(session)
        assert model_or_none(session, "nope") is None and active_model(session) is None
        with pytest.raises(LabelStoreError, match="'nope' is not registered"):
            find_model(session, "nope")
    assert [version.version_id for version in listed] == ["v2", "v1"]
    assert all(isinstance(version, ModelVersionInfo) for version in listed)
    assert (listed[1].origin.kind, listed[1].origin.job, listed[1].origin.started_by) == (
        "first_model",
        job_id,
        "make app",
    )
    assert listed[0].origin.started_by is None
