"""What the worker does with a job id: mark it running, run its kind through the project's one function for that
work, report progress, and end it as succeeded, failed or cancelled.

Nothing half-done survives a failed or cancelled job: a model version is registered only after training finished,
the checkpoint loaded back and no cancel was asked for; predictions of a scoring job are written in one
transaction at its end. A job's model is activated when no model is active or when its val micro-F1 beats the
active one's, and each activation queues a scoring job for the new model.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy.orm import sessionmaker

# Find label errors: planning and one fold per job
from app.jobs.crossfit import run_crossfit, run_crossfit_fold
from app.services.model_jobs import (
    config_path,
    queue_explanations,
    score_limit,
    training_config,
    variant_origin,
    variant_overrides,
)
from app.services.paths import REPO_ROOT, feature_cache_dir, runs_dir
from db.jobs import (
    JobCancelled,
    cancel_requested,
    finish_job,
    link_model_version,
    report_progress,
    start_job,
)

log = logging.getLogger("mrelens.jobs")

# set by the worker's signal handler: the running job stops at its next progress report
STOP = threading.Event()


class WorkerStopping(Exception):
    """The worker is shutting down (Ctrl-C, SIGTERM): the running job ends as failed, nothing registered."""


@dataclass
class JobRequest:
    id: int
    kind: str
    params: dict[str, Any]
    started_by: str


_sessions: sessionmaker | None = None


def worker_sessions() -> sessionmaker:
    """The label store of DATABASE_URL, opened once per worker process."""
    global _sessions
    if _sessions is None:
        from db.schema import open_database

        _engine, _sessions = open_database()
    return _sessions


class EtaClock:
    """Time left from the job's own measured rate: nothing during the first WARMUP_STEPS steps (loading the model,
    filling the feature cache and the first allocations are no rate), then the training time per unit of progress
    since the reference step times the progress left, plus the measured evaluation time (the pause between an
    epoch's last step and the next epoch's first) for each evaluation still to come."""

    WARMUP_STEPS = 5

    def __init__(self, t0: float):
        self.steps, self.reference = 0, None  # (time, progress) once the warm-up is over
        self.last_time, self.last_period, self.step_s = t0, None, None
        self.evaluation_total, self.evaluations = 0.0, 0  # every evaluation pause measured
        self.paused_since_reference = 0.0  # evaluation time inside the measured training rate

    @property
    def evaluation_s(self) -> float | None:
        return self.evaluation_total / self.evaluations if self.evaluations else None

    def step(self, now: float, progress: float, period: tuple, evaluations_left: int) -> float | None:
        """Seconds left after a step at `now` that reached `progress` (0..1) in `period` (part, epoch); None
        until the rate is measured."""
        gap = now - self.last_time
        if self.last_period is not None and period != self.last_period and self.step_s is not None:
            pause = max(0.0, gap - self.step_s)  # this step came after an evaluation
            self.evaluation_total += pause
            self.evaluations += 1
            if self.reference is not None:
                self.paused_since_reference += pause
        elif self.steps:
            self.step_s = gap if self.step_s is None else 0.8 * self.step_s + 0.2 * gap
        self.last_time, self.last_period = now, period
        self.steps += 1
        if self.steps == self.WARMUP_STEPS:
            self.reference = (now, progress)
        if self.reference is None or progress <= self.reference[1]:
            return None
        t_ref, p_ref = self.reference
        per_unit = (now - t_ref - self.paused_since_reference) / (progress - p_ref)
        return per_unit * (1 - progress) + (self.evaluation_s or 0.0) * evaluations_left


class Reporter:
    """The progress callback of a job: progress(fraction, message) as model.train.train calls it.

    Each call counts a step, estimates the time left (EtaClock: the measured rate after the first steps, the
    evaluations between epochs counted), picks up the latest val F1 from the run's history.json, checks the job's
    cancel flag and writes progress at most every `interval` seconds. A job made of several trainings (shuffle,
    ablation) declares them with expect(n): a fraction that falls back starts the next one.
    """

    def __init__(self, sessions: sessionmaker, job_id: int, interval: float = 2.0, clock=time.monotonic):
        self.sessions, self.job_id, self.interval = sessions, job_id, interval
        self.clock = clock
        self.t0 = clock()
        self.eta = EtaClock(self.t0)
        self.parts, self.part, self.last_fraction, self.steps = 1, 0, 0.0, 0
        self.progress: dict[str, Any] = {"fraction": 0.0, "message": "starting"}
        self.lines: list[str] = []
        self.last_write = 0.0
        self.history: Path | None = None
        self.history_mtime = 0.0
        self.val_f1: float | None = None

    def expect(self, parts: int) -> None:
        self.parts = max(1, parts)

    def watch_history(self, path: Path) -> None:
        """history.json of the training under way: its last epoch's val F1 is the progress's "latest val F1"."""
        self.history, self.history_mtime = path, 0.0

    def __call__(self, fraction: float, message: str = "") -> None:
        if STOP.is_set():
            raise WorkerStopping("the worker is shutting down")
        if fraction < self.last_fraction - 1e-9:
            self.part, self.steps = min(self.part + 1, self.parts - 1), 0
        self.last_fraction = fraction
        self.steps += 1
        overall = (self.part + min(max(fraction, 0.0), 1.0)) / self.parts
        now = self.clock()
        elapsed = now - self.t0
        self._read_history()
        epoch = re.search(r"epoch (\d+)/(\d+)", message)
        # an epoch (or a part) that changed since the last step: the pause before this step was an evaluation
        period = (self.part, int(epoch.group(1))) if epoch else (self.part, 0)
        eta = self.eta.step(now, overall, period, self._evaluations_left(epoch))
        self.progress = {
            "fraction": round(overall, 4),
            "message": message,
            "step": self.steps,
            "steps": round(self.steps / fraction) if fraction > 0 else None,
            "epoch": int(epoch.group(1)) if epoch else None,
            "epochs": int(epoch.group(2)) if epoch else None,
            "part": self.part + 1,
            "parts": self.parts,
            "elapsed_s": round(elapsed),
            "eta_s": round(eta) if eta is not None else None,
            "val_f1": self.val_f1,
        }
        self.check_cancel()
        self.flush()

    def _evaluations_left(self, epoch) -> int:
        """Evaluations still to come: the one ending this epoch and one per later epoch (of every later part)."""
        if not epoch:
            return 0
        current, epochs = int(epoch.group(1)), int(epoch.group(2))
        return (epochs - current + 1) + (self.parts - 1 - self.part) * epochs

    def _read_history(self) -> None:
        if self.history is None:
            return
        try:
            mtime = self.history.stat().st_mtime
            if mtime != self.history_mtime:
                self.history_mtime = mtime
                entries = json.loads(self.history.read_text())
                if entries:
                    self.val_f1 = float(entries[-1]["f1"])
        except (OSError, ValueError, KeyError):
            pass  # written while we read: the next step reads it again

    def log(self, line: str) -> None:
        if line.strip():
            self.lines.append(line)
        self.flush()

    def check_cancel(self) -> None:
        with self.sessions() as session:
            if cancel_requested(session, self.job_id):
                raise JobCancelled(f"job {self.job_id} was cancelled")

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_write < self.interval:
            return
        self.last_write = now
        lines, self.lines = self.lines, []
        with self.sessions.begin() as session:
            report_progress(session, self.job_id, self.progress, lines)


class _LineTee(io.TextIOBase):
    """stderr of the job: every complete line goes to the job's log tail and on to the worker's own stderr."""

    def __init__(self, reporter: Reporter, original):
        self.reporter, self.original, self.buffer = reporter, original, ""

    def write(self, text: str) -> int:
        self.original.write(text)
        self.buffer += text.replace("\r", "\n")
        *complete, self.buffer = self.buffer.split("\n")
        for line in complete:
            self.reporter.lines.append(line)
        return len(text)

    def flush(self) -> None:
        self.original.flush()


def execute_job(job_id: int, sessions: sessionmaker | None = None) -> str | None:
    """Run one job to its end; returns its final status (None when it was no longer queued or the worker is
    stopping)."""
    sessions = sessions or worker_sessions()
    if STOP.is_set():
        # a stopping worker takes no new job: it stays queued, and the next worker sends it again (requeue_lost)
        log.info("job %s left queued: the worker is stopping", job_id)
        return None
    with sessions.begin() as session:
        job = start_job(session, job_id)
        if job is None:
            log.info("job %s is no longer queued; skipped", job_id)
            return None
        request = JobRequest(job.id, job.kind, dict(job.params or {}), job.started_by)
    return run_started_job(sessions, request)


def run_here(sessions: sessionmaker, kind: str, started_by: str, params: dict[str, Any]) -> tuple[int, str]:
    """Run a job of `kind` in this process, as a command line does (python -m app.plausibility): the same jobs row,
    runner, progress and outcome as a worker's job, created running so no worker takes it. Returns (job id, final
    status). Ctrl-C ends it as failed ("interrupted") and is raised again."""
    from db.jobs import create_running_job

    with sessions.begin() as session:
        job = create_running_job(session, kind, started_by, params)
        request = JobRequest(job.id, job.kind, dict(job.params or {}), job.started_by)
    return request.id, run_started_job(sessions, request)


def run_started_job(sessions: sessionmaker, request: JobRequest) -> str:
    """Run a job already marked running through its kind's runner and end it; returns its final status."""
    job_id = request.id
    reporter = Reporter(sessions, job_id)
    log.info("job %s (%s) started", job_id, request.kind)
    status, outcome, error = "failed", None, None
    try:
        with contextlib.redirect_stderr(_LineTee(reporter, sys.stderr)):
            outcome = RUNNERS[request.kind](sessions, request, reporter)
        status = "succeeded"
    except JobCancelled:
        status, error = "cancelled", "cancelled on request; nothing it made was registered"
    except WorkerStopping:
        error = "interrupted: the worker was stopped while the job ran; nothing it made was registered"
    except KeyboardInterrupt:  # a job run here (run_here) stopped with Ctrl-C: recorded, then raised again
        reporter.flush(force=True)
        with sessions.begin() as session:
            finish_job(
                session, job_id, "failed", None, "interrupted (Ctrl-C); nothing it made was registered"
            )
        raise
    except Exception as err:  # recorded on the job (message + traceback in the log tail), not swallowed
        log.exception("job %s failed", job_id)
        reporter.lines.extend(traceback.format_exc().splitlines()[-12:])
        error = f"{type(err).__name__}: {err}"
    if status == "succeeded":
        reporter.progress = {**reporter.progress, "fraction": 1.0, "eta_s": 0, "message": "done"}
    reporter.flush(force=True)
    with sessions.begin() as session:
        finish_job(session, job_id, status, outcome, error)
    log.info("job %s %s%s", job_id, status, f": {error}" if error else "")
    return status


# ----------------------------------------------------------------------------------------------------------------
# Training configurations and model registration


def job_output_dir(request: JobRequest) -> Path:
    return runs_dir() / f"job{request.id}-{request.kind}"


def activate_if_better(sessions: sessionmaker, version_id: str, started_by: str) -> dict[str, Any]:
    """Activate `version_id` when no model is active or its val F1 beats the active one's; activation queues
    a scoring job for it. Returns what happened, for the job's outcome."""
    from app.services.model_jobs import activate
    from db.model_versions import active_model, find_model

    with sessions() as session:
        version, active = find_model(session, version_id), active_model(session)
    new_f1, active_f1 = version.val_f1, active.val_f1 if active else None
    if active is not None and active.key == version.key:
        # a training that reproduced the active model (same weights, same version id) has nothing to activate;
        # "not activated · active before <itself>" read as if another model had won
        return {"activated": False, "already_active": True}
    better = active is None or (new_f1 is not None and (active_f1 is None or new_f1 > active_f1))
    previous = active.version_id if active else None
    outcome: dict[str, Any] = {"activated": better, "previous_active": previous, "previous_val_f1": active_f1}
    if better:
        # the one activation path: the Models page's button goes through it too
        outcome.update(activate(sessions, version_id, started_by))
    return outcome


def register_trained(
    sessions: sessionmaker,
    request: JobRequest,
    reporter: Reporter,
    checkpoint: Path,
    metrics: dict,
    settings: dict,
) -> dict[str, Any]:
    """Register a finished training's checkpoint (after checking it loads and no cancel came) and maybe activate."""
    from db.model_versions import model_or_none, summarize_metrics
    from db.provenance import register_checkpoint
    from model.checkpoint import load_checkpoint, read_checkpoint_config

    reporter.check_cancel()
    load_checkpoint(checkpoint)  # a checkpoint that does not load back is never registered
    with sessions.begin() as session:
        version_id = read_checkpoint_config(checkpoint)["version_id"]
        existing = model_or_none(session, version_id)
    if existing is not None:
        # the version id is a hash of the weights: the same training ran before and is registered already
        reporter.log(f"{version_id} is already registered (identical weights at {existing.folder})")
        outcome = {"model_version": version_id, "val_f1": metrics.get("f1"), "identical_to_registered": True}
        outcome.update(activate_if_better(sessions, version_id, f"job {request.id}"))
        return outcome
    with sessions.begin() as session:
        version = register_checkpoint(
            session,
            checkpoint,
            metrics={"val": summarize_metrics(metrics)},
            settings={**settings, "job": request.id},
            created_by=f"job {request.id} ({request.kind}, started by {request.started_by})",
        )
        version_id = version.version_id
    outcome = {"model_version": version_id, "val_f1": metrics.get("f1")}
    outcome.update(activate_if_better(sessions, version_id, f"job {request.id}"))
    return outcome


def _json_safe(values: dict) -> dict:
    return {
        k: v for k, v in values.items() if isinstance(v, str | int | float | bool | type(None) | dict | list)
    }


# ----------------------------------------------------------------------------------------------------------------
# One runner per kind


def run_training(sessions: sessionmaker, request: JobRequest, reporter: Reporter) -> dict[str, Any]:
    """first_model / default_model: model.train.train on a config file, of the variant the job names (the data's or
    one picked on the Models page: app.services.model_jobs.VARIANTS), then register (and maybe activate)."""
    from model.train import train

    path = request.params.get("config") or config_path(request.kind)
    overrides = variant_overrides(request.params.get("variant"))
    cfg = training_config(path, request.params["data"], job_output_dir(request), **overrides)
    reporter.watch_history(Path(cfg.output_dir) / "history.json")
    what = "mega" if cfg.architecture == "mega" else cfg.variant
    chosen = f", {origin}" if (origin := variant_origin(request.params.get("variant_from"))) else ""
    reporter.log(f"{request.kind}: {what}{chosen}, {cfg.epochs} epoch(s) on {cfg.data} ({path})")
    result = train(cfg, progress_callback=reporter)
    if not result.best_metrics:
        raise RuntimeError(f"training wrote no checkpoint under {cfg.output_dir}")
    settings = {
        "kind": request.kind,
        "config_file": str(path),
        "dataset": request.params.get("dataset"),
        "train": _json_safe(asdict(cfg)),
        "history": result.history,
    }
    return register_trained(sessions, request, reporter, result.best_dir, result.best_metrics, settings)


def run_retrain(sessions: sessionmaker, request: JobRequest, reporter: Reporter) -> dict[str, Any]:
    """Retrain from curated labels (app.services.retrain.retrain registers the version); activate it only if it beats."""
    from app.services.retrain import retrain

    params = request.params
    output_dir = job_output_dir(request)
    reporter.watch_history(output_dir / "history.json")
    options = {k: params[k] for k in ("limit_train", "limit_val", "max_length") if params.get(k)}
    result = retrain(
        sessions,
        params["base"],
        params["data"],
        params.get("dataset", "mnre"),
        int(params.get("epochs", 1)),
        output_dir,
        batch_size=int(params.get("batch_size", 32)),
        lr=float(params.get("lr", 2e-5)),
        created_by=f"job {request.id} (retrain, started by {request.started_by})",
        log=reporter.log,
        progress_callback=reporter,
        before_register=reporter.check_cancel,
        feature_cache=str(feature_cache_dir()),
        progress=False,
        skip_bad=True,
        **options,
    )
    with sessions.begin() as session:
        link_model_version(session, result.new_version, request.id)
    outcome = {
        "model_version": result.new_version,
        "base": result.base_version,
        "val_f1": result.after["f1"],
        "val_f1_before": result.before["f1"],
        "curation": result.curation.summary(),
    }
    outcome.update(activate_if_better(sessions, result.new_version, f"job {request.id}"))
    return outcome


def run_score(sessions: sessionmaker, request: JobRequest, reporter: Reporter) -> dict[str, Any]:
    """Store a model version's predictions for the queue (the active one by default), all in one transaction;
    with params["then_explain"] = N, queue the explanations job for the top N pairs once they are stored."""
    from app.services.inference import predict_and_store
    from db.datasets import count_pairs
    from db.errors import LabelStoreError
    from db.model_versions import active_model, find_model
    from db.provenance import pairs_without_prediction
    from model.checkpoint import load_checkpoint

    wanted = request.params.get("model_version")
    with sessions() as session:
        version = find_model(session, wanted) if wanted else active_model(session)
        if version is None:
            raise LabelStoreError("no model version is active; nothing to score with")
        todo = pairs_without_prediction(session, version.key)
        total = count_pairs(session)
    limit = int(request.params.get("limit") or score_limit())
    scored = total - len(todo)
    todo = todo[: max(0, limit - scored)]
    reporter.log(f"scoring {len(todo)} pairs with {version.version_id} ({scored} of {total} already scored)")
    if todo:
        model, tokenizer = load_checkpoint(version.folder)
        predict_and_store(
            sessions,
            model,
            tokenizer,
            version.key,
            todo,
            progress=lambda done, n: reporter(done / n, f"{done}/{n} pairs"),
            atomic=True,
        )
    outcome = {
        "model_version": version.version_id,
        "scored": len(todo),
        "already_scored": scored,
        "pairs": total,
    }
    then_explain = int(request.params.get("then_explain") or 0)
    if then_explain > 0:
        # its own job, after the predictions it orders the queue by: cancelling it leaves them stored
        outcome["explain_job"] = queue_explanations(
            sessions, version.version_id, then_explain, f"job {request.id}"
        )
    return outcome


def run_explanations(sessions: sessionmaker, request: JobRequest, reporter: Reporter) -> dict[str, Any]:
    """Inspect's expensive results (token and visual attributions with their faithfulness, image reliance; the
    page's default settings) for the top N pairs of the review queue, computed by app.services.stored_explanations (Inspect's
    own path) and stored per pair as each pair completes; pairs already stored are skipped."""
    from app.services.stored_explanations import explain_top_of_queue
    from db.model_versions import find_model
    from model.checkpoint import load_checkpoint

    with sessions() as session:
        version = find_model(session, request.params["model_version"])
    n = int(request.params["top"])
    reporter.log(f"explaining the top {n} pairs of the queue with {version.version_id}")
    model, tokenizer = load_checkpoint(version.folder)
    outcome = explain_top_of_queue(
        sessions,
        model,
        tokenizer,
        version.key,
        n,
        str(feature_cache_dir()),
        progress=reporter,
        log=reporter.log,
        created_by=f"job {request.id}",
    )
    return {"model_version": version.version_id, **outcome}


class _ReportingRecords(list):
    """The records of a grounding batch; iterating them reports progress (and so checks the cancel flag)."""

    def __init__(self, records, reporter: Reporter, label: str):
        super().__init__(records)
        self.reporter, self.label = reporter, label

    def __iter__(self):
        n = len(self)
        for k, record in enumerate(super().__iter__()):
            self.reporter(k / max(1, n), f"{self.label}: {k}/{n} posts")
            yield record


def run_grounding(sessions: sessionmaker, request: JobRequest, reporter: Reporter) -> dict[str, Any]:
    """model.grounding.ground_split over each split of the dataset (resumable; crops stored under var/)."""
    from model.data import load_split
    from model.grounding import ground_split, load_grounder

    params = request.params
    splits = list(params.get("splits") or ["train", "val"])
    store = Path(params.get("out") or REPO_ROOT / "var" / "grounding" / params.get("dataset", "dataset"))
    grounder = load_grounder(params["grounder"], strict=True) if params.get("grounder") else None
    reporter.expect(len(splits))
    counts = {}
    for split in splits:
        records, _, _ = load_split(params["data"], split, check_images=False)
        records = records[: params["limit"]] if params.get("limit") else records
        counts[split] = ground_split(
            _ReportingRecords(records, reporter, split),
            store,
            split,
            grounder=grounder,
            resume=True,
            progress=False,
        )
        reporter.log(f"{split}: {counts[split]}")
    return {"store": str(store), "counts": counts}


def _experiment_config(request: JobRequest):
    params = request.params
    path = params.get("config") or config_path("default_model")
    overrides = {key: params[key] for key in ("epochs", "limit_train", "limit_val") if params.get(key)}
    return training_config(path, params["data"], job_output_dir(request), **overrides)


def run_shuffle(sessions: sessionmaker, request: JobRequest, reporter: Reporter) -> dict[str, Any]:
    """Table 1: model.shuffle.run_shuffle_experiment on the current data; its rows become evaluation runs."""
    from db.model_versions import summarize_metrics
    from db.provenance import save_evaluation_run
    from model.shuffle import run_shuffle_experiment

    cfg = _experiment_config(request)
    variants = list(request.params.get("variants") or ["objects"])
    split = request.params.get("eval_split", "val")
    reporter.expect(2 * len(variants))  # a standard and a shuffled-train training per variant
    rows = run_shuffle_experiment(cfg, variants, split, cfg.output_dir, progress_callback=reporter)
    reporter.check_cancel()
    with sessions.begin() as session:
        for row in rows:
            save_evaluation_run(
                session,
                row["variant"],
                row["setting"].replace("_", "-"),
                row["eval_split"],
                {k: v for k, v in summarize_metrics(row).items() if k != "per_label"},
                # the run's architecture as the experiment trained it: the Experiments tables read it from here
                settings={
                    "job": request.id,
                    "model": row["model"],
                    "model_version": row["model_version"],
                    "architecture": row["architecture"],
                },
            )
    return {"rows": len(rows), "out": cfg.output_dir, "variants": variants}


ABLATION_VARIANTS = ("text_only", "vanilla", "no_text_attn", "objects")


def run_ablation(sessions: sessionmaker, request: JobRequest, reporter: Reporter) -> dict[str, Any]:
    """Table 2: model.train.train once per variant with the same settings; each best epoch becomes a run."""
    from db.model_versions import summarize_metrics
    from db.provenance import save_evaluation_run
    from model.train import train

    cfg = _experiment_config(request)
    variants = list(request.params.get("variants") or ABLATION_VARIANTS)
    reporter.expect(len(variants))
    results = {}
    for variant in variants:
        out = Path(cfg.output_dir) / variant
        reporter.watch_history(out / "history.json")
        result = train(replace(cfg, variant=variant, output_dir=str(out)), progress_callback=reporter)
        results[variant] = summarize_metrics(result.best_metrics)
    reporter.check_cancel()
    with sessions.begin() as session:
        for variant, metrics in results.items():
            metrics = {k: v for k, v in metrics.items() if k != "per_label"}
            save_evaluation_run(
                session,
                variant,
                "standard",
                "val",
                metrics,
                settings={"job": request.id, "purpose": "ablation", "architecture": cfg.architecture},
            )
    return {"variants": variants, "f1": {v: m.get("f1") for v, m in results.items()}}


def run_plausibility(sessions: sessionmaker, request: JobRequest, reporter: Reporter) -> dict[str, Any]:
    """The plausibility table of one model version on a dataset's stored rationales (app.services.plausibility,
    what `python -m app.plausibility` runs); the outcome is the table, which the Experiments page shows."""
    from app.services.plausibility import dataset_plausibility

    params = request.params
    reporter.log(
        f"plausibility of {params['model_version']} on {params['dataset']}/{params.get('split', 'val')}"
    )
    result = dataset_plausibility(
        sessions,
        params["dataset"],
        params["model_version"],
        params.get("split", "val"),
        params.get("limit"),
        int(params.get("n_steps", 16)),
        str(feature_cache_dir()),
        progress=reporter,
    )
    return result.to_json()


# the runner of each job kind of db.job_kinds (a test keeps the two in step)
RUNNERS = {
    "first_model": run_training,
    "default_model": run_training,
    "retrain": run_retrain,
    "score": run_score,
    "explanations": run_explanations,
    "grounding": run_grounding,
    "shuffle": run_shuffle,
    "ablation": run_ablation,
    "crossfit": run_crossfit,
    "crossfit_fold": run_crossfit_fold,
    "plausibility": run_plausibility,
}
