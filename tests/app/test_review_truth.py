"""What the Review page says is what the store holds: a correction to the gold label is an acceptance, a skipped
pair's history agrees with its header, a saved note is back when the reviewer returns, an undo is said as an undo,
and names are shown as typed (never Markdown). Each test failed on the code before it."""

from __future__ import annotations

from markdown_it import MarkdownIt
from sqlalchemy import select

from db.annotations import record_annotation
from db.models import EntityPair
from db.schema import open_database
from tests.app.conftest import REVIEWER, no_exceptions
from tests.app.test_review import REVIEW, _gold, _gold_line, annotations, shown_pair

HOSTILE = "[link](http://evil.example) &amp; **bold** :red[x]"


def rendered(at) -> list[str]:
    """Every Markdown text the page drew (markdown, captions, messages, button labels) as CommonMark renders it."""
    texts = [
        e.value
        for kind in ("markdown", "caption", "success", "info", "warning", "error")
        for e in at.get(kind)
    ]
    texts += [b.label for b in at.button]
    md = MarkdownIt("commonmark")
    return [md.render(text) for text in texts]


def _first_pair(url: str) -> int:
    engine, sessions = open_database(url)
    with sessions() as session:
        pair_id = session.scalar(select(EntityPair.id).order_by(EntityPair.id).limit(1))
    engine.dispose()
    return pair_id


def _open(make_app, url: str, pair_id: int, reviewer: str = REVIEWER):
    at = make_app(url, reviewer=reviewer)
    at.session_state["review"].open(pair_id)
    at.switch_page(REVIEW).run()
    no_exceptions(at)
    return at


def test_a_correction_to_the_gold_label_is_recorded_as_accepted(make_app, seeded_url):
    at = make_app(seeded_url, REVIEW)
    pair_id = shown_pair(at)
    gold = _gold(seeded_url, pair_id)
    at.selectbox(key=f"review_pick_{pair_id}").set_value(gold).run()
    at.button(key="review_correct").click().run()
    no_exceptions(at)
    assert annotations(seeded_url) == [(pair_id, 1, "accepted", gold, REVIEWER, None)]
    assert any(f"Pair {pair_id}: accepted" in s.value for s in at.success), [s.value for s in at.success]


def test_a_skipped_pairs_history_shows_the_label_its_header_shows(make_app, seeded_url):
    pair_id = _first_pair(seeded_url)
    gold = _gold(seeded_url, pair_id)
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        record_annotation(session, pair_id, status="skipped", annotator="ann", expected_revision=0)
    engine.dispose()
    at = _open(make_app, seeded_url, pair_id)
    assert f"current label:** `{gold}`" in _gold_line(at)
    history = next(d.value for d in at.dataframe if "revision" in d.value.columns)
    assert list(history["label"]) == [gold], (
        "the skip kept the gold label; the history must not say 'no label'"
    )


def test_a_saved_note_is_shown_when_the_reviewer_comes_back(make_app, seeded_url):
    at = make_app(seeded_url, REVIEW)
    pair_id = shown_pair(at)
    at.text_input(key=f"review_note_{pair_id}").input("entity spans look off").run()
    at.button(key="review_accept").click().run()
    assert shown_pair(at) != pair_id
    at.button(key="review_prev").click().run()
    no_exceptions(at)
    assert shown_pair(at) == pair_id
    assert at.text_input(key=f"review_note_{pair_id}").value == "entity spans look off"
    assert any("entity spans look off" in c.value for c in at.caption)


def test_after_an_undo_the_status_says_undone_not_unreviewed_by(make_app, seeded_url):
    at = make_app(seeded_url, REVIEW)
    pair_id = shown_pair(at)
    at.button(key="review_accept").click().run()
    at.button(key="review_undo").click().run()
    no_exceptions(at)
    assert shown_pair(at) == pair_id
    line = _gold_line(at)
    assert "unreviewed by" not in line and f"unreviewed (after an undo by {REVIEWER})" in line, line


def test_a_rejected_pair_says_why_a_cannot_accept(make_app, seeded_url):
    pair_id = _first_pair(seeded_url)
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        record_annotation(session, pair_id, status="rejected", annotator="ann", expected_revision=0)
    engine.dispose()
    at = _open(make_app, seeded_url, pair_id)
    at.button(key="review_accept").click().run()
    no_exceptions(at)
    assert any("Nothing to accept" in w.value for w in at.warning)
    assert len(annotations(seeded_url)) == 1


def test_names_are_shown_as_typed_never_as_markdown(make_app, seeded_url):
    pair_id = _first_pair(seeded_url)
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        record_annotation(
            session, pair_id, status="skipped", annotator=HOSTILE, expected_revision=0, note=HOSTILE
        )
    engine.dispose()
    at = _open(make_app, seeded_url, pair_id, reviewer=HOSTILE)
    # as read: without the invisible word joiner app.ui.render.plain puts after "http" (no autolink)
    html = [h.replace("\u2060", "") for h in rendered(at)]
    assert not [h for h in html if "<a " in h or "<strong>bold" in h], [h for h in html if "<a " in h]
    # the name appears exactly as typed (CommonMark escapes & to &amp;, so "&amp;" reads back as &amp;amp;)
    assert sum("[link](http://evil.example) &amp;amp; **bold** :red[x]" in h for h in html) >= 2


def test_the_pair_line_counts_the_queue_it_is_in(make_app, seeded_url):
    """Under leases the pairs are taken one at a time: the line says which pair of those taken this is, never
    '1 of 1 pair in this queue' (a queue of one); a queue picked on the Queue page is counted whole."""
    at = make_app(seeded_url)
    # opened from the navigation, as in a browser: a page switch leaves the Queue's link behind
    at.query_params.clear()
    at.switch_page(REVIEW).run()
    no_exceptions(at)
    assert at.session_state["review"].leased, "the leased queue"
    line = next(c.value for c in at.caption if "reviewing as" in c.value)
    assert "pair 1 taken under your leases" in line and " of 1 pair" not in line, line
    at.button(key="review_skip").click().run()
    line = next(c.value for c in at.caption if "reviewing as" in c.value)
    assert "pair 2 taken under your leases" in line, line
    at.switch_page("views/queue.py").run()
    shown = len(at.dataframe(key="queue_table").value)
    at.button(key="queue_start").click().run()
    line = next(c.value for c in at.caption if "reviewing as" in c.value)
    assert f"1 of {shown} pairs in this queue" in line, line


def test_nothing_to_accept_is_not_the_highlighted_action(make_app, seeded_url):
    at = make_app(seeded_url, REVIEW)
    assert at.button(key="review_accept").proto.type == "primary", (
        "a labelled pair: Accept is the main action"
    )
    at.button(key="review_reject").click().run()
    at.button(key="review_prev").click().run()
    no_exceptions(at)
    assert at.button(key="review_accept").proto.type == "secondary", "a rejected pair has no label to accept"


def test_mnre_none_label_is_named_the_no_relation_label_and_crop_scores_are_named():
    from types import SimpleNamespace

    from app.ui.render import label_text
    from app.ui.review_panels import crop_caption

    assert label_text("None") == "None (no relation)"
    assert label_text("/per/per/peer") == r"\/per\/per\/peer", "escaped like any dataset text"
    crop = SimpleNamespace(label="ball", source="cam", score=0.3141)
    assert crop_caption(0, crop).endswith("(score 0.31)"), crop_caption(0, crop)
