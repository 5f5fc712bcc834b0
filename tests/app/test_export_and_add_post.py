"""Export and Add post say what is true: an export that selects nothing says so and writes nothing (it showed a
green success and wrote a 0-byte file), a count has its unit in the right number, and Add post shows each word of
the post as typed in its entity buttons ("&amp;" read back as "&"). Each test failed on the code before it."""

from __future__ import annotations

import html

from markdown_it import MarkdownIt
from sqlalchemy import select

from db.annotations import record_annotation
from db.models import EntityPair
from db.schema import open_database
from tests.app.conftest import REVIEWER, no_exceptions


def test_an_export_that_selects_nothing_says_so_and_writes_nothing(make_app, seeded_url, tmp_path):
    at = make_app(seeded_url, "views/export.py")
    at.selectbox(key="export_format").set_value("csv").run()
    at.multiselect(key="export_statuses").set_value(["accepted"]).run()  # nobody accepted anything yet
    at.button(key="export_run").click().run()
    no_exceptions(at)
    assert not at.success, [s.value for s in at.success]
    assert any("Nothing to export" in i.value for i in at.info), [i.value for i in at.info]
    folder = tmp_path / "exports"
    assert not folder.exists() or not any(folder.iterdir()), list(folder.iterdir())
    assert not at.get("download_button")


def test_an_export_of_one_pair_says_one_pair(make_app, seeded_url):
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        pair_id = session.scalar(select(EntityPair.id).order_by(EntityPair.id).limit(1))
        record_annotation(session, pair_id, status="accepted", annotator=REVIEWER, expected_revision=0)
    engine.dispose()
    at = make_app(seeded_url, "views/export.py")
    at.selectbox(key="export_format").set_value("jsonl").run()
    at.multiselect(key="export_statuses").set_value(["accepted"]).run()
    at.button(key="export_run").click().run()
    no_exceptions(at)
    (success,) = at.success
    assert success.value.startswith("1 pair exported"), success.value


def test_add_post_shows_every_word_as_typed_in_the_entity_buttons(make_app, seeded_url):
    at = make_app(seeded_url, "views/add_post.py")
    words = ["Tom", "&amp;", "Jerry", "[met](http://evil.example)", "**Paris**"]
    at.text_area(key="add_text").input(" ".join(words)).run()
    no_exceptions(at)
    md = MarkdownIt("commonmark")
    for group in at.get("button_group"):
        # as read: without the invisible word joiner app.ui.render.plain puts after "http" (no autolink)
        shown = [html.unescape(md.renderInline(option)).replace("\u2060", "") for option in group.options]
        assert shown == words, shown
