"""Every page says which model is active and how good it is, or what is training; Review and Inspect warn about a
weak model; without any model the queue and review still work."""

from __future__ import annotations

from sqlalchemy import update

from db.models import Job, ModelVersion
from db.schema import open_database
from tests.app.conftest import no_exceptions


def sidebar_text(at) -> str:
    return " ".join(c.value for c in at.sidebar.caption)


def set_val_f1(url: str, f1: float | None) -> None:
    engine, sessions = open_database(url)
    with sessions.begin() as session:
        session.execute(update(ModelVersion).values(metrics={"val": {"f1": f1}} if f1 is not None else None))
    engine.dispose()


def test_no_model_yet_every_page_says_what_is_training_and_review_still_works(make_app, seeded_url):
    from app.jobs import enqueue
    from db.jobs import start_job

    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        session.execute(update(ModelVersion).values(is_active=False))
    first = enqueue(sessions, "first_model", "make app", {})
    at = make_app(seeded_url, "views/queue.py")
    no_exceptions(at)
    assert "No model yet" in sidebar_text(at) and f"the first model is queued (job {first})" in sidebar_text(
        at
    )
    with sessions.begin() as session:
        start_job(session, first)
        session.get(Job, first).progress = {
            "fraction": 0.4,
            "epoch": 1,
            "epochs": 1,
            "eta_s": 300,
        }
    engine.dispose()
    at = make_app(seeded_url, "views/review.py")
    no_exceptions(at)
    assert "the first model is training (40%, epoch 1/1, model expected ~" in sidebar_text(at)
    assert any("No model is active yet" in i.value for i in at.info)
    at.button(key="review_skip").click().run()  # reviewing works without a model
    no_exceptions(at)


def test_weak_model_is_marked_on_review_and_inspect_but_not_a_good_one(make_app, seeded_url):
    set_val_f1(seeded_url, 0.058)
    for page in ("views/review.py", "views/inspect.py"):
        at = make_app(seeded_url, page)
        assert any("is weak (val micro-F1 5.8" in w.value for w in at.warning), page
        assert "val micro-F1 5.8 (weak)" in sidebar_text(at)
    set_val_f1(seeded_url, 0.62)
    at = make_app(seeded_url, "views/review.py")
    assert not any("is weak" in w.value for w in at.warning)
    assert "val micro-F1 62.0" in sidebar_text(at) and "(weak)" not in sidebar_text(at)
