"""The jobs as the Jobs and Experiments pages show them, without Streamlit: plain frozen views of the job rows
(read inside one session, so nothing is loaded after it closes), their progress in words, errors and logs masked.

    job_board(sessions, limit) -> JobBoard         running, queued (in the order the worker takes them), recent
    live_jobs(sessions, kinds) -> list[JobView]    running then queued, optionally of some kinds only
    progress_text(job) -> str                      "epoch 1/3 · step 40/120 · about 3m05s left · latest val F1 51.2"
    outcome_text(outcome) -> str                   "model X · val micro-F1 97.50 % · activated · scoring job 3"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import sessionmaker

from app.services.model_status import job_name
from db.jobs import list_jobs, pending_jobs, running_jobs
from db.models import Job
from db.redact import mask_secrets


@dataclass(frozen=True)
class JobView:
    """One job as a page shows it (a db.models.Job row copied out of its session)."""

    id: int
    kind: str
    name: str  # what it does, in words (app.services.model_status.job_name)
    params: dict[str, Any] = field(hash=False)
    started_by: str
    status: str
    priority: int
    worker: str | None
    cancel_requested: bool
    progress: dict[str, Any] = field(hash=False)  # fraction, step, epoch, eta_s, val_f1, message
    log_tail: str | None  # secrets masked
    error: str | None  # secrets masked (rows stored before errors were masked included)
    outcome: dict[str, Any] = field(hash=False)
    created_at: datetime

    @property
    def fraction(self) -> float:
        return min(1.0, self.progress.get("fraction", 0.0))

    @property
    def finished(self) -> bool:
        return self.status not in ("queued", "running")


def job_view(job: Job) -> JobView:
    return JobView(
        id=job.id,
        kind=job.kind,
        name=job_name(job),
        params=dict(job.params or {}),
        started_by=job.started_by,
        status=job.status,
        priority=job.priority,
        worker=job.worker,
        cancel_requested=bool(job.cancel_requested),
        progress=dict(job.progress or {}),
        log_tail=mask_secrets(job.log_tail) if job.log_tail else job.log_tail,
        error=mask_secrets(job.error) if job.error else job.error,
        outcome=dict(job.outcome or {}),
        created_at=job.created_at,
    )


@dataclass(frozen=True)
class JobBoard:
    running: list[JobView]
    pending: list[JobView]  # in the order the worker takes them
    recent: list[JobView]  # the latest jobs of every status, newest first


def job_board(sessions: sessionmaker, limit: int = 50) -> JobBoard:
    """Running and queued jobs, and the latest `limit` of every status (none with limit=0: a poll of the first two)."""
    with sessions() as session:
        return JobBoard(
            [job_view(job) for job in running_jobs(session)],
            [job_view(job) for job in pending_jobs(session)],
            [job_view(job) for job in list_jobs(session, limit=limit)] if limit else [],
        )


def live_jobs(sessions: sessionmaker, kinds: tuple[str, ...] | None = None) -> list[JobView]:
    """The jobs running now, then the queued ones; only those of `kinds` when given."""
    with sessions() as session:
        jobs = running_jobs(session) + pending_jobs(session)
        return [job_view(job) for job in jobs if kinds is None or job.kind in kinds]


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return (
        f"{seconds // 3600}h{seconds // 60 % 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def progress_text(job: JobView) -> str:
    """A job's progress in words (part, epoch, step or its own message, time left, latest val F1); at least the
    share done once it reported one; empty before it reported anything."""
    job_progress = job.progress
    parts = []
    if job_progress.get("parts", 1) > 1:
        parts.append(f"part {job_progress['part']}/{job_progress['parts']}")
    if job_progress.get("epoch"):
        parts.append(f"epoch {job_progress['epoch']}/{job_progress['epochs']}")
    if job_progress.get("step") and not job_progress.get("epoch") and job_progress.get("message"):
        # a job without epochs (scoring, explanations, grounding) says what it counts: "explanations: 5/8 pairs"
        parts.append(job_progress["message"])
    elif job_progress.get("step"):
        parts.append(
            f"step {job_progress['step']}"
            + (f"/{job_progress['steps']}" if job_progress.get("steps") else "")
        )
    if job.status == "running" and job_progress.get("eta_s") is not None:
        parts.append(f"about {duration(job_progress['eta_s'])} left")
    if job_progress.get("val_f1") is not None:
        parts.append(f"latest val F1 {100 * job_progress['val_f1']:.1f} %")
    text = " · ".join(parts) or job_progress.get("message", "")
    if not text and job_progress.get("fraction"):
        # a job that reports only its fraction: the text says what the bar shows, never "starting ..."
        text = f"{100 * job_progress['fraction']:.0f} % done"
    return text


# The outcome keys the runners write, in words ("val_f1" -> "val micro-F1"); another key reads with spaces.
OUTCOME_WORDS = {
    "model_version": "model",
    "val_f1": "val micro-F1",
    "val_f1_before": "val micro-F1 before",
    "previous_active": "active before",
    "previous_val_f1": "val micro-F1 of the one active before",
    "score_job": "scoring job",
    "explain_job": "explanations job",
    "identical_to_registered": "identical to a registered version",
    "parent": "part of job",
    "fold_val_f1": "fold val micro-F1",
    "crossfit_run": "label-error run",
}


def _outcome_value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and key.endswith("f1"):
        return f"{100 * value:.2f} %"  # F1 is stored as a fraction; every page shows it in percent
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_outcome_value(key, v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_outcome_value(key, v) for v in value)
    return str(value)


def outcome_text(outcome: dict[str, Any]) -> str:
    """A finished job's outcome in words: "model X · val micro-F1 97.50 % · activated · scoring job 3" (F1 in
    percent, flags as words, nothing for a missing or empty value)."""
    parts = []
    for key, value in outcome.items():
        if value is None or value == [] or value == {}:
            continue
        if key == "fold" and isinstance(value, int):
            parts.append(f"fold {value + 1}")  # stored from 0; the job's log counts folds from 1 ("fold 2/5")
            continue
        if key == "activated":
            parts.append("activated" if value else "not activated")
            continue
        if key == "already_active":
            parts.append("already the active version" if value else "")
            continue
        parts.append(f"{OUTCOME_WORDS.get(key, key.replace('_', ' '))} {_outcome_value(key, value)}")
    return " · ".join(part for part in parts if part)


def job_rows(jobs: list[JobView]) -> list[dict[str, Any]]:
    """The All jobs table's rows."""
    return [
        {
            "job": job.id,
            "kind": job.name,
            "started by": job.started_by,
            "status": job.status,
            "progress %": 100 * job.progress.get("fraction", 0.0),
            "created": job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            "outcome": outcome_text(job.outcome),
            "error": job.error or "",
        }
        for job in jobs
    ]
