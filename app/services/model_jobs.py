"""The one path to a model: the training configs, queue a training job, activate a model version.

    default_recipe(session, dataset) -> Recipe                  the variant the data call for: objects or text_only
    queue_training(sessions, kind, root, dataset, started_by)   first_model / default_model as a worker job, of the
                                                                data's variant or any of VARIANTS
    queue_default_jobs(sessions, root, dataset)                 what `make app` queues where it is missing
    activate(sessions, version_id, started_by)                  make a version active and queue its follow-ups
    queue_explanations(sessions, version_id, n, started_by)     Inspect's results for the queue's top, as a job
    training_config(path, data, output_dir)                     the TrainConfig a training job runs

`make app` (app.launch), `python -m app.prepare` and the Models page queue trainings through queue_training; the
Models page's "Make active" and the jobs' automatic activation (app.jobs.runner.activate_if_better) go through
activate, so every activation re-scores the queue and then precomputes Inspect's explanations for its top. The
runners (app.jobs.runner, app.jobs.crossfit) import from here, never the other way.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy.orm import sessionmaker

from app.services.paths import REPO_ROOT, feature_cache_dir
from db.errors import LabelStoreError
from db.job_kinds import KINDS
from db.jobs import ACTIVE_STATUSES, latest_job
from db.roles import Actor

LAUNCHER = "make app"  # who the jobs queued by `make app` and app.services.prepare are started by
# pairs a scoring job stores (val first, then test, new, train); MRELENS_SCORE_LIMIT
DEFAULT_SCORE_LIMIT = 4000
# pairs at the top of the queue whose Inspect results are precomputed after each activation; MRELENS_EXPLAIN_LIMIT
DEFAULT_EXPLAIN_LIMIT = 50
CONFIGS = {
    "first_model": ("MRELENS_FIRST_MODEL_CONFIG", REPO_ROOT / "configs" / "first_model.yaml"),
    "default_model": ("MRELENS_DEFAULT_MODEL_CONFIG", REPO_ROOT / "configs" / "default.yaml"),
}
SYNTHETIC_DATASET = (
    "synthetic"  # the name app.services.prepare.data_source imports the synthetic demo set under
)
# The synthetic demo set's own settings (its posts are short: 32 word pieces); the variant is the data's, like on
# any dataset (default_recipe): objects, since every synthetic post has its image.
SYNTHETIC_CONFIGS = {
    "first_model": REPO_ROOT / "configs" / "synthetic_first_model.yaml",
    "default_model": REPO_ROOT / "configs" / "synthetic_default.yaml",
}
# the trainings queued from a config file (first_model, default_model), by their names in db.job_kinds
TRAINING_NAMES = {kind: KINDS[kind].display for kind in ("first_model", "default_model")}
# What a training of each variant changes in its config file: the Models page trains any of them. MEGA is an
# architecture of its own (model.mega: scene-graph alignment over the same EfficientNet regions and crops).
VARIANTS = {
    "text_only": {"variant": "text_only"},
    "vanilla": {"variant": "vanilla"},
    "objects": {"variant": "objects"},
    "mega": {"architecture": "mega"},
}
# More than this share of a dataset's posts with an image: its default recipe is the paper's objects model (global
# image + up to 3 object crops); otherwise text_only, which on MNRE here (49 of 12,247 train posts with their image)
# is the better model: an image model would be a text model on almost every post.
IMAGE_MAJORITY = 0.5
PICKED = "picked on the Models page"  # a training's variant_from when a reviewer chose its variant


def variant_origin(variant_from: str | None) -> str:
    """How a training's variant was chosen, for its log line: "chosen by the data: 34 of 8,287 posts have an image"
    or "picked on the Models page" ("" when the job does not say)."""
    if not variant_from:
        return ""
    return variant_from if variant_from == PICKED else f"chosen by {variant_from}"


@dataclass(frozen=True)
class Recipe:
    """The variant a dataset's trainings default to, and the count it was chosen from."""

    variant: str  # "objects" or "text_only"
    with_image: int  # posts of the dataset with an image
    posts: int

    @property
    def why(self) -> str:
        """ "600 of 600 posts have an image" (for the Models page and the launcher's log)."""
        return f"{self.with_image:,} of {self.posts:,} posts have an image"


def default_recipe(session, dataset: str) -> Recipe:
    """objects when most posts of `dataset` have an image (db.datasets.image_counts), else text_only."""
    from db.datasets import image_counts

    with_image, posts = image_counts(session, dataset)
    reads_image = posts > 0 and with_image / posts > IMAGE_MAJORITY
    return Recipe("objects" if reads_image else "text_only", with_image, posts)


def recipe_for(sessions: sessionmaker, dataset: str) -> Recipe:
    """default_recipe in its own session."""
    with sessions() as session:
        return default_recipe(session, dataset)


def training_sources(sessions: sessionmaker) -> dict[str, str]:
    """Dataset name -> folder, for the datasets imported from an MNRE-layout folder that is still on this machine:
    what a training, a retraining or an experiment can read (the Models and Experiments pages offer these)."""
    from db.datasets import list_datasets

    with sessions() as session:
        datasets = {row.name: row.source_path for row in list_datasets(session)}
    return {
        name: path for name, path in datasets.items() if path and (Path(path) / "ours_rel2id.json").is_file()
    }


def variant_overrides(variant: str | None) -> dict[str, str]:
    """The TrainConfig fields a training of `variant` sets over its config file (none for None)."""
    if variant is None:
        return {}
    if variant not in VARIANTS:
        raise LabelStoreError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    return VARIANTS[variant]


class TrainingAlreadyQueued(LabelStoreError):
    """A training of the same kind is queued or running: a second one would only repeat it."""


def score_limit() -> int:
    return int(os.environ.get("MRELENS_SCORE_LIMIT", DEFAULT_SCORE_LIMIT))


def explain_limit() -> int:
    return int(os.environ.get("MRELENS_EXPLAIN_LIMIT", DEFAULT_EXPLAIN_LIMIT))


def config_path(kind: str) -> Path:
    variable, default = CONFIGS[kind]
    path = Path(os.environ.get(variable) or default)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: training config of the {kind} job not found (set ${variable})")
    return path


def training_config(path: str | Path, data: str, output_dir: Path, **overrides):
    """TrainConfig from a YAML file (model.train.parse_config), on `data`, writing under `output_dir`."""
    from model.train import parse_config

    cfg = parse_config(["--config", str(path)])
    return replace(
        cfg,
        data=str(data),
        output_dir=str(output_dir),
        feature_cache=str(feature_cache_dir()),
        skip_bad=True,
        progress=False,
        **overrides,
    )


def training_config_file(kind: str, dataset: str) -> Path:
    """The config a first_model / default_model job trains with: $MRELENS_FIRST_MODEL_CONFIG /
    $MRELENS_DEFAULT_MODEL_CONFIG when set, else the synthetic configs on the synthetic demo set (its settings for
    short posts), else configs/first_model.yaml / configs/default.yaml. The variant is the data's (default_recipe)
    or the one picked on the Models page, set over the file's."""
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
    variant: str | None = None,
) -> int:
    """Queue a first_model or default_model job on the dataset at `root`; returns its id.

    `variant` (one of VARIANTS) is set over the config file's; None: the data's (default_recipe), except for a
    config named by $MRELENS_FIRST_MODEL_CONFIG / $MRELENS_DEFAULT_MODEL_CONFIG, which is trained as written.
    Refused (TrainingAlreadyQueued) while a job of the same kind is queued or running; admins only (db.roles).
    """
    from app.jobs import enqueue

    if kind not in TRAINING_NAMES:
        raise LabelStoreError(f"unknown training {kind!r}; expected one of {', '.join(TRAINING_NAMES)}")
    variant_overrides(variant)  # an unknown variant is refused before anything is queued
    with sessions() as session:
        pending = latest_job(session, (kind,), ACTIVE_STATUSES)
        pending = (pending.id, pending.status) if pending else None
        recipe = default_recipe(session, dataset)
    if pending is not None:
        raise TrainingAlreadyQueued(
            f"{TRAINING_NAMES[kind]} is already {pending[1]} (job {pending[0]}); follow it on the Jobs page "
            "or cancel it there before starting another"
        )
    config = training_config_file(kind, dataset)
    params = {"data": str(root), "dataset": dataset, "config": str(config)}
    if variant is None and not os.environ.get(CONFIGS[kind][0]):
        variant = recipe.variant
    if variant is not None:
        chosen = f"the data: {recipe.why}" if variant == recipe.variant else PICKED
        params.update(variant=variant, variant_from=chosen)
    return enqueue(sessions, kind, started_by, params, actor=actor)


def activate(
    sessions: sessionmaker, version_id: str, started_by: str, actor: Actor | None = None
) -> dict[str, Any]:
    """Make `version_id` the active model (admins only) and queue its follow-ups: a scoring job that stores its
    predictions for the queue and then queues the precompute of Inspect's explanations for the queue's top.
    Returns {"score_job": id}."""
    from app.jobs import enqueue
    from db.provenance import set_active

    with sessions.begin() as session:
        set_active(session, version_id, actor=actor)
    params = {"model_version": version_id, "then_explain": explain_limit()}
    return {"score_job": enqueue(sessions, "score", started_by, params)}


def queue_explanations(sessions: sessionmaker, version_id: str, n: int, started_by: str) -> int:
    """Queue the precompute of Inspect's explanations for the top `n` pairs of the queue with `version_id`: its own
    job kind, after scoring and before trainings waiting in the queue (db.job_kinds). The scoring job an activation
    queues calls this when it ends; the Models page on request."""
    from app.jobs import enqueue

    return enqueue(sessions, "explanations", started_by, {"model_version": version_id, "top": n})


def log(message: str) -> None:
    print(f"[launch {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def queue_default_jobs(sessions: sessionmaker, root: Path, dataset: str) -> list[int]:
    """Queue the first model, the default recipe and a scoring job where each is missing; returns the new job ids.
    Both trainings are of the data's variant (default_recipe: objects when most posts have an image).

    `make app` (app.launch) and `python -m app.prepare` call it: a job queued, running or done is not queued
    again."""
    from app.jobs import enqueue
    from db.datasets import count_pairs
    from db.model_versions import active_model
    from db.provenance import pairs_without_prediction

    queued = []
    with sessions() as session:
        active = active_model(session)
        has_useful_model = active is not None and active.val_f1 is not None
        first = latest_job(session, ("first_model",), ("queued", "running", "succeeded"))
        default = latest_job(session, ("default_model",), ("queued", "running", "succeeded", "cancelled"))
        scoring = latest_job(session, ("score",), ("queued", "running"))
        unscored = 0
        if active is not None:
            total = count_pairs(session)
            unscored = min(score_limit(), total) - (
                total - len(pairs_without_prediction(session, active.key))
            )
        recipe = default_recipe(session, dataset)
    variant = f"{recipe.variant} ({recipe.why})"
    if first is None and not has_useful_model:
        queued.append(queue_training(sessions, "first_model", root, dataset, LAUNCHER))
        log(f"queued job {queued[-1]}: the first model (quick: one epoch), {variant}")
    if default is None:
        queued.append(queue_training(sessions, "default_model", root, dataset, LAUNCHER))
        log(
            f"queued job {queued[-1]}: the default recipe, {variant} (activated if it beats the active model)"
        )
    if active is not None and unscored > 0 and scoring is None:
        params = {"model_version": active.version_id, "then_explain": explain_limit()}
        queued.append(enqueue(sessions, "score", LAUNCHER, params))
        log(f"queued job {queued[-1]}: store {active.version_id}'s predictions for the queue")
    return queued
