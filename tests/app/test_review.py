"""The review flow changes the label store exactly as expected: accept, correct, reject, skip, undo, next/previous,
keyboard shortcuts on every action, escaped post text, and a kept note when a save fails."""

from __future__ import annotations

from sqlalchemy import select

from db.models import Annotation, EntityPair, Post
from db.schema import open_database
from model.synthetic import MNRE_LABELS
from tests.app.conftest import REVIEWER, key_button_label, no_exceptions

REVIEW = "views/review.py"


def annotations(url: str) -> list[tuple[int, int, str, str | None, str, str | None]]:
    engine, sessions = open_database(url)
    with sessions() as s:
        rows = s.execute(
            select(
                Annotation.pair_id,
                Annotation.revision,
                Annotation.status,
                Annotation.label,
                Annotation.annotator,
                Annotation.note,
            ).order_by(Annotation.id)
        ).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def shown_pair(at) -> int:
    return at.session_state["review_shown"][0]


def button(at, key: str):
    return at.button(key=key)


def test_review_page_shows_the_pair_with_shortcuts(make_app, seeded_url):
    at = make_app(seeded_url, REVIEW)
    no_exceptions(at)
    shortcuts = {b.key: b.proto.shortcut for b in at.button if b.key and b.key.startswith("review_")}
    expected = {
        "review_accept": "a",
        "review_reject": "x",
        "review_skip": "s",
        "review_next": "n",
        "review_prev": "p",
        "review_undo": "u",
        "review_correct": "e",
        "review_top": "enter",  # the model's top label
    }
    for key, value in expected.items():
        assert shortcuts[key].lower() == value, (key, shortcuts[key])
    # the dataset's first nine labels (label order, not the model's ranking) on 1-9: the same on every pair
    for k, label in enumerate(MNRE_LABELS[:9], start=1):
        assert shortcuts[f"review_label_{k}"] == str(k)
        assert button(at, f"review_label_{k}").label.replace("\\", "").startswith(f"{k} · {label} ")
    assert at.session_state["review_shown"][1] == 0
    assert any("predicts" in m.value for m in at.markdown)


def test_accept_correct_undo_change_the_database_exactly(make_app, seeded_url):
    at = make_app(seeded_url, REVIEW)
    first = shown_pair(at)
    gold = _gold(seeded_url, first)

    button(at, "review_accept").click().run()
    no_exceptions(at)
    assert annotations(seeded_url) == [(first, 1, "accepted", gold, REVIEWER, None)]
    second = shown_pair(at)
    assert second != first, "accept moves to the next pair"

    at.text_input(key=f"review_note_{second}").input("looks like siblings")
    at.run()
    label_3 = key_button_label(button(at, "review_label_3").label.replace("\\", ""))
    button(at, "review_label_3").click().run()
    no_exceptions(at)
    assert annotations(seeded_url)[-1] == (second, 1, "corrected", label_3, REVIEWER, "looks like siblings")

    button(at, "review_undo").click().run()
    no_exceptions(at)
    rows = annotations(seeded_url)
    assert len(rows) == 3
    assert rows[-1][:5] == (second, 2, "unreviewed", None, REVIEWER)
    assert shown_pair(at) == second, "undo goes back to the pair it changed"

    button(at, "review_undo").click().run()  # the accept of the first pair is next on the undo stack
    rows = annotations(seeded_url)
    assert rows[-1][:5] == (first, 2, "unreviewed", None, REVIEWER)
    assert shown_pair(at) == first


def test_pick_any_label_reject_skip_and_navigation(make_app, seeded_url):
    at = make_app(seeded_url, REVIEW)
    first = shown_pair(at)
    at.selectbox(key=f"review_pick_{first}").set_value("/misc/loc/held_on").run()
    button(at, "review_correct").click().run()
    assert annotations(seeded_url)[-1][:4] == (first, 1, "corrected", "/misc/loc/held_on")
    second = shown_pair(at)
    button(at, "review_reject").click().run()
    assert annotations(seeded_url)[-1][:4] == (second, 1, "rejected", None)
    third = shown_pair(at)
    button(at, "review_skip").click().run()
    assert annotations(seeded_url)[-1][:4] == (third, 1, "skipped", None)
    fourth = shown_pair(at)
    button(at, "review_prev").click().run()
    assert shown_pair(at) == third
    button(at, "review_next").click().run()
    assert shown_pair(at) == fourth
    assert len(annotations(seeded_url)) == 3, "moving saves nothing"


def test_a_concurrent_edit_is_refused_and_the_note_is_kept(make_app, seeded_url):
    from db.annotations import record_annotation

    at = make_app(seeded_url, REVIEW)
    pair = shown_pair(at)
    at.text_input(key=f"review_note_{pair}").input("my pending note")
    at.run()
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as s:  # someone else decides first
        record_annotation(s, pair, status="rejected", annotator="other", expected_revision=0)
    engine.dispose()
    button(at, "review_accept").click().run()
    no_exceptions(at)
    assert any("changed by other meanwhile" in e.value for e in at.error)
    assert at.text_input(key=f"review_note_{pair}").value == "my pending note"
    assert shown_pair(at) == pair
    assert annotations(seeded_url) == [(pair, 1, "rejected", None, "other", None)]


def test_review_asks_for_the_reviewer_name_first(make_app, seeded_url):
    at = make_app(seeded_url, REVIEW, reviewer=None)
    no_exceptions(at)
    assert any("name" in i.value for i in at.info)
    assert not [b for b in at.button if b.key == "review_accept"]
    at.sidebar.text_input(key="identity_name_box").input("Ann").run()
    assert [b for b in at.button if b.key == "review_accept"]


def test_post_text_is_escaped(make_app, seeded_url):
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as s:
        pair = s.scalar(select(EntityPair).order_by(EntityPair.id).limit(1))
        post = s.get(Post, pair.post_id)
        tokens = list(post.tokens)
        tokens[-1] = "<script>alert(1)</script><b>bold</b>"
        post.tokens = tokens
        pair_id = pair.id
    engine.dispose()
    at = make_app(seeded_url)
    at.session_state["review"].open(pair_id)
    at.switch_page(REVIEW).run()
    html = next(m.value for m in at.markdown if "mre-post" in m.value)
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in html


def _gold(url: str, pair_id: int) -> str:
    engine, sessions = open_database(url)
    with sessions() as s:
        gold = s.get(EntityPair, pair_id).gold_label
    engine.dispose()
    return gold


def test_missing_image_and_no_model_show_clear_messages(make_app, seeded_url):
    from sqlalchemy import update

    from db.models import ModelVersion

    engine, sessions = open_database(seeded_url)
    with sessions.begin() as s:
        pair = s.scalar(select(EntityPair).order_by(EntityPair.id).limit(1))
        s.get(Post, pair.post_id).image_path = "/nowhere/gone.png"
        s.execute(update(ModelVersion).values(is_active=False))
        pair_id = pair.id
    engine.dispose()
    at = make_app(seeded_url)
    at.session_state["review"].open(pair_id)
    at.switch_page(REVIEW).run()
    no_exceptions(at)
    warnings = " ".join(w.value for w in at.warning)
    assert "image is not on this machine" in warnings and "no model is active" in warnings
    at.button(key="review_accept").click().run()  # reviewing still works without a model
    assert annotations(seeded_url)[-1][:3] == (pair_id, 1, "accepted")


def _new_post(url: str) -> int:
    """A post added by a reviewer (no gold label), as the Add post page stores it."""
    from db.io import import_post

    engine, sessions = open_database(url)
    with sessions.begin() as s:
        pair, _ = import_post(s, "Alex met Sam in Paris", (0, 1), (2, 3))
        pair_id = pair.id
    engine.dispose()
    return pair_id


def _gold_line(at) -> str:
    return next(m.value for m in at.markdown if "Gold label" in m.value)


def test_a_new_post_says_no_gold_label_and_cannot_be_accepted_until_it_has_one(make_app, seeded_url):
    pair_id = _new_post(seeded_url)
    at = make_app(seeded_url)
    at.session_state["review"].open(pair_id)
    at.switch_page(REVIEW).run()
    no_exceptions(at)
    line = _gold_line(at)
    assert "no gold label" in line and "`None`" not in line, line
    at.button(key="review_accept").click().run()  # A: says why nothing happens (a disabled key was silent)
    assert any("Nothing to accept" in w.value for w in at.warning), [w.value for w in at.warning]
    assert annotations(seeded_url) == [], "accepting a pair without a label saves nothing"
    at.button(key="review_label_1").click().run()  # correct it: now it has a label
    no_exceptions(at)
    assert annotations(seeded_url)[-1][:3] == (pair_id, 1, "corrected")
    assert any("End of this queue" in m.value for m in at.success), "a queue of one pair ends after it"
    at.button(key="review_prev").click().run()  # P: back to the pair
    assert shown_pair(at) == pair_id
    assert "current label:** `" in _gold_line(at) and not at.button(key="review_accept").disabled


def test_the_none_relation_and_no_label_stay_distinct_in_the_history(make_app, seeded_url):
    from db.annotations import record_annotation

    engine, sessions = open_database(seeded_url)
    with sessions.begin() as s:
        pair_id = s.scalar(select(EntityPair.id).order_by(EntityPair.id).limit(1))
        record_annotation(s, pair_id, status="corrected", label="None", annotator="ann", expected_revision=0)
        record_annotation(s, pair_id, status="rejected", annotator="ann", expected_revision=1)
    engine.dispose()
    at = make_app(seeded_url)
    at.session_state["review"].open(pair_id)
    at.switch_page(REVIEW).run()
    no_exceptions(at)
    history = next(d.value for d in at.dataframe if "revision" in d.value.columns)
    assert list(history["label"]) == ["no label", "None"], "rejected has no label; 'None' is an MNRE relation"
    assert "current label:** no label" in _gold_line(at)
