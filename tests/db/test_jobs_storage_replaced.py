"""The default job queue storage (var/jobs.db, SQLite) removed or replaced while the app and the worker run: the next
use reopens it, and the worker sends the queued jobs again, so no job stays "queued" forever."""

from __future__ import annotations

import pytest
from huey import SqliteHuey

from app.jobs import enqueue
from app.jobs.queue import QUEUE_NAME, get_queue
from app.worker import check_queue_storage
from db.jobs import get_job


def _pending_in_file(path) -> int:
    return SqliteHuey(QUEUE_NAME, filename=str(path), results=False).pending_count()


@pytest.fixture
def jobs_file(tmp_path, monkeypatch):
    path = tmp_path / "jobs.db"
    monkeypatch.setenv("MRELENS_JOBS_URL", f"sqlite:///{path}")
    get_queue()  # the app and the worker have the storage open before it goes
    return path


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_an_enqueue_after_the_storage_went_lands_in_the_new_file(sessions, jobs_file, how):
    jobs_file.unlink()
    if how == "replaced":
        SqliteHuey(QUEUE_NAME, filename=str(jobs_file), results=False)
    job = enqueue(sessions, "score", "ann", {})
    assert _pending_in_file(jobs_file) == 1
    with sessions() as session:
        assert get_job(session, job).status == "queued"


def test_the_worker_sends_queued_jobs_again_when_the_storage_was_removed(sessions, jobs_file):
    job = enqueue(sessions, "score", "ann", {})
    assert check_queue_storage(sessions) == []  # nothing changed: nothing sent again
    jobs_file.unlink()  # the queued task went with the file
    assert check_queue_storage(sessions) == [job]
    assert _pending_in_file(jobs_file) == 1
