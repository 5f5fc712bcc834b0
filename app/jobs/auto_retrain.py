"""Retraining that starts by itself: every N new review decisions of a dataset (db.loop's schedule, off by default),
the worker queues the same "retrain" job the Models page queues, from the active model on the dataset's curated
labels. The job activates its model only if its val micro-F1 beats the active model's (app.jobs.runner's
activate_if_better, the rule of every training job).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from db.jobs import ACTIVE_STATUSES, jobs_of_kind
from db.loop import due_schedules, mark_scheduled
from db.model_versions import active_model

AUTO_RETRAIN_BY = "auto-retrain"
POLL_SECONDS = 30.0


def retrain_params(base: str, data: str, dataset: str, epochs: int) -> dict:
    """The parameters of a "retrain" job (the Models page's button and the schedule queue the same job)."""
    return {
        "base": base,
        "data": data,
        "dataset": dataset,
        "epochs": int(epochs),
        "limit_train": None,
        "limit_val": None,
    }


def schedule_due_retrains(sessions: sessionmaker, enqueue: Callable[..., int] | None = None) -> list[int]:
    """Queue a retraining for every dataset whose schedule is due; returns the new job ids.

    A dataset gets no second retraining while one of its retraining jobs is queued or running (its decisions
    keep counting), nor one without an active model to start from or a source folder to read from (counting starts
    again, with the reason in the log, so a dataset that cannot be retrained does not fill the queue).
    """
    if enqueue is None:
        from app.jobs import enqueue
    log = logging.getLogger("mrelens.jobs")
    queued = []
    with sessions() as session:
        due = due_schedules(session)
        base = active_model(session)
        busy = {
            (job.params or {}).get("dataset")
            for job in jobs_of_kind(session, "retrain", limit=50)
            if job.status in ACTIVE_STATUSES
        }
    for dataset, source, schedule in due:
        if dataset in busy:
            continue
        job_id = None
        if base is None:
            log.warning("auto-retrain of %s is due, but no model is active to start from", dataset)
        elif not source or not (Path(source) / "ours_rel2id.json").is_file():
            # the retraining reads the dataset's MNRE-layout folder, as the Models page's button requires
            log.warning(
                "auto-retrain of %s is due, but its source folder %s is not on this machine", dataset, source
            )
        else:
            job_id = enqueue(
                sessions,
                "retrain",
                f"{AUTO_RETRAIN_BY} (every {schedule.every} decisions)",
                retrain_params(base.version_id, source, dataset, schedule.epochs),
            )
            queued.append(job_id)
            log.info(
                "auto-retrain of %s after %d new decisions: job %s", dataset, schedule.new_decisions, job_id
            )
        with sessions.begin() as session:
            mark_scheduled(session, dataset, job_id)
    return queued


def watch_schedules(sessions: sessionmaker, stop: threading.Event, every: float = POLL_SECONDS) -> None:
    """Worker thread: schedule_due_retrains every `every` seconds until `stop` is set."""
    log = logging.getLogger("mrelens.jobs")
    while not stop.wait(every):
        try:
            schedule_due_retrains(sessions)
        except Exception:
            # a store that is briefly unreachable must not end the thread; the next poll tries again
            log.exception("auto-retrain: could not check the schedules")
