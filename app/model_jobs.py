"""The one path to a model: queue a training job and activate a model version.

    queue_training(sessions, kind, root, dataset, started_by)   first_model / default_model as a worker job
    activate(sessions, version_id, started_by)                  make a version active and queue its follow-ups

`make app` (app.launch), `python -m app.prepare` and the Models page queue trainings through queue_training; the
Models page's "Make active" and the jobs' automatic activation (app.jobs.runner.activate_if_better) go through
activate, so every activation re-scores the queue and then precomputes Inspect's explanations for its top.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy.orm import sessionmaker

from app.paths import REPO_ROOT
from db.errors import LabelStoreError
from db.job_kinds import KINDS
from db.jobs import ACTIVE_STATUSES, latest_job
from db.roles import Actor

SYNTHETIC_DATASET = "synthetic"  # the name app.prepare.data_source imports the synthetic demo set under
# The synthetic demo set decides each label by the image alone: a text-only model stays at chance (25 %) there,
# so without MNRE both trainings are of the objects variant (README: "Does the model use the image?").
SYNTHETIC_CONFIGS = {
    "first_model": REPO_ROOT / "configs" / "synthetic_first_model.yaml",
    "default_model": REPO_ROOT / "configs" / "synthetic_default.yaml",
}
# the trainings queued from a config file (first_model, default_model), by their names in db.job_kinds
TRAINING_NAMES = {kind: KINDS[kind].display for kind in ("first_model", "default_model")}


class TrainingAlreadyQueued(LabelStoreError):
    """A training of the same kind is queued or running: a second one would only repeat it."""


def training_config_file(kind: str, dataset: str) -> Path:
    """The config a first_model / default_model job trains with: $MRELENS_FIRST_MODEL_CONFIG /
    $MRELENS_DEFAULT_MODEL_CONFIG when set, else the synthetic configs on the synthetic demo set, else
    configs/first_model.yaml / configs/default.yaml."""
    from app.jobs.runner import CONFIGS, config_path

    variable, _ = CONFIGS[kind]
    if dataset == SYNTHETIC_DATASET and not os.environ.get(variable):
        return SYNTHETIC_CONFIGS[kind]
    return config_path(kind)


def queue_training(
    sessions: sessionmaker,
    kind: str,
    root: str | Path,
    dataset: str,
    started_by: str,
    actor: Actor | None = None,
) -> int:
    """Queue a first_model or default_model job on the dataset at `root`; returns its id.

    Refused (TrainingAlreadyQueued) while a job of the same kind is queued or running; admins only (db.roles).
    """
    from app.jobs import enqueue

    if kind not in TRAINING_NAMES:
        raise LabelStoreError(f"unknown training {kind!r}; expected one of {', '.join(TRAINING_NAMES)}")
    with sessions() as session:
        pending = latest_job(session, (kind,), ACTIVE_STATUSES)
        pending = (pending.id, pending.status) if pending else None
    if pending is not None:
        raise TrainingAlreadyQueued(
            f"{TRAINING_NAMES[kind]} is already {pending[1]} (job {pending[0]}); follow it on the Jobs page "
            "or cancel it there before starting another"
        )
    config = training_config_file(kind, dataset)
    params = {"data": str(root), "dataset": dataset, "config": str(config)}
    return enqueue(sessions, kind, started_by, params, actor=actor)


def activate(
    sessions: sessionmaker, version_id: str, started_by: str, actor: Actor | None = None
) -> dict[str, Any]:
    """Make `version_id` the active model (admins only) and queue its follow-ups: a scoring job that stores its
    predictions for the queue and then queues the precompute of Inspect's explanations for the queue's top.
    Returns {"score_job": id}."""
    from app.jobs import enqueue
    from app.jobs.runner import explain_limit
    from db.provenance import set_active

    with sessions.begin() as session:
        set_active(session, version_id, actor=actor)
    params = {"model_version": version_id, "then_explain": explain_limit()}
    return {"score_job": enqueue(sessions, "score", started_by, params)}
