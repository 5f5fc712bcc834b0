"""The task queue hands jobs to the worker by their kind's priority (db.job_kinds), not first come: a scoring job
queued after a training runs before it, and so does the explanation precompute, as the worker takes them."""

from __future__ import annotations

import pytest

from app.jobs import enqueue
from app.jobs.queue import get_queue
from db.schema import open_database


@pytest.fixture
def sessions(tmp_path):
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'store.db'}")
    yield sessions
    engine.dispose()


def taken_order() -> list[int]:
    """The job ids in the order the worker's queue gives them out (empties the queue)."""
    queue, order = get_queue(), []
    while (task := queue.dequeue()) is not None:
        order.append(task.args[0])
    return order


def test_the_worker_takes_jobs_by_their_kinds_priority(sessions):
    default = enqueue(sessions, "default_model", "make app", {})
    first = enqueue(sessions, "first_model", "make app", {})
    explaining = enqueue(sessions, "explanations", "ann", {"top": 3})
    scoring = enqueue(sessions, "score", "ann", {})
    assert taken_order() == [scoring, explaining, first, default]
