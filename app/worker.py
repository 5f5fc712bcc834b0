"""The job worker: a huey consumer that runs the jobs the app and the launcher enqueue.

    python -m app.worker [--threads N] [--workers N] [--nice N]

--threads (MRELENS_WORKER_THREADS, default 1) is the worker's CPU budget in torch threads, so that the app stays
responsive beside a training; --nice (MRELENS_WORKER_NICE, default 10) lowers its scheduling priority for the same
reason; --workers (MRELENS_WORKER_CONCURRENCY, default 1) is how many jobs run at once (one: one training at a
time, the rest wait in the queue, scoring jobs first). On start, jobs left "running" by a worker that died are
marked failed, and queued jobs whose queue message is gone are sent again. Ctrl-C (SIGINT) or SIGTERM stops the
running job at its next progress report (it ends as failed, nothing registered) and exits.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading

from db.redact import MaskSecretsFilter, mask_secrets


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise SystemExit(f"error: ${name}={value!r} is not an integer") from None


def check_queue_storage(sessions) -> list[int]:
    """Reopen the queue's SQLite file if it was removed or replaced while the worker ran (app.jobs.queue
    .reopen_if_replaced), then send again the queued jobs its storage no longer holds; returns their ids."""
    from app.jobs import requeue_lost
    from app.jobs.queue import reopen_storage_if_replaced

    if not reopen_storage_if_replaced():
        return []
    return requeue_lost(sessions)


def _watch_queue_storage(sessions, log: logging.Logger, every: float = 2.0) -> None:
    """Worker thread: every `every` seconds, check_queue_storage; a job sent again is logged."""
    import time

    from app.jobs.queue import storage_errors
    from app.jobs.runner import STOP

    while not STOP.is_set():
        time.sleep(every)
        try:
            for job_id in check_queue_storage(sessions):
                log.warning("the queue storage was removed or replaced: job %s sent again", job_id)
        except storage_errors() as err:  # a storage gone bad while running: said, checked again next time
            log.error("the job queue storage cannot be used: %s", err)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.worker", description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=_env_int("MRELENS_WORKER_THREADS", 1))
    ap.add_argument("--workers", type=int, default=_env_int("MRELENS_WORKER_CONCURRENCY", 1))
    ap.add_argument("--nice", type=int, default=_env_int("MRELENS_WORKER_NICE", 10))
    args = ap.parse_args(argv)
    if args.threads < 1 or args.workers < 1:
        print("error: --threads and --workers must be at least 1", file=sys.stderr)
        return 2
    # before torch is imported: its OpenMP pool reads these once
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    if args.nice:
        os.nice(args.nice)
    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="[worker %(asctime)s] %(message)s", datefmt="%H:%M:%S")
    for handler in logging.getLogger().handlers:  # no URL password reaches the log, whoever logs it
        handler.addFilter(MaskSecretsFilter())
    for noisy in ("huey", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    log = logging.getLogger("mrelens.jobs")

    from huey.consumer import Consumer

    from app.jobs import requeue_lost
    from app.jobs.crossfit import requeue_interrupted_folds
    from app.jobs.queue import JobsConfigError, get_queue, jobs_url, set_job_runner, storage_errors
    from app.jobs.runner import STOP, execute_job, worker_sessions
    from db.jobs import fail_abandoned_jobs

    set_job_runner(execute_job)  # the queue's tasks run jobs through the runners in this process only

    try:
        queue = get_queue()
        queue.pending_count()  # opens the storage: a corrupt var/jobs.db fails here, not in the consumer
    except JobsConfigError as err:
        print(f"error: {mask_secrets(err)}", file=sys.stderr)
        return 2
    except storage_errors() as err:
        print(
            f"error: MRELENS_JOBS_URL {mask_secrets(jobs_url())}: the job queue storage cannot be used "
            f"({mask_secrets(err)}); for the default SQLite file, remove it (queued jobs are sent again from the "
            "label store when the worker starts)",
            file=sys.stderr,
        )
        return 2
    sessions = worker_sessions()
    with sessions.begin() as session:
        interrupted = fail_abandoned_jobs(session)
        for job in interrupted:
            log.warning("job %s (%s) was left running by a stopped worker: marked failed", job.id, job.kind)
        session.expunge_all()
    for job_id in requeue_interrupted_folds(sessions, interrupted):
        log.warning("job %s: an interrupted fold of Find label errors, queued again", job_id)
    for job_id in requeue_lost(sessions):
        log.warning("job %s was queued but missing from the queue storage: sent again", job_id)

    class JobConsumer(Consumer):
        def _handle_signal(self, signum, frame):
            STOP.set()  # the running job raises at its next progress report instead of running to its end
            super()._handle_signal(signum, frame)

    # a removed or replaced var/jobs.db would leave new jobs queued forever: watch it (SQLite storage only)
    if getattr(queue.storage, "filename", None):
        threading.Thread(
            target=_watch_queue_storage, args=(sessions, log), name="queue-storage-watch", daemon=True
        ).start()
    # retraining every N new decisions, for the datasets whose schedule is on (app.jobs.auto_retrain; off by default)
    from app.jobs.auto_retrain import watch_schedules

    threading.Thread(target=watch_schedules, args=(sessions, STOP), name="auto-retrain", daemon=True).start()
    consumer = JobConsumer(
        queue, workers=args.workers, worker_type="thread", periodic=False, max_delay=1.0, shutdown_timeout=120
    )
    log.info(
        "worker up: %d job(s) at a time, %d torch thread(s), nice %d, queue %s",
        args.workers,
        args.threads,
        args.nice,
        mask_secrets(jobs_url()),
    )
    consumer.run()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C before the consumer took over its signals: nothing was running
        sys.exit(130)
