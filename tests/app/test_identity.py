"""The reviewer's typed name survives every way of changing page, st.switch_page included (Queue's "Review these in
this order", Add post's "Review it now"), and decisions are saved under it."""

from __future__ import annotations

from sqlalchemy import select

from app.ui.identity import NAME_BOX_KEY
from db.models import Annotation, EntityPair
from db.schema import open_database
from tests.app.conftest import no_exceptions

REVIEW = "views/review.py"


def annotators(url: str) -> list[tuple[int, str, str]]:
    engine, sessions = open_database(url)
    with sessions() as s:
        rows = s.execute(
            select(Annotation.pair_id, Annotation.status, Annotation.annotator).order_by(Annotation.id)
        )
        result = [tuple(r) for r in rows]
    engine.dispose()
    return result


def assert_reviewing_as(at, name: str) -> None:
    no_exceptions(at)
    assert [t.value for t in at.title] == ["Review"]
    # the bug: Review opened with an empty name box and "Enter your name in the sidebar first"
    assert not any("Enter your name" in i.value for i in at.info), [i.value for i in at.info]
    assert any(f"reviewing as {name}" in c.value for c in at.caption), [c.value for c in at.caption]
    assert at.sidebar.text_input(key=NAME_BOX_KEY).value == name, "the sidebar box still shows the name"


def test_typed_name_survives_queue_review_in_this_order(make_app, seeded_url):
    at = make_app(seeded_url, reviewer=None)
    at.sidebar.text_input(key=NAME_BOX_KEY).input("Ann Typed").run()
    at.button(key="queue_start").click().run()
    assert_reviewing_as(at, "Ann Typed")
    pair = at.session_state["review_shown"][0]
    at.button(key="review_accept").click().run()
    no_exceptions(at)
    assert annotators(seeded_url) == [(pair, "accepted", "Ann Typed")]
    # and back through the sidebar navigation, then through the queue again
    at.switch_page("views/queue.py").run()
    at.button(key="queue_start").click().run()
    assert_reviewing_as(at, "Ann Typed")


def test_typed_name_survives_add_post_review_it_now(make_app, seeded_url):
    engine, sessions = open_database(seeded_url)
    with sessions() as s:
        pair = s.scalar(select(EntityPair.id).order_by(EntityPair.id.desc()).limit(1))
    engine.dispose()
    at = make_app(seeded_url, "views/add_post.py", reviewer=None)
    at.sidebar.text_input(key=NAME_BOX_KEY).input("Bo Typed").run()
    # the state "Add, ground and predict" leaves behind (that step is tested with the Add post page)
    at.session_state["add_last_pair"] = pair
    at.text_area(key="add_text").input("a post to review").run()
    at.button(key="add_review").click().run()
    assert_reviewing_as(at, "Bo Typed")
    assert at.session_state["review_shown"][0] == pair
    at.button(key="review_reject").click().run()
    assert annotators(seeded_url) == [(pair, "rejected", "Bo Typed")]


def test_typed_name_can_be_changed_and_cleared(make_app, seeded_url):
    at = make_app(seeded_url, reviewer=None)
    box = at.sidebar.text_input(key=NAME_BOX_KEY)
    box.input("  Cy  ").run()
    assert at.session_state["reviewer"] == "Cy", "stored without surrounding spaces"
    at.sidebar.text_input(key=NAME_BOX_KEY).input("").run()
    at.button(key="queue_start").click().run()
    assert any("Enter your name" in i.value for i in at.info), "no name, no decisions"
    assert not [b for b in at.button if b.key == "review_accept"]


def test_typed_name_mode_says_so_in_the_sidebar(make_app, seeded_url):
    at = make_app(seeded_url)
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "Typed-name mode" in captions and "loopback" in captions
