"""Long work off the page: the app and the launcher enqueue jobs, `python -m app.worker` runs them.

    enqueue(sessions, kind, started_by, params)   a jobs row (db/jobs.py) + a huey task carrying its id
    cancel(sessions, job_id)                      queued: ends now; running: at the job's next progress report
    requeue_lost(sessions)                        queued rows whose huey task is gone get a new one

The kinds, their priorities, names and what each registers are one table, db.job_kinds.JOB_KIND_TABLE: first_model,
default_model (train from a config file), retrain (from curated labels), score (store a model version's predictions
for the queue; after an activation it queues an explanations job), explanations (precompute Inspect's results for
the top N pairs of the queue with app.services.stored_explanations), grounding (batch grounding of a dataset), shuffle (Table 1),
ablation (Table 2), crossfit (Find label errors: plans the folds and queues one crossfit_fold job per fold; the last
fold merges and stores the run, app.jobs.crossfit), plausibility (the plausibility table of a model version on a
dataset's stored rationales, app.services.plausibility; its outcome is the table). The worker runs each kind through its runner in
app.jobs.runner.RUNNERS, each the project's one function for that work.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import sessionmaker

from app.jobs.queue import get_queue, job_task
from db.errors import LabelStoreError
from db.job_kinds import JOB_KINDS, job_kind
from db.jobs import create_job, finish_job, pending_jobs, request_cancel, set_queue_task
from db.roles import Actor, require_admin


def enqueue(
    sessions: sessionmaker,
    kind: str,
    started_by: str,
    params: dict[str, Any] | None = None,
    priority: int | None = None,
    actor: Actor | None = None,
) -> int:
    """Create the job row, then hand its id to the queue; returns the job id. `priority` defaults to the kind's.

    Training jobs make or change models: admins only (db.roles); `actor` None is the local single user.
    """
    spec = job_kind(kind)
    if spec is None:
        raise LabelStoreError(f"unknown job kind {kind!r}; expected one of {', '.join(JOB_KINDS)}")
    if spec.trains:
        require_admin(actor, f"start a {kind} job")
    priority = spec.priority if priority is None else priority
    with sessions.begin() as session:
        job_id = create_job(session, kind, started_by, params, priority).id
    _send(sessions, job_id, priority)
    return job_id


def _send(sessions: sessionmaker, job_id: int, priority: int) -> None:
    try:  # opening a corrupt storage fails already in job_task()
        task = job_task().s(job_id, priority=priority)
        get_queue().enqueue(task)
    except Exception as err:
        # the queue's storage is unreachable: the row must not look queued forever
        with sessions.begin() as session:
            finish_job(session, job_id, "failed", error=f"could not enqueue: {type(err).__name__}: {err}")
        raise
    with sessions.begin() as session:
        set_queue_task(session, job_id, task.id)


def cancel(sessions: sessionmaker, job_id: int, actor: Actor | None = None) -> str:
    """Request a cancel; returns the job's status afterwards ("cancelled" or "running" until it stops).

    `actor`: a reviewer cancels only their own job, an admin any (db.jobs.request_cancel); None: the local user."""
    with sessions.begin() as session:
        job = request_cancel(session, job_id, actor)
        status, task_id = job.status, job.queue_task_id
    if status == "cancelled" and task_id:
        get_queue().revoke_by_id(task_id)  # the worker would skip it anyway; this keeps the queue short
    return status


def requeue_lost(sessions: sessionmaker) -> list[int]:
    """Queued jobs whose task is no longer in the queue's storage (e.g. var/jobs.db removed) are sent again."""
    waiting = {task.args[0] for task in get_queue().pending() if task.args}
    lost = []
    with sessions() as session:
        queued = [(job.id, job.priority) for job in pending_jobs(session)]
    for job_id, priority in queued:
        if job_id not in waiting:
            _send(sessions, job_id, priority)
            lost.append(job_id)
    return lost
