"""Review's "Fix spans / add pair": off by default (nothing drawn), fixing a span records a decision that the page
then shows (and marks the prediction stale), U undoes it, adding a pair opens it, bad picks keep the page and say why."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.ui.span_editor import as_span
from db.annotations import current_state, pair_history
from db.errors import LabelStoreError
from db.models import EntityPair
from db.schema import open_database
from tests.app.conftest import no_exceptions

REVIEW = "views/review.py"


def _store(url: str):
    engine, sessions = open_database(url)
    return engine, sessions


def test_picked_words_become_one_span_or_a_clear_error():
    assert as_span([3, 1, 2], "head") == (1, 4)
    with pytest.raises(LabelStoreError, match="field 'tail': the tail is one run of consecutive words"):
        as_span([1, 3], "tail")
    with pytest.raises(LabelStoreError, match="field 'head': pick the head's words"):
        as_span([], "head")


def test_fix_a_span_undo_it_and_add_a_pair(make_app, seeded_url):
    at = make_app(seeded_url, REVIEW)
    no_exceptions(at)
    assert not at.get("pills") or all(not p.key.startswith("span_") for p in at.pills), (
        "closed: nothing drawn"
    )
    pair = at.session_state["review_shown"][0]
    at.toggle(key="span_open").set_value(True).run()
    no_exceptions(at)
    head = next(p for p in at.pills if p.key == f"span_head_{pair}")
    tail = next(p for p in at.pills if p.key == f"span_tail_{pair}")
    n = len(head.options)
    old_head, old_tail = list(head.value), list(tail.value)
    # a new tail: the last word that is neither the head's nor the old tail's
    free = [i for i in range(n) if i not in old_head]
    new_tail = [next(i for i in reversed(free) if i not in old_tail)]
    tail.set_value(new_tail).run()
    at.button(key="span_fix").click().run()
    no_exceptions(at)
    engine, sessions = _store(seeded_url)
    with sessions() as s:
        state = current_state(pair_history(s, pair))
        stored = s.get(EntityPair, pair)
        original_tail = (stored.tail_start, stored.tail_end)
    assert state.tail is not None and state.tail.pos == (new_tail[0], new_tail[0] + 1)
    assert original_tail == (old_tail[0], old_tail[-1] + 1), "the pair row is never changed"
    assert any("is stale" in c.value for c in at.caption), at.caption
    assert at.session_state["review_shown"] == (pair, 1)

    at.button(key="review_undo").click().run()  # U takes the span fix back like any decision
    no_exceptions(at)
    with sessions() as s:
        assert current_state(pair_history(s, pair)).tail is None

    # a bad pick (words that are not one run) keeps the page and says why; nothing is stored
    at.toggle(key="span_open").set_value(True).run()
    next(p for p in at.pills if p.key == f"span_head_{pair}").set_value([free[0], free[-1]]).run()
    at.button(key="span_add").click().run()
    no_exceptions(at)
    assert any("one run of consecutive words" in e.value for e in at.error), [e.value for e in at.error]

    # add a pair: the head's words and the last free word as tail
    next(p for p in at.pills if p.key == f"span_head_{pair}").set_value(old_head).run()
    next(p for p in at.pills if p.key == f"span_tail_{pair}").set_value(new_tail).run()
    at.button(key="span_add").click().run()
    no_exceptions(at)
    with sessions() as s:
        added = s.scalars(select(EntityPair).where(EntityPair.added_by.is_not(None))).one()
        assert added.post_id == stored.post_id and (added.tail_start, added.tail_end) == (
            new_tail[0],
            new_tail[0] + 1,
        )
        assert current_state(pair_history(s, added.id)).status in ("corrected", "accepted")
    engine.dispose()
    assert at.session_state["review_shown"][0] == added.id, "the added pair is shown"


def test_u_takes_back_an_added_pair_then_the_span_fix_before_it(make_app, seeded_url):
    at = make_app(seeded_url, REVIEW)
    pair = at.session_state["review_shown"][0]
    at.toggle(key="span_open").set_value(True).run()
    head = next(p for p in at.pills if p.key == f"span_head_{pair}")
    tail = next(p for p in at.pills if p.key == f"span_tail_{pair}")
    old_head, old_tail = list(head.value), list(tail.value)
    free = [i for i in range(len(head.options)) if i not in old_head and i not in old_tail]
    head.set_value([free[0]]).run()
    at.button(key="span_fix").click().run()
    no_exceptions(at)
    next(p for p in at.pills if p.key == f"span_tail_{pair}").set_value([free[-1]]).run()
    at.button(key="span_add").click().run()
    no_exceptions(at)
    added = at.session_state["review_shown"][0]
    assert added != pair
    at.button(key="review_undo").click().run()  # the added pair's label
    at.button(key="review_undo").click().run()  # then the head fix, on the revision it saved
    no_exceptions(at)
    assert not at.error, [e.value for e in at.error]
    engine, sessions = _store(seeded_url)
    with sessions() as s:
        state = current_state(pair_history(s, pair))
        assert (state.status, state.head, state.revision) == ("unreviewed", None, 2)  # the undo is a row too
        assert current_state(pair_history(s, added)).status == "unreviewed"
    engine.dispose()
    assert at.session_state["review_shown"] == (pair, 2)


def test_inspect_after_a_span_fix_says_which_spans_the_model_reads(make_app, seeded_url):
    """Review shows the spans a decision fixed; Inspect explains the model's input, the pair's own spans: it says so,
    naming both, rather than showing other entities than Review without a word."""
    from app.services.store import fix_spans, load_review_state

    engine, sessions = _store(seeded_url)
    with sessions() as s:
        pair = s.scalars(select(EntityPair).order_by(EntityPair.id)).first()
        pair_id, head = pair.id, (pair.head_start, pair.head_end)
        words = len(pair.post.tokens)
        gold = pair.gold_label
        tail = next(
            (i, i + 1)
            for i in reversed(range(words))
            if not head[0] <= i < head[1] and (i, i + 1) != (pair.tail_start, pair.tail_end)
        )
        revision = load_review_state(s, pair_id).revision
    fix_spans(sessions, pair_id, "Ann", revision, head, tail, gold)
    engine.dispose()
    at = make_app(seeded_url, "views/inspect.py")
    at.number_input(key="inspect_pair").set_value(pair_id).run()
    no_exceptions(at)
    notes = " ".join(c.value for c in at.caption)
    assert "fixed" in notes and "pair's own" in notes, notes
