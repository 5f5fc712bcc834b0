"""Review prepares the pairs a key shows next while the reviewer reads (app.ui.review_prefetch): their prediction is
run and stored ahead, the pair the leases hand out next included, without taking its lease."""

from __future__ import annotations

import os
import threading

import pytest
from sqlalchemy import delete, func, select

from app.ui.review_prefetch import PRIORITY_DROP, Prefetcher, next_pairs, prefetcher
from db.models import Prediction, ReviewLease
from db.schema import open_database
from tests.app.conftest import REVIEWER, no_exceptions

REVIEW = "views/review.py"


def _predicted(url: str) -> set[int]:
    engine, sessions = open_database(url)
    with sessions() as session:
        pairs = set(session.scalars(select(Prediction.pair_id)))
    engine.dispose()
    return pairs


def _held_leases(url: str) -> int:
    engine, sessions = open_database(url)
    with sessions() as session:
        held = session.scalar(
            select(func.count())
            .select_from(ReviewLease)
            .where(ReviewLease.reviewer == REVIEWER, ReviewLease.state == "held")
        )
    engine.dispose()
    return held


def test_the_next_pairs_are_the_queues_next_two_and_the_previous_one():
    assert next_pairs([5, 6, 7, 8, 9], 0) == [6, 7]
    assert next_pairs([5, 6, 7, 8, 9], 2) == [8, 9, 6]
    assert next_pairs([5, 6, 7, 8, 9], 4) == [8]
    assert next_pairs([5], 0) == []


def _without_predictions(url: str) -> None:
    engine, sessions = open_database(url)
    with sessions.begin() as session:
        session.execute(delete(Prediction))  # nothing stored: Review runs the model on each pair it shows
    engine.dispose()


def test_the_next_pairs_of_the_queue_are_scored_before_they_are_shown(make_app, seeded_url, caplog):
    _without_predictions(seeded_url)
    at = make_app(seeded_url, REVIEW)  # the Queue page's queue (its link)
    no_exceptions(at)
    review = at.session_state["review"]
    assert not review.leased and review.position == 0
    prefetcher().wait()
    assert _predicted(seeded_url) == set(review.queue[:3]), "the shown pair and the next two"
    # no session on that thread, on purpose: Streamlit's warning about it would fill the server's log
    assert not [r for r in caplog.records if "review-prefetch" in r.getMessage()]
    at.button(key="review_skip").click().run()
    no_exceptions(at)
    assert at.session_state["review_shown"][0] == review.queue[1]
    assert not [w for w in at.warning if "No prediction" in w.value]
    prefetcher().wait()  # nothing left running for the next test's store


def test_the_pair_the_leases_give_next_is_scored_before_it_is_shown(make_app, seeded_url):
    _without_predictions(seeded_url)
    at = make_app(seeded_url)
    at.query_params.clear()  # no link: Review hands out pairs under leases
    at.switch_page(REVIEW)
    at.run()
    no_exceptions(at)
    assert at.session_state["review"].leased, "a queue under leases"
    shown = at.session_state["review_shown"][0]
    prefetcher().wait()
    ahead = _predicted(seeded_url) - {shown}
    assert len(ahead) == 1, "the pair the leases give next was scored and stored while the reviewer read"
    assert _held_leases(seeded_url) == 1, "looking ahead takes no lease"
    at.button(key="review_skip").click().run()
    no_exceptions(at)
    assert at.session_state["review_shown"][0] in ahead, "the leases handed out the pair prepared ahead"
    assert not [w for w in at.warning if "No prediction" in w.value]
    prefetcher().wait()  # nothing left running for the next test's store


def test_a_failure_ahead_is_logged_and_the_next_work_still_runs(monkeypatch):
    logged, ran = [], []
    monkeypatch.setattr(
        "app.ui.review_prefetch.LOG.exception", lambda message, *args: logged.append(message % args)
    )
    work = Prefetcher()

    def fails():
        raise ValueError("damaged checkpoint")

    assert work.submit(("pair", 1), fails)
    assert work.submit(("pair", 2), ran.append, 2)
    work.wait()
    assert logged == ["Review could not prepare ('pair', 1) ahead; it is computed when shown"]
    assert ran == [2]
    assert work.submit(("pair", 1), ran.append, 1), "failed work is not left pending"
    work.wait()
    assert ran == [2, 1]


def test_the_work_ahead_yields_the_cpu_to_the_pages_runs():
    own = os.getpriority(os.PRIO_PROCESS, 0)
    if own >= 19:
        pytest.skip("this process already runs at the lowest priority (nice 19): nothing below it to check")
    seen = []
    work = Prefetcher()
    work.submit(("nice",), lambda: seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
    work.wait()
    assert seen == [min(19, own + PRIORITY_DROP)]


def _in_order(block):
    """The page's elements in the order they are drawn."""
    for child in block.children.values():
        yield child
        if getattr(child, "children", None):
            yield from _in_order(child)


def test_the_pair_is_on_screen_before_the_model_runs_on_it(make_app, seeded_url, monkeypatch):
    """A pair the active model has not scored (a model became active since the pair was prepared ahead): its line
    and text come first, the model's run (here failing) after them."""
    _without_predictions(seeded_url)

    def no_checkpoint(folder):
        raise OSError(f"no checkpoint in {folder}")

    monkeypatch.setattr("app.ui.review_prefetch.load_model", no_checkpoint)
    at = make_app(seeded_url, REVIEW)
    prefetcher().wait()
    drawn = [
        e.value for e in _in_order(at.main) if getattr(e, "type", None) in ("caption", "error", "markdown")
    ]
    line = next(k for k, text in enumerate(drawn) if str(text).startswith("Pair "))
    failed = next(k for k, text in enumerate(drawn) if "could not score this pair" in str(text))
    assert line < failed, drawn[: failed + 1]
    assert any("mre-post" in str(text) for text in drawn[line:failed]), (
        "the post's text before the model's run"
    )
