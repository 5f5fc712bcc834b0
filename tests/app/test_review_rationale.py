"""Review's optional evidence marks: words (pills) and one box (a Plotly box selection) go with the next decision,
undo takes them back, the saved rationale is shown when the reviewer comes back, the History says which decision
carried one, and a decision without marks stores no rationale."""

from __future__ import annotations

from sqlalchemy import select

from app.services.rationales import box_from_selection, candidate_words, describe, marked_rationale
from app.ui.rationale_capture import OPEN_KEY
from db.models import Annotation
from db.models import Rationale as RationaleRow
from db.schema import open_database
from tests.app.conftest import no_exceptions

REVIEW = "views/review.py"


def stored(url: str) -> list[tuple[int, int, str, list[int], tuple | None]]:
    """(pair, revision, status, tokens, box) of every decision's rationale, in the order written."""
    engine, sessions = open_database(url)
    with sessions() as s:
        rows = s.execute(
            select(
                Annotation.pair_id,
                Annotation.revision,
                Annotation.status,
                RationaleRow.tokens,
                RationaleRow.box_x0,
                RationaleRow.box_y0,
                RationaleRow.box_x1,
                RationaleRow.box_y1,
            )
            .join(RationaleRow, RationaleRow.annotation_id == Annotation.id)
            .order_by(Annotation.id)
        ).all()
    engine.dispose()
    return [
        (p, r, st, list(t), None if x0 is None else (x0, y0, x1, y1)) for p, r, st, t, x0, y0, x1, y1 in rows
    ]


def n_decisions(url: str) -> int:
    engine, sessions = open_database(url)
    with sessions() as s:
        n = len(s.scalars(select(Annotation.id)).all())
    engine.dispose()
    return n


def pills(at, pair: int):
    return next(p for p in at.pills if p.key.startswith(f"review_words_pick_{pair}_"))


def open_panel(at) -> None:
    """Open the evidence expander (its state is a session key: what a click on it sets)."""
    at.session_state[OPEN_KEY] = True
    at.run()


def test_box_from_selection_reads_streamlits_box_in_image_pixels():
    selection = {"points": [], "box": [{"xref": "x", "yref": "y", "x": [40.4, 10.2], "y": [5.5, 30.1]}]}
    assert box_from_selection(selection, (64, 48)) == (10.0, 5.0, 41.0, 31.0)
    # clipped to the image; the last box drawn counts
    two = {"box": [{"x": [0, 5], "y": [0, 5]}, {"x": [-10, 100], "y": [20, 90]}]}
    assert box_from_selection(two, (64, 48)) == (0.0, 20.0, 64.0, 48.0)
    assert box_from_selection({"box": [], "points": [{"x": 1, "y": 2}]}, (64, 48)) is None
    assert box_from_selection({"box": [{"x": [70, 90], "y": [1, 2]}]}, (64, 48)) is None  # outside the image
    assert box_from_selection(None, (64, 48)) is None


def test_marks_make_a_rationale_only_when_something_is_marked():
    assert marked_rationale([], None, (64, 48)) is None
    assert marked_rationale(None, None, None) is None
    r = marked_rationale([5, 2, 5], (1, 2, 3, 4), (64, 48))
    assert (r.tokens, r.box, r.image_size, r.source) == ((2, 5), (1.0, 2.0, 3.0, 4.0), (64, 48), "reviewer")
    assert marked_rationale([3], None, (64, 48)).image_size is None
    assert candidate_words(6, (0, 1), (3, 5)) == [1, 2, 5]
    assert describe(r) == "2 words + box" and describe(None) == ""


def test_words_and_box_are_saved_with_the_decision_undone_and_shown_again(make_app, seeded_url):
    at = make_app(seeded_url, REVIEW)
    no_exceptions(at)
    open_panel(at)
    pair = at.session_state["review_shown"][0]
    words = pills(at, pair)
    options = candidates(seeded_url, pair)
    assert len(words.options) == len(options) > 2, "the post's words (without the entities) are offered"
    size = at.session_state[
        f"review_box_size_{pair}"
    ]  # the synthetic posts have an image: the box chart is drawn
    words.set_value([options[0], options[1]]).run()  # what a reviewer's two clicks leave
    marked_words = list(at.session_state[f"review_words_{pair}"])
    # the chart's selection handler (box_from_selection, tested above) leaves the box here
    at.session_state[f"review_box_{pair}"] = (1.0, 2.0, float(size[0] - 1), float(size[1] - 2))
    at.run()
    at.button(key="review_accept").click().run()
    no_exceptions(at)
    box = (1.0, 2.0, float(size[0] - 1), float(size[1] - 2))
    assert stored(seeded_url) == [(pair, 1, "accepted", sorted(marked_words), box)]

    # back to the pair: the undo row carries no rationale (there was none before)
    at.button(key="review_undo").click().run()
    no_exceptions(at)
    assert at.session_state["review_shown"][0] == pair
    assert stored(seeded_url) == [(pair, 1, "accepted", sorted(marked_words), box)]
    assert not pills(at, pair).value, "the undone decision's marks are gone"

    pills(at, pair).set_value([options[2]]).run()
    at.button(key="review_reject").click().run()
    no_exceptions(at)
    assert stored(seeded_url)[-1][:4] == (pair, 3, "rejected", [options[2]])

    at.button(key="review_prev").click().run()  # coming back shows the saved rationale
    assert at.session_state["review_shown"][0] == pair
    assert list(pills(at, pair).value) == [options[2]]
    history = next(d.value for d in at.dataframe if "rationale" in d.value.columns)
    assert list(history["rationale"])[:3] == ["1 word", "", "2 words + box"]


def candidates(url: str, pair: int) -> list[int]:
    from app.services.store import load_pair_view

    engine, sessions = open_database(url)
    with sessions() as s:
        view = load_pair_view(s, pair)
    engine.dispose()
    return candidate_words(len(view.tokens), view.head[:2], view.tail[:2])


def test_a_decision_without_marks_stores_no_rationale(make_app, seeded_url):
    at = make_app(seeded_url, REVIEW)
    at.button(key="review_accept").click().run()
    at.button(key="review_reject").click().run()
    no_exceptions(at)
    assert n_decisions(seeded_url) == 2
    assert stored(seeded_url) == []


def test_the_closed_panel_costs_nothing_and_keeps_marks_made_before_it_closed(
    make_app, seeded_url, monkeypatch
):
    import app.ui.rationale_capture as capture

    figures = []
    real = capture.evidence_figure
    monkeypatch.setattr(capture, "evidence_figure", lambda *args: figures.append(args) or real(*args))
    at = make_app(seeded_url, REVIEW)
    no_exceptions(at)
    first = at.session_state["review_shown"][0]
    # closed by default: no image read, no figure, no pills; the only chart is the model's
    assert figures == [] and not at.pills and len(at.get("plotly_chart")) == 1
    at.button(key="review_skip").click().run()  # a key press on the next pair: still nothing
    assert at.session_state["review_shown"][0] != first
    assert figures == [] and not at.pills and len(at.get("plotly_chart")) == 1

    open_panel(at)
    pair = at.session_state["review_shown"][0]
    assert len(figures) == 1 and len(at.get("plotly_chart")) == 2
    options = candidates(seeded_url, pair)
    pills(at, pair).set_value([options[1]]).run()
    at.session_state[OPEN_KEY] = False  # closed again: the mark stays and says so
    at.run()
    assert not at.pills
    assert any("Evidence marked: 1 word" in c.value for c in at.caption)
    at.button(key="review_accept").click().run()
    no_exceptions(at)
    assert stored(seeded_url) == [(pair, 1, "accepted", [options[1]], None)]


def test_the_pills_leave_out_the_words_of_a_fixed_span_not_the_pairs_own(make_app, seeded_url):
    from db.annotations import record_annotation
    from db.models import EntityPair, Post

    at = make_app(seeded_url, REVIEW)
    no_exceptions(at)
    pair = at.session_state["review_shown"][0]
    own = candidates(seeded_url, pair)
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as s:
        row = s.get(EntityPair, pair)
        tokens = list(s.get(Post, row.post_id).tokens)
        tail = set(range(row.tail_start, row.tail_end))
        own_head = list(range(row.head_start, row.head_end))
        word = next(i for i in own if i not in tail)  # the head becomes a word that was evidence before
        record_annotation(
            s, pair, status="accepted", annotator="ann", expected_revision=0, head=(word, word + 1)
        )
    engine.dispose()
    at.run()
    open_panel(at)
    no_exceptions(at)
    offered = list(pills(at, pair).options)  # the words as shown, in reading order
    expected = [i for i in range(len(tokens)) if i != word and i not in tail]
    assert offered == [tokens[i] for i in expected], offered
    assert set(own_head) <= set(expected), "the pair's own head words are evidence again"
