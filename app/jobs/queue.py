"""The task queue: huey, with its embedded SQLite storage by default and Redis by configuration alone.

    MRELENS_JOBS_URL=sqlite:///var/jobs.db      (default: a file under var/, no server to run)
    MRELENS_JOBS_URL=redis://127.0.0.1:6379/0   (several machines share one queue)

huey only carries job ids; what a job is, its progress and its outcome live in the label store's jobs table
(db/jobs.py), so every process reads the same state whichever storage carries the ids. The function that runs a
job (app.jobs.runner.execute_job) is handed to this module by the worker (set_job_runner), so the queue that the app
enqueues into never imports the runners.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from functools import cache
from pathlib import Path

from app.services.paths import REPO_ROOT
from db.redact import mask_secrets

QUEUE_NAME = "mrelens"
TASK_NAME = "mrelens.run_job"


# what a task does with its job id: set by the worker process (app.worker), None in the app's
_job_runner: Callable[[int], object] | None = None


def set_job_runner(runner: Callable[[int], object]) -> None:
    """The function the queue's tasks run with a job id in this process (the worker's app.jobs.runner.execute_job)."""
    global _job_runner
    _job_runner = runner


class JobsConfigError(ValueError):
    """MRELENS_JOBS_URL names a storage huey cannot use here."""


def jobs_url() -> str:
    return os.environ.get("MRELENS_JOBS_URL") or f"sqlite:///{REPO_ROOT / 'var' / 'jobs.db'}"


@cache
def _queue_for(url: str):
    """(huey instance, the task that runs one job) for a storage URL; one pair per URL per process."""
    from huey import PriorityRedisHuey, SqliteHuey

    if url.startswith(("redis://", "rediss://", "unix://")):
        # priorities need the sorted-set storage: a re-scoring job goes before a long training waiting in the queue
        huey = PriorityRedisHuey(QUEUE_NAME, url=url, results=False)
    elif url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey(QUEUE_NAME, filename=str(path), results=False)
        _opened[str(path)] = _file_identity(path)
    else:
        raise JobsConfigError(
            f"MRELENS_JOBS_URL={mask_secrets(url)!r}: expected sqlite:///PATH (default) or redis://HOST:PORT/DB"
        )

    def run_job(job_id: int) -> None:
        if _job_runner is None:
            raise RuntimeError(
                f"job {job_id}: no job runner in this process; jobs run in `python -m app.worker`"
            )
        _job_runner(job_id)

    task = huey.task(name=TASK_NAME)(run_job)
    return huey, task


def get_queue(url: str | None = None):
    """The huey instance of `url` (default: MRELENS_JOBS_URL), its SQLite file reopened if it was removed or
    replaced since (reopen_if_replaced)."""
    huey = _queue_for(url or jobs_url())[0]
    reopen_if_replaced(huey)
    return huey


# SQLite storage file -> (device, inode) when this process opened it
_opened: dict[str, tuple[int, int] | None] = {}


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


def reopen_storage_if_replaced(url: str | None = None) -> bool:
    """reopen_if_replaced for the queue of `url` (default: MRELENS_JOBS_URL); whether it reopened."""
    return reopen_if_replaced(_queue_for(url or jobs_url())[0])


def reopen_if_replaced(huey) -> bool:
    """For SQLite storage: when its file was removed or replaced since this process opened it (an open connection
    would go on writing into the old, unlinked file, which nobody else reads), close the connection and open the
    file at its path again, creating its tables if it is new. Returns whether it reopened."""
    filename = getattr(huey.storage, "filename", None)
    if filename is None:  # Redis: nothing to reopen
        return False
    path = Path(filename)
    now = _file_identity(path)
    if now is not None and now == _opened.get(str(path)):
        return False
    huey.storage.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    huey.storage.initialize_schema()
    _opened[str(path)] = _file_identity(path)
    return True


def job_task(url: str | None = None):
    return _queue_for(url or jobs_url())[1]


def storage_errors() -> tuple[type[BaseException], ...]:
    """What opening the queue storage raises when it is unusable: a corrupt SQLite file, an unreachable Redis."""
    errors: tuple[type[BaseException], ...] = (sqlite3.DatabaseError, OSError, ConnectionError)
    try:
        from redis.exceptions import RedisError
    except ImportError:  # redis is optional: without it only SQLite storage exists
        return errors
    return (*errors, RedisError)
