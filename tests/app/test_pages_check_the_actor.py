"""Pages check the actor. Jobs: a reviewer logged in through a provider cannot cancel someone else's job (the page shows the
refusal, the job stays queued) but cancels their own; job errors are shown with URL passwords masked, also for rows
stored before errors were masked. Review: a reviewer cannot undo another reviewer's decision."""

from __future__ import annotations

from sqlalchemy import update

from db.models import Job
from db.schema import open_database
from tests.app.conftest import no_exceptions
from tests.app.test_login import oidc_app  # noqa: F401  (a fixture)

REVIEWER = {"email": "rev@example.org", "email_verified": True}


def test_a_reviewer_cancels_only_their_own_job(oidc_app, seeded_url):  # noqa: F811
    from app.jobs import enqueue

    engine, sessions = open_database(seeded_url)
    theirs = enqueue(sessions, "score", "admin@example.org", {})
    mine = enqueue(sessions, "score", "rev@example.org", {})
    at = oidc_app(seeded_url, REVIEWER, "views/jobs.py")
    no_exceptions(at)
    at.button(key=f"jobs_cancel_{theirs}").click().run()
    no_exceptions(at)
    assert any("rev@example.org is a reviewer" in e.value for e in at.error), [e.value for e in at.error]
    at.button(key=f"jobs_cancel_{mine}").click().run()
    no_exceptions(at)
    with sessions() as session:
        assert session.get(Job, theirs).status == "queued" and not session.get(Job, theirs).cancel_requested
        assert session.get(Job, mine).status == "cancelled"
    engine.dispose()


def test_job_errors_are_shown_without_url_passwords(make_app, seeded_url):
    from app.jobs import enqueue

    engine, sessions = open_database(seeded_url)
    job = enqueue(sessions, "score", "ann", {})
    with sessions.begin() as session:  # a row stored before errors were masked
        session.execute(
            update(Job)
            .where(Job.id == job)
            .values(
                status="failed",
                error="cannot reach redis://:s3cret@queue:6379/0",
                log_tail="postgresql://u:s3cret@db/x",
            )
        )
    engine.dispose()
    at = make_app(seeded_url, "views/jobs.py")
    no_exceptions(at)
    shown = [e.value for e in at.error] + [c.value for c in at.code] + [str(d.value) for d in at.dataframe]
    assert any("redis://:***@queue" in text for text in shown), shown
    assert not any("s3cret" in text for text in shown)


def test_a_reviewer_cannot_undo_another_reviewers_decision_from_review(oidc_app, seeded_url):  # noqa: F811
    from db.annotations import pair_history, record_annotation

    at = oidc_app(seeded_url, REVIEWER, "views/review.py")
    no_exceptions(at)
    pair, _ = at.session_state["review_shown"]
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        record_annotation(
            session, pair, status="corrected", label="None", annotator="alice", expected_revision=0
        )
    at.run()  # the page now shows alice's decision (revision 1)
    at.button(key="review_undo").click().run()
    no_exceptions(at)
    shown = [e.value for e in at.error] + [t.value for t in at.toast]
    assert any("rev@example.org is a reviewer" in text for text in shown), shown
    with sessions() as session:
        assert [(a.annotator, a.status) for a in pair_history(session, pair)] == [("alice", "corrected")]
    engine.dispose()
