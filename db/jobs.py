"""Every read and write of the jobs table: what the app enqueues and the worker reports.

A job moves queued -> running -> succeeded | failed | cancelled, and never back. Cancelling a queued job ends it at
once; cancelling a running job sets a flag the worker reads at its next progress report. Functions take a Session
and leave committing to the caller, like the rest of db/.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.errors import LabelStoreError
from db.job_kinds import JOB_KINDS, KINDS
from db.models import Job, utcnow
from db.redact import mask_secrets
from db.roles import Actor, PermissionDeniedError

ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = ("succeeded", "failed", "cancelled")
LOG_TAIL_LINES = 40
# a running job whose worker has not reported for this long is taken to be dead (a worker reports every few s)
STALE_AFTER = timedelta(minutes=15)


class JobCancelled(Exception):
    """Raised inside a job when its cancel flag is seen; the job ends as cancelled."""


def this_worker() -> str:
    """host:pid of the calling process, stored on the jobs it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def create_job(
    session: Session,
    kind: str,
    started_by: str,
    params: dict[str, Any] | None = None,
    priority: int | None = None,
) -> Job:
    """A queued job; `priority` defaults to its kind's (db.job_kinds)."""
    if kind not in JOB_KINDS:
        raise LabelStoreError(f"unknown job kind {kind!r}; expected one of {', '.join(JOB_KINDS)}")
    if not started_by or not started_by.strip():
        raise LabelStoreError("a job needs the name of who started it (started_by)")
    priority = KINDS[kind].priority if priority is None else priority
    job = Job(
        kind=kind, started_by=started_by.strip(), params=params or {}, priority=priority, status="queued"
    )
    session.add(job)
    session.flush()
    return job


def create_running_job(
    session: Session, kind: str, started_by: str, params: dict[str, Any] | None = None
) -> Job:
    """A job run by the calling process (a command line) instead of the worker: written already running, on this
    host:pid, so no worker ever takes it; it reports progress and ends (finish_job) like any other job, and shows
    on the Jobs page and wherever its kind's outcomes are read."""
    job = create_job(session, kind, started_by, params)
    now = utcnow()
    job.status, job.worker, job.started_at, job.heartbeat_at = "running", this_worker(), now, now
    session.flush()
    return job


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise LabelStoreError(f"no job with id {job_id}")
    return job


def set_queue_task(session: Session, job_id: int, task_id: str) -> None:
    get_job(session, job_id).queue_task_id = task_id


def list_jobs(session: Session, limit: int = 50, statuses: tuple[str, ...] | None = None) -> list[Job]:
    """Newest first."""
    stmt = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    if statuses:
        stmt = stmt.where(Job.status.in_(statuses))
    return list(session.scalars(stmt))


def pending_jobs(session: Session) -> list[Job]:
    """Queued jobs in the order the worker takes them: higher priority first, then first come."""
    return list(
        session.scalars(
            select(Job).where(Job.status == "queued").order_by(Job.priority.desc(), Job.created_at, Job.id)
        )
    )


def running_jobs(session: Session) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.status == "running").order_by(Job.started_at)))


def latest_job(
    session: Session, kinds: tuple[str, ...], statuses: tuple[str, ...] | None = None
) -> Job | None:
    stmt = select(Job).where(Job.kind.in_(kinds)).order_by(Job.created_at.desc(), Job.id.desc()).limit(1)
    if statuses:
        stmt = stmt.where(Job.status.in_(statuses))
    return session.scalar(stmt)


def start_job(session: Session, job_id: int, worker: str | None = None) -> Job | None:
    """Mark a queued job running; None when it is no longer queued (cancelled meanwhile, or already taken)."""
    now = utcnow()
    taken = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "queued")
        .values(status="running", worker=worker or this_worker(), started_at=now, heartbeat_at=now)
    ).rowcount
    if not taken:
        return None
    job = get_job(session, job_id)
    session.refresh(job)
    return job


def report_progress(
    session: Session, job_id: int, progress: dict[str, Any] | None = None, log_lines: list[str] | None = None
) -> bool:
    """Store progress and new log lines of a running job; returns True when a cancel was requested."""
    job = get_job(session, job_id)
    if progress is not None:
        job.progress = progress
    if log_lines:
        # a job record never keeps a URL password, whatever the job printed (db.redact)
        new = [mask_secrets(line.rstrip()) for line in log_lines]
        lines = (job.log_tail.splitlines() if job.log_tail else []) + new
        job.log_tail = "\n".join(lines[-LOG_TAIL_LINES:])
    job.heartbeat_at = utcnow()
    return bool(job.cancel_requested)


def cancel_requested(session: Session, job_id: int) -> bool:
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def request_cancel(session: Session, job_id: int, actor: Actor | None = None) -> Job:
    """Cancel a job: a queued one ends now, a running one at its next progress report. Final jobs are refused.

    `actor`: a reviewer cancels only a job they started, an admin any job (PermissionDeniedError otherwise,
    nothing changed); None is the local single user, an admin."""
    job = get_job(session, job_id)
    if actor is not None and not actor.is_admin and job.started_by != actor.identity:
        raise PermissionDeniedError(
            f"{actor.identity} is a {actor.role}: job {job_id} was started by {job.started_by}; only they or an "
            "admin may cancel it"
        )
    if job.status in FINAL_STATUSES:
        raise LabelStoreError(f"job {job_id} has already {job.status}; there is nothing to cancel")
    job.cancel_requested = True
    if job.status == "queued":
        job.status, job.finished_at, job.error = "cancelled", utcnow(), "cancelled before it started"
    session.flush()
    return job


def finish_job(
    session: Session,
    job_id: int,
    status: str,
    outcome: dict[str, Any] | None = None,
    error: str | None = None,
) -> Job:
    if status not in FINAL_STATUSES:
        raise LabelStoreError(f"a job ends as one of {', '.join(FINAL_STATUSES)}, not {status!r}")
    job = get_job(session, job_id)
    if job.status in FINAL_STATUSES:
        raise LabelStoreError(f"job {job_id} has already {job.status}")
    error = mask_secrets(error) if error is not None else None  # no URL password in a job record (db.redact)
    job.status, job.outcome, job.error, job.finished_at = status, outcome, error, utcnow()
    session.flush()
    return job


def fail_abandoned_jobs(
    session: Session, alive: callable | None = None, now: datetime | None = None
) -> list[Job]:
    """Jobs left "running" by a worker that is gone become failed, with an error that says so.

    A job is abandoned when its worker ran on this host and that process no longer exists, or when no worker has
    reported on it for STALE_AFTER (a worker on another machine that died). `alive(pid)` is injectable for tests.
    """
    alive = alive or _pid_alive
    now = now or utcnow()
    host = socket.gethostname()
    failed = []
    for job in running_jobs(session):
        worker_host, _, pid = (job.worker or ":").rpartition(":")
        same_host_dead = worker_host == host and pid.isdigit() and not alive(int(pid))
        stale = job.heartbeat_at is None or now - job.heartbeat_at > STALE_AFTER
        if same_host_dead or stale:
            reason = (
                f"its worker ({job.worker}) stopped" if same_host_dead else "its worker stopped reporting"
            )
            job.status, job.finished_at = "failed", now
            job.error = (
                f"interrupted: {reason} while the job was running; nothing it made was registered. "
                "Start it again from the app (Models or Experiments page); the next `make app` queues the first "
                "model, the default recipe and the scoring again where each is missing."
            )
            failed.append(job)
    session.flush()
    return failed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def link_model_version(session: Session, version_id: str, job_id: int) -> None:
    """Record on a model version the job that made it (settings["job"]), for versions registered outside
    app.jobs.runner (app.services.retrain registers its own)."""
    from db.provenance import find_model_version

    version = find_model_version(session, version_id)
    version.settings = {**(version.settings or {}), "job": job_id}
    session.flush()


def jobs_of_kind(session: Session, kind: str, limit: int = 200) -> list[Job]:
    """The latest jobs of one kind, newest first."""
    return list(
        session.scalars(
            select(Job).where(Job.kind == kind).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
        )
    )


def child_jobs(session: Session, parent_id: int, kind: str) -> list[Job]:
    """Jobs of `kind` a job queued (params "parent"), oldest first."""
    return [
        job
        for job in reversed(jobs_of_kind(session, kind, limit=1000))
        if (job.params or {}).get("parent") == parent_id
    ]
