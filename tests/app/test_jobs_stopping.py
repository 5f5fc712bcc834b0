"""A worker that is stopping takes no new job: the launcher's Ctrl-C saw it start the default recipe after the
running job was interrupted, and then waited 60 s before killing it."""

from __future__ import annotations

from db.jobs import create_job
from db.models import Job
from tests.app.test_jobs import job_env  # noqa: F401  (fixture)


def test_a_stopping_worker_leaves_the_next_job_queued(job_env):  # noqa: F811
    from app.jobs.runner import STOP, execute_job

    sessions = job_env["sessions"]
    with sessions.begin() as session:
        job_id = create_job(session, "default_model", "tester", {"data": str(job_env["data"])}).id
    STOP.set()
    try:
        assert execute_job(job_id, sessions) is None
    finally:
        STOP.clear()
    with sessions() as session:
        job = session.get(Job, job_id)
        # still queued, never started: the next worker sends it again (app.jobs.requeue_lost) and runs it
        assert (job.status, job.started_at, job.worker) == ("queued", None, None)
