"""Racing reviewers in the Review page: an undo never cancels a decision someone made after the undoer's own, and a
refused save or undo is one clear error that keeps the reviewer's note."""

from __future__ import annotations

from sqlalchemy import select

from app.services.store import decide
from db.models import Annotation
from db.schema import open_database
from tests.app.conftest import REVIEWER, no_exceptions

REVIEW = "views/review.py"


def history(url: str, pair_id: int) -> list[tuple[int, str, str, str | None]]:
    engine, sessions = open_database(url)
    with sessions() as session:
        rows = session.execute(
            select(Annotation.revision, Annotation.annotator, Annotation.status, Annotation.label)
            .where(Annotation.pair_id == pair_id)
            .order_by(Annotation.revision)
        ).all()
    engine.dispose()
    return [tuple(row) for row in rows]


def test_undo_after_someone_decided_on_top_is_refused_and_their_decision_stands(make_app, seeded_url):
    at = make_app(seeded_url, REVIEW)
    mine = at.session_state["review_shown"][0]
    at.button(key="review_reject").click().run()
    no_exceptions(at)
    assert history(seeded_url, mine) == [(1, REVIEWER, "rejected", None)]
    # another reviewer, in another session, decides on the same pair after seeing revision 1
    engine, sessions = open_database(seeded_url)
    decide(sessions, mine, "skipped", "other", 1)
    engine.dispose()
    at.button(key="review_undo").click().run()
    no_exceptions(at)
    assert any("Not undone" in e.value and "other" in e.value for e in at.error), [e.value for e in at.error]
    assert history(seeded_url, mine) == [(1, REVIEWER, "rejected", None), (2, "other", "skipped", None)]
    assert at.session_state["review_shown"][0] == mine  # the pair is shown with its current state


def test_undo_of_ones_own_latest_decision_still_works(make_app, seeded_url):
    at = make_app(seeded_url, REVIEW)
    mine = at.session_state["review_shown"][0]
    at.button(key="review_reject").click().run()
    at.button(key="review_undo").click().run()
    no_exceptions(at)
    assert [row[:3] for row in history(seeded_url, mine)] == [
        (1, REVIEWER, "rejected"),
        (2, REVIEWER, "unreviewed"),
    ]
