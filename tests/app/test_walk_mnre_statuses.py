"""What a walk through the app on MNRE found saying one thing while the rest of the screen (or the store) said
another. Each test failed on the code before its fix."""

from __future__ import annotations

from db.jobs import create_job, start_job
from db.schema import open_database
from tests.app.conftest import REVIEWER, no_exceptions

LABEL_ERRORS = "views/label_errors.py"


def progress_texts(at) -> list[str]:
    return [element.proto.text for element in at.get("progress")]


def test_a_find_label_errors_run_waiting_behind_another_job_says_queued_not_planning(make_app, seeded_url):
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        training = create_job(session, "first_model", REVIEWER, {"data": "x", "dataset": "synthetic"}).id
        start_job(session, training, worker="elsewhere:1")
        plan = create_job(session, "crossfit", REVIEWER, {"dataset": "synthetic", "folds": 5}).id
    engine.dispose()
    at = make_app(seeded_url, LABEL_ERRORS)
    no_exceptions(at)
    (text,) = progress_texts(at)
    assert f"queued as job {plan}" in text and "planning" not in text, text

    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        start_job(session, plan, worker="elsewhere:1")
    engine.dispose()
    at = make_app(seeded_url, LABEL_ERRORS)
    (text,) = progress_texts(at)
    assert f"planning the 5 folds (job {plan})" in text, text
