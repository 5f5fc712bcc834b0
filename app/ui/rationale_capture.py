"""Review's optional evidence marks: the words (st.pills, one click per word) and one box on the image (a Plotly box
selection, st.plotly_chart(on_select="rerun", selection_mode="box")). The marks live in session state per pair and
go with the next decision (review_actions.save reads marked(pair_id)); with nothing marked, the decision is saved
exactly as before.

Why pills: a word is one click (and a second click takes it back), the words stay in reading order and read as the
post, and the entities are simply not offered; a multiselect needs a dropdown and typing, and a span selection
over the text needs a custom component. Why Plotly: the app already draws with Plotly, Streamlit returns the box of a
box selection itself, and no third-party component (streamlit-drawable-canvas has not kept up with Streamlit's
releases; streamlit-image-coordinates returns a point or a rectangle but is one more dependency to install offline
and keep in step) is needed.

Session keys (pair id P): review_words_P (the pills' value), review_box_P (the box in image pixels, or None),
review_box_size_P (the image's width, height), review_box_chart_P_N (the chart; N grows when the box is cleared,
which drops the chart's selection).
"""

from __future__ import annotations

import streamlit as st

from app.services.rationales import Rationale, box_from_selection, candidate_words, marked_rationale
from app.services.store import PairView

MAX_FIGURE_SIDE = 480  # pixels of the image sent to the browser; the axes stay in the original's pixels
GRID = 24  # invisible points per side: Plotly's box selection needs a selectable trace under the box


def words_key(pair_id: int) -> str:
    return f"review_words_{pair_id}"


def box_key(pair_id: int) -> str:
    return f"review_box_{pair_id}"


def size_key(pair_id: int) -> str:
    return f"review_box_size_{pair_id}"


def forget(pair_id: int) -> None:
    """Drop a pair's marks (after its decision is saved or undone): the page then shows the stored rationale."""
    for key in (words_key(pair_id), box_key(pair_id), size_key(pair_id)):
        st.session_state.pop(key, None)
    reset_chart(pair_id)


def reset_chart(pair_id: int) -> None:
    """A new key for the pair's chart, so a box selected on it before is not read again."""
    counter = f"review_box_reset_{pair_id}"
    st.session_state[counter] = st.session_state.get(counter, 0) + 1


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


def evidence_panel(view: PairView, stored: Rationale | None) -> None:
    """The words to click and, for a post with an image, the image to draw one box on. Starts from the pair's
    stored rationale (the decision in effect), so coming back to a pair shows what was saved."""
    pair_id = view.pair_id
    candidates = candidate_words(len(view.tokens), view.head[:2], view.tail[:2])
    st.session_state.setdefault(words_key(pair_id), list(stored.tokens) if stored else [])
    st.session_state.setdefault(box_key(pair_id), stored.box if stored else None)
    with st.expander("Evidence (optional): why does the label hold?", expanded=True):
        st.pills(
            "Evidence words (click to mark, click again to unmark; the entities are not evidence)",
            candidates,
            selection_mode="multi",
            format_func=lambda i: view.tokens[i],
            key=words_key(pair_id),
        )
        if not view.image_path:
            return
        box = st.session_state[box_key(pair_id)]
        drawn = evidence_figure(view.image_path, box)
        if drawn is None:
            return
        figure, size = drawn
        st.session_state[size_key(pair_id)] = size
        chart_key = f"review_box_chart_{pair_id}_{st.session_state.get(f'review_box_reset_{pair_id}', 0)}"
        event = st.plotly_chart(
            figure,
            key=chart_key,
            on_select="rerun",
            selection_mode="box",
            config={"displayModeBar": False},
        )
        selected = box_from_selection(event.selection if event else None, size)
        if selected is not None and selected != box:
            st.session_state[box_key(pair_id)] = box = selected
            st.rerun()  # redraw the figure with the box as the saved one will look
        left, right = st.columns([3, 1])
        if box is None:
            left.caption("Evidence box: drag a box over the image to mark where the evidence is.")
        else:
            left.caption(
                f"Evidence box: x {box[0]:.0f}-{box[2]:.0f}, y {box[1]:.0f}-{box[3]:.0f} of {size[0]}x{size[1]} "
                "pixels; saved with the next decision."
            )
            right.button("Clear box", key=f"review_clear_box_{pair_id}", on_click=clear_box, args=(pair_id,))
