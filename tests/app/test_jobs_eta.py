"""Time left from the running job's measured rate, with a fake clock: nothing while the job warms up, then the
training rate since the warm-up plus the measured evaluation time for each evaluation still to come. A training
whose first minute is start-up (model load, feature cache) is not estimated from that minute."""

from __future__ import annotations

import pytest

from db.jobs import create_job, start_job
from db.models import Job
from db.schema import open_database

STARTUP, STEP, EVALUATION, EPOCHS, STEPS = 60.0, 2.0, 30.0, 3, 10
TOTAL = STARTUP + EPOCHS * (STEPS * STEP + EVALUATION)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def training_steps():
    """(time since start, fraction, message) of every progress call of a 3-epoch training, as model.train makes
    them: a step every 2 s after a 60 s start, a 30 s evaluation after each epoch (no call during it)."""
    t = STARTUP
    for epoch in range(EPOCHS):
        for step in range(STEPS):
            t += STEP
            yield t, (epoch * STEPS + step + 1) / (EPOCHS * STEPS), f"epoch {epoch + 1}/{EPOCHS}, loss 1.0"
        t += EVALUATION


@pytest.fixture
def reporter(tmp_path):
    from app.jobs.runner import Reporter

    engine, sessions = open_database(f"sqlite:///{tmp_path / 'store.db'}")
    with sessions.begin() as session:
        job_id = create_job(session, "default_model", "tester").id
        start_job(session, job_id)
    clock = FakeClock()
    yield Reporter(sessions, job_id, interval=0.0, clock=clock), clock, sessions
    engine.dispose()


def test_the_estimate_follows_the_measured_rate_and_counts_the_evaluations(reporter):
    reporter, clock, sessions = reporter
    start = clock.now
    estimates = []
    for t, fraction, message in training_steps():
        clock.now = start + t
        reporter(fraction, message)
        estimates.append((t, reporter.progress["eta_s"]))
    assert all(eta is None for _, eta in estimates[:5])  # the warm-up steps give no estimate
    # once an evaluation was measured (from epoch 2 on) the estimate is the true time left, to the second
    for t, eta in estimates[STEPS:]:
        assert eta == pytest.approx(TOTAL - t, abs=1.0), t
    # the old estimate (elapsed / fraction) said 3x the truth after the first steps: start-up counted as rate
    t, eta = estimates[5]
    assert eta == pytest.approx(
        STEPS * STEP * EPOCHS - 6 * STEP, abs=1.0
    )  # training left; no evaluation known yet
    with sessions() as session:
        assert session.get(Job, reporter.job_id).progress["eta_s"] == estimates[-1][1]
