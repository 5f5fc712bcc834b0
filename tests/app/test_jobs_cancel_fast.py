"""The worker's cancel check, fast: a fake runner reports progress, a cancel arrives while it runs, and its next
progress report ends the job as cancelled with nothing after that point run (the 70 s worker test checks the same
with a real training)."""

from __future__ import annotations

import pytest

from db.jobs import create_job, request_cancel
from db.models import Job
from db.schema import open_database


@pytest.fixture
def sessions(tmp_path):
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'store.db'}")
    yield sessions
    engine.dispose()


def fake_runner(steps_done: list[str], cancel_after: int | None):
    def run(sessions, request, reporter):
        for step in range(5):
            reporter((step + 1) / 5, f"step {step + 1}/5")
            steps_done.append(f"step {step + 1}")
            if cancel_after == step + 1:
                with sessions.begin() as session:  # the Jobs page's Cancel, while the job runs
                    assert request_cancel(session, request.id).status == "running"
        steps_done.append("registered")
        return {"steps": len(steps_done)}

    return run


@pytest.mark.parametrize(("cancel_after", "status"), [(2, "cancelled"), (None, "succeeded")])
def test_a_cancel_stops_the_job_at_its_next_progress_report(sessions, monkeypatch, cancel_after, status):
    import app.jobs.runner as runner

    steps_done: list[str] = []
    monkeypatch.setitem(runner.RUNNERS, "grounding", fake_runner(steps_done, cancel_after))
    with sessions.begin() as session:
        job_id = create_job(session, "grounding", "tester").id
    assert runner.execute_job(job_id, sessions) == status
    with sessions() as session:
        job = session.get(Job, job_id)
        final = (job.status, job.error, job.outcome)
    if cancel_after is None:
        assert steps_done[-1] == "registered" and final == ("succeeded", None, {"steps": 6})
    else:
        # step 3's report saw the flag: nothing after it ran, nothing was registered
        assert steps_done == ["step 1", "step 2"]
        assert final == ("cancelled", "cancelled on request; nothing it made was registered", None)
