"""Progress that means what it says: a skipped pair is not reviewed (Queue and Review say so), and the end of the
Review queue says so, with what to do next."""

from __future__ import annotations

from app.ui.state import ReviewSession
from tests.app.conftest import no_exceptions

QUEUE, REVIEW = "views/queue.py", "views/review.py"


def progress_text(at) -> str:
    return at.get("progress")[0].proto.text


def test_a_skipped_pair_is_not_counted_as_reviewed(make_app, seeded_url):
    at = make_app(seeded_url, REVIEW)
    at.button(key="review_skip").click().run()
    at.button(key="review_accept").click().run()
    no_exceptions(at)
    at.switch_page(QUEUE).run()
    at.selectbox(key="queue_split").select_index(0).run()  # every split: the Review queue spans both
    no_exceptions(at)
    text = progress_text(at)
    assert text.startswith("1 of 24 pairs reviewed"), text
    assert "1 skipped" in text and "22 to go" in text, text


def test_the_end_of_the_queue_says_so_and_what_to_do_next(make_app, seeded_url):
    at = make_app(seeded_url, REVIEW)
    first, second = at.session_state["review"].queue[:2]
    at.session_state["review"] = ReviewSession(queue=[first, second])
    at.run()
    at.button(key="review_accept").click().run()
    at.button(key="review_skip").click().run()
    no_exceptions(at)
    shown = " ".join(m.value for m in [*at.success, *at.info, *at.markdown])
    assert "End of this queue" in shown, shown
    assert "1 of 2 pairs reviewed (1 skipped, 0 to go)" in shown, shown
    links = " ".join(link.proto.label for link in at.get("page_link"))
    for what_next in ("Queue", "Export", "Models", "Label errors"):
        assert what_next in links, (what_next, links)
    at.button(key="review_prev").click().run()  # back to the last pair from the end
    assert at.session_state["review_shown"][0] == second
