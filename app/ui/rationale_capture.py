"""Review's optional evidence marks: the words (st.pills, one click per word) and one box on the image (a Plotly box
selection, st.plotly_chart(on_select=..., selection_mode="box")). The marks live in session state per pair and go
with the next decision (review_actions.save reads marked(pair_id)); with nothing marked, the decision is saved
exactly as before.

Free for a reviewer who marks nothing: the panel is a closed expander that tracks its state (on_change="rerun"), and
nothing inside it runs while it is closed: no image read, no figure built or sent, no pills drawn. A key press then
costs the page two session-state look-ups. Opened once, it stays open from pair to pair until closed.

Its own fragment: a click on a word, a box dragged or "Clear box" reruns only the panel (evidence_marks, a fragment
inside Review's panel fragment), never the page, and the marks are kept in session keys of their own, so they survive
those reruns, closing the panel and moving between pairs until a decision or an undo takes them (forget).

Why pills: a word is one click (and a second click takes it back), the words stay in reading order and read as the
post, and the entities are simply not offered; a multiselect needs a dropdown and typing, and a span selection
over the text needs a custom component. Why Plotly: the app already draws with Plotly, Streamlit returns the box of a
box selection itself, and no third-party component (streamlit-drawable-canvas has not kept up with Streamlit's
releases; streamlit-image-coordinates returns a point or a rectangle but is one more dependency to install offline
and keep in step) is needed.

Session keys (pair id P): review_words_P (the marked words), review_box_P (the box in image pixels, or None),
review_box_size_P (the image's width, height), review_evidence_open (the expander, one for every pair); the widgets'
own keys carry a generation number that forget() and "Clear box" move on, which drops a widget's old value:
review_words_pick_P_N (the pills), review_box_chart_P_N (the chart).
"""

from __future__ import annotations

from functools import partial

import streamlit as st

from app.services.rationales import Rationale, box_from_selection, candidate_words, describe, marked_rationale
from app.services.store import PairView

Entity = tuple[int, int, str]  # an entity span: start, end exclusive, its words
MAX_FIGURE_SIDE = 480  # pixels of the image sent to the browser; the axes stay in the original's pixels
GRID = 24  # invisible points per side: Plotly's box selection needs a selectable trace under the box
OPEN_KEY = "review_evidence_open"
PANEL_LABEL = "Evidence (optional): why does the label hold?"


def words_key(pair_id: int) -> str:
    return f"review_words_{pair_id}"


def box_key(pair_id: int) -> str:
    return f"review_box_{pair_id}"


def size_key(pair_id: int) -> str:
    return f"review_box_size_{pair_id}"


def _generation(name: str, pair_id: int) -> int:
    return st.session_state.get(f"review_{name}_reset_{pair_id}", 0)


def _next_generation(name: str, pair_id: int) -> None:
    st.session_state[f"review_{name}_reset_{pair_id}"] = _generation(name, pair_id) + 1


def pills_key(pair_id: int) -> str:
    return f"review_words_pick_{pair_id}_{_generation('words', pair_id)}"


def chart_key(pair_id: int) -> str:
    return f"review_box_chart_{pair_id}_{_generation('box', pair_id)}"


def forget(pair_id: int) -> None:
    """Drop a pair's marks (after its decision is saved or undone): the page then shows the stored rationale."""
    for key in (words_key(pair_id), box_key(pair_id), size_key(pair_id)):
        st.session_state.pop(key, None)
    _next_generation("words", pair_id)
    reset_chart(pair_id)


def reset_chart(pair_id: int) -> None:
    """A new key for the pair's chart, so a box selected on it before is not read again."""
    _next_generation("box", pair_id)


def marked(pair_id: int) -> Rationale | None:
    """The reviewer's marks on the pair as a rationale; None when nothing is marked (nothing else runs then)."""
    words = st.session_state.get(words_key(pair_id))
    box = st.session_state.get(box_key(pair_id))
    if not words and box is None:
        return None
    return marked_rationale(words, box, st.session_state.get(size_key(pair_id)))


@st.cache_data(max_entries=200, show_spinner=False)
def evidence_figure(image_path: str, box: tuple | None):
    """(figure, (width, height)): the image in its own pixel coordinates (y down), box-selectable, with `box`
    drawn; None when the image cannot be read."""
    import plotly.graph_objects as go

    from model.images import ImageError, load_image

    try:
        image = load_image(image_path)
    except ImageError:
        return None
    with image:
        size = image.size
        thumb = image.convert("RGB")
        thumb.thumbnail((MAX_FIGURE_SIDE, MAX_FIGURE_SIDE))
    width, height = size
    xs = [width * (i + 0.5) / GRID for i in range(GRID)]
    ys = [height * (j + 0.5) / GRID for j in range(GRID)]
    fig = go.Figure(
        go.Scatter(
            x=[x for x in xs for _ in ys],
            y=[y for _ in xs for y in ys],
            mode="markers",
            marker={"opacity": 0, "size": 4},
            hoverinfo="skip",
            showlegend=False,
        )
    )
    fig.add_layout_image(
        source=thumb, x=0, y=0, sizex=width, sizey=height, xref="x", yref="y", sizing="stretch", layer="below"
    )
    if box is not None:
        fig.add_shape(
            type="rect", x0=box[0], y0=box[1], x1=box[2], y1=box[3], line={"color": "#d62728", "width": 3}
        )
    fig.update_xaxes(range=[0, width], visible=False, constrain="domain")
    fig.update_yaxes(range=[height, 0], visible=False, scaleanchor="x")
    fig.update_layout(
        dragmode="select", margin={"l": 0, "r": 0, "t": 0, "b": 0}, height=320, newselection_mode="immediate"
    )
    return fig, size


def clear_box(pair_id: int) -> None:
    st.session_state[box_key(pair_id)] = None
    reset_chart(pair_id)


def take_words(pair_id: int, key: str) -> None:
    """The pills' callback: their value becomes the pair's marked words."""
    st.session_state[words_key(pair_id)] = list(st.session_state.get(key) or [])


def take_box(pair_id: int, key: str, size: tuple[int, int]) -> None:
    """The chart's callback: the box just dragged (in image pixels) becomes the pair's box, and the chart gets a new
    key, so it is drawn again with that box and its selection is not read a second time. A selection without a box
    (a click on the image) leaves the box as it is: "Clear box" removes it."""
    event = st.session_state.get(key)
    selected = box_from_selection(event.get("selection") if event else None, size)
    if selected is not None:
        st.session_state[box_key(pair_id)] = selected
        reset_chart(pair_id)


def seed_marks(pair_id: int, stored: Rationale | None) -> None:
    """Start the pair's marks from its stored rationale (the decision in effect), once: a decision carries what the
    panel shows. Two session-state writes, nothing read from disk."""
    st.session_state.setdefault(words_key(pair_id), list(stored.tokens) if stored else [])
    st.session_state.setdefault(box_key(pair_id), stored.box if stored else None)
    if stored is not None and stored.image_size is not None:
        st.session_state.setdefault(size_key(pair_id), stored.image_size)


def evidence_panel(
    view: PairView, stored: Rationale | None, entities: tuple[Entity | None, Entity | None] | None = None
) -> None:
    """A closed expander, opened on request; only then are the words and the image drawn (evidence_marks). Closed,
    one caption says what the next decision will carry, if anything. `entities`: the head and tail in effect
    (ReviewState.head / .tail: a span a decision fixed), whose words are not offered; default the pair's own."""
    pair_id = view.pair_id
    seed_marks(pair_id, stored)
    panel = st.expander(PANEL_LABEL, key=OPEN_KEY, on_change="rerun")
    with panel:
        if panel.open:
            head, tail = entities or (None, None)
            evidence_marks(view, (head or view.head, tail or view.tail))
    if not panel.open:
        pending = marked(pair_id)
        if pending is not None:
            st.caption(f"Evidence marked: {describe(pending)}; it goes with the next decision.")


@st.fragment
def evidence_marks(view: PairView, entities: tuple[Entity, Entity]) -> None:
    """The words to click (all but the words of the head and tail in effect, `entities`) and, for a post with an
    image, the image to draw one box on. Its widgets rerun only this fragment; their values are copied to the pair's
    marks by their callbacks (take_words, take_box)."""
    pair_id = view.pair_id
    head, tail = entities
    candidates = candidate_words(len(view.tokens), head[:2], tail[:2])
    # marks made before a span fix may lie in the fixed span now: not offered, so not kept as the pills' default
    offered = set(candidates)
    default = [i for i in st.session_state.get(words_key(pair_id)) or [] if i in offered]
    st.pills(
        "Evidence words (click to mark, click again to unmark; the entities are not evidence)",
        candidates,
        selection_mode="multi",
        format_func=lambda i: view.tokens[i],
        default=default or None,
        key=pills_key(pair_id),
        on_change=take_words,
        args=(pair_id, pills_key(pair_id)),
    )
    if not view.image_path:
        return
    box = st.session_state.get(box_key(pair_id))
    drawn = evidence_figure(view.image_path, box)
    if drawn is None:
        st.caption("Evidence box: the image cannot be read, so no box can be drawn.")
        return
    figure, size = drawn
    st.session_state[size_key(pair_id)] = size
    key = chart_key(pair_id)
    st.plotly_chart(
        figure,
        key=key,
        on_select=partial(take_box, pair_id, key, size),
        selection_mode="box",
        config={"displayModeBar": False},
    )
    left, right = st.columns([3, 1])
    if box is None:
        left.caption("Evidence box: drag a box over the image to mark where the evidence is.")
    else:
        left.caption(
            f"Evidence box: x {box[0]:.0f}-{box[2]:.0f}, y {box[1]:.0f}-{box[3]:.0f} of {size[0]}x{size[1]} "
            "pixels; saved with the next decision."
        )
        right.button("Clear box", key=f"review_clear_box_{pair_id}", on_click=clear_box, args=(pair_id,))
