"""Find label errors: start a run, follow it, cancel it, export its suspects. No Streamlit: the Label errors page,
the command line and the tests call these.

    python -m app.label_errors find --dataset mnre [--folds 5] [--config configs/crossfit.yaml]
    python -m app.label_errors status --dataset mnre
    python -m app.label_errors export --dataset mnre --format csv|labelstudio --out suspects.csv [--top 200]

`find` queues the crossfit job (a worker runs it: `make worker`, or the one `make app` starts); the folds and the
merge are app.jobs.crossfit's.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.services.job_board import duration
from db.errors import LabelStoreError
from db.jobs import child_jobs, get_job, jobs_of_kind
from db.label_errors import DEFAULT_SUSPECTS as DEFAULT_SUSPECTS  # the page's default top
from db.models import Job, utcnow
from db.roles import Actor

ACTIVE = ("queued", "running")


class LabelErrorsRunning(LabelStoreError):
    """A Find label errors run of the dataset is still queued or running."""


@dataclass
class RunProgress:
    """Where the dataset's latest Find label errors run stands."""

    plan: Job
    folds: list[Job]  # the fold jobs (empty until the plan ran)
    done: int  # folds succeeded
    fraction: float
    eta_s: float | None
    status: str  # "planning", "running", "succeeded" (stored), "failed", "cancelled"
    message: str


def latest_plan(session: Session, dataset: str) -> Job | None:
    plans = [job for job in jobs_of_kind(session, "crossfit") if (job.params or {}).get("dataset") == dataset]
    return plans[0] if plans else None


def run_progress(session: Session, dataset: str) -> RunProgress | None:
    plan = latest_plan(session, dataset)
    if plan is None:
        return None
    folds = child_jobs(session, plan.id, "crossfit_fold")
    # a fold queued again after a worker restart replaces the interrupted one
    by_fold: dict[int, Job] = {}
    for job in folds:
        by_fold[int(job.params["fold"])] = job
    latest = [by_fold[k] for k in sorted(by_fold)]
    n = int((plan.outcome or {}).get("folds") or (plan.params or {}).get("folds") or 5)
    done = sum(job.status == "succeeded" for job in latest)
    running = [job for job in latest if job.status == "running"]
    fraction = (done + sum((job.progress or {}).get("fraction", 0.0) for job in running)) / max(1, n)
    if plan.status == "queued":
        # behind another job in the worker: nothing is planned yet ("planning" read as under way)
        status, message = (
            "planning",
            f"queued as job {plan.id}: its {n} folds are planned when the worker takes it",
        )
    elif plan.status == "running":
        status, message = "planning", f"planning the {n} folds (job {plan.id})"
    elif plan.status != "succeeded":
        status, message = plan.status, f"planning {plan.status}: {plan.error or ''}".strip()
    elif any(job.status == "cancelled" for job in latest) and not any(
        job.status == "failed" for job in latest
    ):
        # a cancelled run cancels its waiting folds at once and the running one at its next step: the run was
        # cancelled, not "fold 2" on its own
        status = "cancelled"
        message = (
            f"the run was cancelled (job {plan.id}; {done} of {n} folds had finished): nothing was stored"
        )
    elif any(job.status in ("failed", "cancelled") for job in latest):
        bad = next(job for job in latest if job.status in ("failed", "cancelled"))
        status = bad.status
        message = f"fold {int(bad.params['fold']) + 1} {bad.status} (job {bad.id}): nothing was stored"
    elif done == n and any("crossfit_run" in (job.outcome or {}) for job in latest):
        status, message = "succeeded", f"{n} of {n} folds done; the run is stored"
    else:
        status, message = (
            "running",
            f"{done} of {n} folds done" + (f", {len(running)} training" if running else ""),
        )
    eta = crossfit_eta(plan, latest, n, done) if status == "running" else None
    return RunProgress(plan, latest, done, min(fraction, 1.0), eta, status, message)


def crossfit_eta(plan: Job, folds: list[Job], n: int, done: int) -> float | None:
    """Seconds left, from the measured rate: finished folds' durations, else the running fold's own estimate."""
    durations = [
        (job.finished_at - job.started_at).total_seconds()
        for job in folds
        if job.status == "succeeded" and job.started_at and job.finished_at
    ]
    running = [job for job in folds if job.status == "running"]
    left_running = [(job.progress or {}).get("eta_s") for job in running]
    if durations:
        per_fold = sum(durations) / len(durations)
    elif left_running and left_running[0] is not None and running[0].started_at:
        per_fold = (utcnow() - running[0].started_at).total_seconds() + left_running[0]
    else:
        return None
    waiting = n - done - len(running)
    current = sum(x for x in left_running if x is not None)
    return current + waiting * per_fold


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "time left unknown until the first steps are measured"
    # written as the Jobs page writes a job's time left ("16m31s", never "0:16:31" beside it)
    return f"about {duration(seconds)} left (done ~{utcnow() + timedelta(seconds=seconds):%H:%M} UTC)"


def start_find_label_errors(
    sessions: sessionmaker,
    dataset: str,
    started_by: str,
    actor: Actor | None = None,
    folds: int = 5,
    config: str | None = None,
) -> int:
    """Queue the crossfit job for `dataset` (admins; refused while a run of it is queued or running)."""
    from app.jobs import enqueue
    from db.label_errors import require_dataset_id

    with sessions() as session:
        require_dataset_id(session, dataset)
        progress = run_progress(session, dataset)
    if progress is not None and progress.status in ("planning", "running"):
        raise LabelErrorsRunning(
            f"Find label errors is already running on {dataset!r} (job {progress.plan.id}): {progress.message}"
        )
    params: dict = {"dataset": dataset, "folds": int(folds)}
    if config:
        params["config"] = config
    return enqueue(sessions, "crossfit", started_by, params, actor=actor)


def cancel_run(sessions: sessionmaker, plan_id: int, actor: Actor | None = None) -> list[int]:
    """Cancel the plan if it has not run, and every fold job not yet finished; returns the jobs asked to stop."""
    from app.jobs import cancel

    with sessions() as session:
        folds = [job.id for job in child_jobs(session, plan_id, "crossfit_fold") if job.status in ACTIVE]
        plan_active = get_job(session, plan_id).status in ACTIVE
    targets = ([plan_id] if plan_active else []) + folds
    for job_id in targets:
        cancel(sessions, job_id, actor)
    return targets


@dataclass(frozen=True)
class SuspectReview:
    """What the Label errors page lists for a finished run: the audit's progress, the top suspects and each one's
    review state in the queue (pair id -> queue item)."""

    audit: Any
    rows: list
    states: dict[int, Any]


def datasets_with_labels(sessions: sessionmaker) -> tuple[list[str], list[str]]:
    """(the datasets label errors can run on: those with a label map, the others by name). A dataset without one
    (the posts added on the Add post page) has no label columns for the fold models' probabilities."""
    from db.datasets import list_datasets

    with sessions() as session:
        datasets = list_datasets(session)
        return (
            [dataset.name for dataset in datasets if dataset.label_map],
            [dataset.name for dataset in datasets if not dataset.label_map],
        )


def finished_run(sessions: sessionmaker, dataset: str):
    """The dataset's latest finished Find label errors run (db.label_errors.latest_run), or None."""
    from db.label_errors import latest_run

    with sessions() as session:
        return latest_run(session, dataset)


def suspect_review(sessions: sessionmaker, dataset: str, top: int) -> SuspectReview:
    from db.label_errors import audit_progress, suspects
    from db.review_queue import QueueFilter, review_queue

    with sessions() as session:
        queue = review_queue(session, QueueFilter(dataset=dataset, suspects=top), "label_error", limit=top)
        return SuspectReview(
            audit_progress(session, dataset),
            suspects(session, dataset, top),
            {item.pair_id: item for item in queue},
        )


def export_top_suspects(sessions: sessionmaker, dataset: str, path: Path, fmt: str, top: int) -> Path:
    """The top suspects of the latest run written to `path` (csv, or Label Studio tasks: fmt "labelstudio")."""
    from db.label_errors import export_suspects

    with sessions() as session:
        return export_suspects(session, dataset, path, fmt, top).paths[0]


def latest_progress(sessions: sessionmaker, dataset: str) -> RunProgress | None:
    """run_progress in its own session."""
    with sessions() as session:
        return run_progress(session, dataset)


def run_summary(run, audit) -> str:
    """One line on a finished run: when, how many folds, the fold models' val micro-F1 range, the ranking method and
    how many pairs the audit decided."""
    fold_f1 = [m["val_f1"] for m in run.settings.get("fold_models", []) if m.get("val_f1") is not None]
    f1_range = (
        f", fold models' val micro-F1 {min(fold_f1) * 100:.1f}-{max(fold_f1) * 100:.1f} %" if fold_f1 else ""
    )
    return (
        f"Run {run.id} of {run.created_at:%Y-%m-%d %H:%M} UTC: {run.folds} folds{f1_range}; ranked by cleanlab's "
        f"{run.method.replace('_', ' ')}; {audit.in_audit} pairs decided in the audit."
    )


def fold_weakness(run) -> str | None:
    """Why a run's suspects are worth little, in words, when its weakest fold model falls below the weak-model
    line (app.services.model_status.WEAK_F1); None otherwise. Text-only fold models stay at chance on data whose
    label the image decides (the synthetic demo set), which is why the fold recipe follows the data
    (app.jobs.crossfit); a recipe named by MRELENS_CROSSFIT_CONFIG keeps its own variant."""
    from app.services.model_status import WEAK_F1

    fold_f1 = [m["val_f1"] for m in run.settings.get("fold_models", []) if m.get("val_f1") is not None]
    if not fold_f1 or min(fold_f1) >= WEAK_F1:
        return None
    return (
        f"The fold models are weak (val micro-F1 down to {min(fold_f1) * 100:.1f} %, below {WEAK_F1 * 100:.0f} %): "
        "their ranking is close to chance and the suggested labels are mostly noise. A stronger fold recipe "
        "(more epochs; an image-reading variant where the image decides the label) named by "
        "MRELENS_CROSSFIT_CONFIG may do better: the run's log says which recipe and variant the folds used."
    )


def suspect_rows(review: SuspectReview) -> list[dict]:
    """The suspects as table rows, each with its review state in the queue ("unreviewed" when it has none)."""
    states = review.states
    return [
        {
            "rank": s.rank,
            "pair": s.pair_id,
            "split": s.split,
            "text": s.text,
            "head": s.head,
            "tail": s.tail,
            "gold": s.given_label,
            "suggested": s.suggested_label,
            "p(suggested)": s.suggested_probability,
            "p(gold)": s.given_probability,
            "flagged": s.flagged,
            "status": states[s.pair_id].status if s.pair_id in states else "unreviewed",
        }
        for s in review.rows
    ]


def unreviewed_suspects(review: SuspectReview) -> list[int]:
    """The suspects' pair ids still unreviewed in the queue, in rank order: what the audit walks."""
    states = review.states
    return [
        s.pair_id for s in review.rows if s.pair_id in states and states[s.pair_id].status == "unreviewed"
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.label_errors", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="default: $DATABASE_URL, else sqlite var/mrelens.db")
    sub = parser.add_subparsers(dest="command", required=True)
    find = sub.add_parser("find", help="queue Find label errors on a dataset")
    find.add_argument("--dataset", required=True)
    find.add_argument("--folds", type=int, default=5)
    find.add_argument("--config", help="fold recipe (a model.train YAML); default configs/crossfit.yaml")
    find.add_argument(
        "--as", dest="started_by", default="command line", help="who starts it (kept on the job)"
    )
    status = sub.add_parser("status", help="where the latest run stands")
    status.add_argument("--dataset", required=True)
    export = sub.add_parser("export", help="write the suspects of the latest run for expert review")
    export.add_argument("--dataset", required=True)
    export.add_argument("--format", choices=("csv", "labelstudio"), default="csv")
    export.add_argument("--out", required=True)
    export.add_argument("--top", type=int, default=200)
    args = parser.parse_args(argv)

    from db.label_errors import export_suspects
    from db.schema import open_database

    try:
        engine, sessions = open_database(args.database_url, "read" if args.command != "find" else "write")
    except LabelStoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        if args.command == "find":
            job_id = start_find_label_errors(
                sessions, args.dataset, args.started_by, folds=args.folds, config=args.config
            )
            print(
                f"queued Find label errors on {args.dataset!r} as job {job_id}; a worker runs it (make worker)"
            )
        elif args.command == "status":
            with sessions() as session:
                progress = run_progress(session, args.dataset)
            print("no run yet" if progress is None else f"{progress.status}: {progress.message}")
        else:
            with sessions() as session:
                report = export_suspects(session, args.dataset, args.out, args.format, args.top)
            print(f"wrote {report.rows} suspects to {args.out}")
    except (LabelStoreError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
