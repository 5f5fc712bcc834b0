"""Find label errors as jobs: a `crossfit` job plans the folds and queues one `crossfit_fold` job per fold; the fold
that finishes last merges the held-out predictions (model.crossfit.merge_folds), scores them with cleanlab
(model.label_quality) and stores the run whole (db.label_errors.save_crossfit_run).

Several workers take the fold jobs at once (each is an ordinary job of the queue); results are merged in fold order
whichever finishes first. The plan and each fold's held-out predictions are files in the run's folder under runs/
(the folder the workers' checkpoints go to, shared by every worker as for any training). Pairs of the other splits
(val, test, posts added in the app), which the active model never trained on, take the active model's
probabilities directly. Nothing is stored until every fold has finished: a failed or cancelled fold leaves no run.
A fold interrupted by a worker restart is queued again by the next worker (`requeue_interrupted_folds`); folds
already finished are kept.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import sessionmaker

from app.services.paths import REPO_ROOT, runs_dir

CONFIG = ("MRELENS_CROSSFIT_CONFIG", REPO_ROOT / "configs" / "crossfit.yaml")
TRAINING_SPLIT = "train"
SELECTION_SPLIT = "val"  # each fold model selects its epoch and "None" offset here, as every model does
PLAN = "plan.json"
MERGE_LOCK = "merge.lock"


def crossfit_config_path(requested: str | None = None, dataset: str | None = None) -> Path:
    """The fold recipe: the job's `config`, else $MRELENS_CROSSFIT_CONFIG, else on the synthetic demo set its first
    model's config (short posts, objects), else configs/crossfit.yaml."""
    from app.services.model_jobs import SYNTHETIC_CONFIGS, SYNTHETIC_DATASET

    variable, default = CONFIG
    if dataset == SYNTHETIC_DATASET:
        default = SYNTHETIC_CONFIGS["first_model"]
    path = Path(requested or os.environ.get(variable) or default)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: the fold recipe of Find label errors was not found (set ${variable})"
        )
    return path


def run_crossfit(sessions: sessionmaker, request, reporter) -> dict[str, Any]:
    """Plan: the dataset's labelled pairs (labels in effect), stratified folds of its training split, the recipe;
    then one crossfit_fold job per fold."""
    from app.jobs import enqueue
    from app.services.model_jobs import default_recipe
    from db.label_errors import dataset_labels, labelled_pairs
    from model.crossfit import DEFAULT_FOLDS, assign_folds

    params = request.params
    dataset = params["dataset"]
    folds = int(params.get("folds") or DEFAULT_FOLDS)
    seed = int(params.get("seed") or 1)
    config = str(crossfit_config_path(params.get("config"), dataset))
    with sessions() as session:
        pairs = labelled_pairs(session, dataset)
        labels = dataset_labels(session, dataset)
        # the fold models read what the data call for, as every default training does: objects when most posts
        # have an image (text-only folds stay at chance where the image decides the label); a recipe named by the
        # job or $MRELENS_CROSSFIT_CONFIG keeps its own variant
        named = bool(params.get("config") or os.environ.get(CONFIG[0]))
        recipe = None if named else default_recipe(session, dataset)
    training = [p for p in pairs if p.split == TRAINING_SPLIT]
    selection = [p for p in pairs if p.split == SELECTION_SPLIT]
    others = [p for p in pairs if p.split != TRAINING_SPLIT]
    if len(training) < folds:
        raise ValueError(
            f"dataset {dataset!r}: {len(training)} labelled pairs in its {TRAINING_SPLIT!r} split; "
            f"{folds}-fold cross-fitting needs at least {folds}"
        )
    if not selection:
        raise ValueError(
            f"dataset {dataset!r} has no labelled {SELECTION_SPLIT!r} pairs: the fold models select their "
            "epoch on them"
        )
    fold_of = assign_folds([p.label for p in training], folds, seed)
    folder = runs_dir() / f"job{request.id}-crossfit"
    folder.mkdir(parents=True, exist_ok=True)
    plan = {
        "job": request.id,
        "dataset": dataset,
        "labels": labels,
        "folds": folds,
        "seed": seed,
        "config": config,
        "variant": recipe.variant if recipe else None,  # None: the config's own
        "method": params.get("method"),
        "started_by": request.started_by,
        "training": [[p.pair_id, p.label] for p in training],
        "selection": [[p.pair_id, p.label] for p in selection],
        "others": [[p.pair_id, p.label] for p in others],
        "fold_of": fold_of,
    }
    (folder / PLAN).write_text(json.dumps(plan))
    variant = f", variant {recipe.variant}: {recipe.why}" if recipe else ""
    reporter.log(
        f"{dataset}: {len(training)} {TRAINING_SPLIT} pairs in {folds} folds ({config}{variant}); "
        f"{len(others)} pairs of other splits from the active model"
    )
    fold_jobs = [
        enqueue(
            sessions,
            "crossfit_fold",
            request.started_by,
            {"parent": request.id, "fold": fold, "folder": str(folder), "dataset": dataset},
            actor=None,
        )
        for fold in range(folds)
    ]
    return {"folder": str(folder), "fold_jobs": fold_jobs, "pairs": len(pairs), "folds": folds}


def _records(sessions: sessionmaker, labelled: list[list]) -> list:
    """Model records of the planned pairs, each with the label the plan fixed (the label in effect at planning)."""
    from app.services.inference import pair_records

    ids = [pair_id for pair_id, _ in labelled]
    with sessions() as session:
        records = pair_records(session, ids)
    return [replace(record, relation=label) for record, (_, label) in zip(records, labelled, strict=True)]


def run_crossfit_fold(sessions: sessionmaker, request, reporter) -> dict[str, Any]:
    """Train one fold (model.crossfit.train_fold), save its held-out predictions, and merge when it is the last."""
    from app.services.model_jobs import training_config, variant_overrides
    from model.crossfit import train_fold

    folder, fold = Path(request.params["folder"]), int(request.params["fold"])
    plan = json.loads((folder / PLAN).read_text())
    records = _records(sessions, plan["training"])
    selection = _records(sessions, plan["selection"])
    overrides = variant_overrides(plan.get("variant"))  # a plan written before variants were chosen has none
    cfg = training_config(plan["config"], "", folder, seed=int(plan["seed"]), **overrides)
    reporter.watch_history(folder / f"fold{fold}" / "history.json")
    reporter.log(
        f"fold {fold + 1}/{plan['folds']}: training on {sum(f != fold for f in plan['fold_of'])} pairs"
    )
    part = train_fold(
        cfg, records, plan["fold_of"], fold, selection, plan["labels"], progress_callback=reporter
    )
    reporter.check_cancel()
    part.save(folder)
    outcome: dict[str, Any] = {
        "parent": plan["job"],
        "fold": fold,
        "held_out": part.model.held_out,
        "fold_val_f1": part.model.val_f1,
    }
    run_id = merge_if_complete(sessions, folder, reporter)
    if run_id is not None:
        outcome["crossfit_run"] = run_id
    return outcome


def merge_if_complete(sessions: sessionmaker, folder: Path, reporter=None) -> int | None:
    """When every fold's predictions are in `folder`, exactly one caller merges and stores the run (a lock file
    created with O_EXCL); returns the stored run's id, None when folds are missing or another caller merges."""
    plan = json.loads((folder / PLAN).read_text())
    if not all((folder / f"fold{fold}.npz").is_file() for fold in range(plan["folds"])):
        return None
    try:
        os.close(os.open(folder / MERGE_LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return None
    try:
        return store_run(sessions, folder, plan, reporter)
    except BaseException:
        # a failed merge can be tried again (by `python -m app.label_errors merge FOLDER`)
        (folder / MERGE_LOCK).unlink(missing_ok=True)
        raise


def _active_model_probabilities(
    sessions: sessionmaker, plan: dict, log
) -> tuple[np.ndarray | None, str | None]:
    """The active model's probabilities on the pairs of the other splits, in the plan's label order."""
    from app.services.inference import predict_records
    from db.model_versions import active_model
    from model.checkpoint import load_checkpoint

    if not plan["others"]:
        return None, None
    with sessions() as session:
        active = active_model(session)
    if active is None:
        log(f"no active model: the {len(plan['others'])} pairs outside {TRAINING_SPLIT!r} are not scored")
        return None, None
    model, tokenizer = load_checkpoint(active.folder)
    if list(model.config.label_names) != list(plan["labels"]):
        log(
            f"the active model {active.version_id} has other labels than the dataset: other splits not scored"
        )
        return None, None
    rows = predict_records(model, tokenizer, _records(sessions, plan["others"]))
    return np.array([[row[name] for name in plan["labels"]] for row in rows]), active.version_id


def store_run(sessions: sessionmaker, folder: Path, plan: dict, reporter=None) -> int:
    """Merge the folds, add the other splits' active-model probabilities, score with cleanlab, store the run."""
    from db.label_errors import save_crossfit_run
    from model.crossfit import FoldPrediction, merge_folds
    from model.label_quality import DEFAULT_METHOD

    def log(message: str) -> None:
        if reporter is not None:
            reporter.log(message)

    labels = plan["labels"]
    parts = [FoldPrediction.load(folder, fold) for fold in range(plan["folds"])]
    merged = merge_folds(parts, len(plan["training"]), labels)
    pair_labels = list(plan["training"])
    probabilities = merged.probabilities
    sources = [("fold", fold, merged.models[fold].version_id) for fold in merged.fold_of]
    other_probabilities, active_version = _active_model_probabilities(sessions, plan, log)
    if other_probabilities is not None:
        pair_labels += plan["others"]
        probabilities = np.vstack([probabilities, other_probabilities])
        sources += [("active_model", None, active_version)] * len(plan["others"])
    method = plan.get("method") or DEFAULT_METHOD
    rows, issues = out_of_sample_rows(pair_labels, probabilities, labels, sources, method)
    settings = {
        "recipe": plan["config"],
        "seed": plan["seed"],
        "folder": str(folder),
        "fold_models": [
            {
                key: getattr(model, key)
                for key in ("fold", "version_id", "checkpoint", "trained_on", "held_out", "val_f1")
            }
            for model in merged.models
        ],
        "active_model": active_version,
        "training_split": TRAINING_SPLIT,
    }
    with sessions.begin() as session:
        run = save_crossfit_run(
            session,
            plan["dataset"],
            folds=plan["folds"],
            method=method,
            settings=settings,
            rows=rows,
            job_id=plan["job"],
            created_by=plan.get("started_by"),
        )
        run_id = run.id
    log(
        f"stored label-error run {run_id}: {len(rows)} pairs, {int(issues.flagged.sum())} flagged by cleanlab"
    )
    return run_id


def out_of_sample_rows(
    pair_labels: list, probabilities: np.ndarray, labels: list[str], sources: list[tuple], method: str
) -> tuple[list[dict[str, Any]], Any]:
    """The rows db.label_errors.save_crossfit_run stores, from out-of-sample probabilities (one row per
    (pair_id, label in effect), in the label order of `labels`) and each row's (source, fold, model version);
    also cleanlab's LabelIssues."""
    from model.label_quality import find_label_issues

    index = {name: k for k, name in enumerate(labels)}
    given = np.array([index[label] for _, label in pair_labels])
    issues = find_label_issues(given, probabilities, method=method)
    rows = []
    for k, (pair_id, label) in enumerate(pair_labels):
        source, fold, version = sources[k]
        rows.append(
            {
                "pair_id": pair_id,
                "source": source,
                "fold": fold,
                "model_version": version,
                "probabilities": {name: float(p) for name, p in zip(labels, probabilities[k], strict=True)},
                "given_label": label,
                "given_probability": float(issues.given_probability[k]),
                "suggested_label": labels[int(issues.suggested[k])],
                "suggested_probability": float(issues.suggested_probability[k]),
                "quality": float(issues.quality[k]),
                "loss": float(issues.scores["loss"][k]),
                "flagged": bool(issues.flagged[k]),
                "scores": {name: float(values[k]) for name, values in issues.scores.items()},
            }
        )
    return rows, issues


def requeue_interrupted_folds(sessions: sessionmaker, interrupted) -> list[int]:
    """Queue again the fold jobs a stopped worker left unfinished (the finished folds' files are kept)."""
    from app.jobs import enqueue

    queued = []
    for job in interrupted:
        if job.kind == "crossfit_fold":
            queued.append(
                enqueue(sessions, "crossfit_fold", job.started_by, dict(job.params or {}), actor=None)
            )
    return queued
