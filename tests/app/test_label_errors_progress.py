"""Find label errors' progress: the time left comes from the measured rate of the folds (finished folds first,
else the running fold's own estimate), and a run is only "succeeded" once a fold stored it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from app.services.label_errors import crossfit_eta

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def fold(status: str, minutes: float | None = None, eta_s: float | None = None):
    finished = T0 + timedelta(minutes=minutes) if minutes is not None else None
    return SimpleNamespace(status=status, started_at=T0, finished_at=finished, progress={"eta_s": eta_s})


def test_time_left_uses_the_finished_folds_duration():
    # two folds of 10 minutes done, one running with 4 minutes left, two waiting: 4 + 2 * 10 minutes
    folds = [fold("succeeded", 10), fold("succeeded", 10), fold("running", eta_s=240)]
    assert crossfit_eta(None, folds, 5, 2) == 240 + 2 * 600


def test_time_left_before_any_fold_finished_uses_the_running_folds_estimate(monkeypatch):
    monkeypatch.setattr("app.services.label_errors.utcnow", lambda: T0 + timedelta(minutes=3))
    # 3 minutes in, 6 left: a fold takes 9 minutes; four more wait
    assert crossfit_eta(None, [fold("running", eta_s=360)], 5, 0) == 360 + 4 * 540


def test_no_estimate_before_the_first_steps():
    assert crossfit_eta(None, [fold("running", eta_s=None)], 5, 0) is None
    assert crossfit_eta(None, [], 5, 0) is None
