"""Review's "Fix spans / add pair" control: pick the head's and the tail's words (st.pills, one click per word) and the
label, then either fix the shown pair's spans or add a new pair to the same post. Both are decisions in the store
(app.services.store.fix_spans / add_pair_beside): append-only, in the history, undone with U, in every export.

Collapsed by default behind a toggle: while it is off nothing below it is drawn or computed, so the keyboard flow of a
reviewer who never opens it is unchanged (its buttons have no keys).

The model's prediction is not recomputed for fixed spans: stored predictions are of the pair's own spans (the ones the
batch step and the Review page score), so after a fix the page marks the prediction as stale. An added pair is a new
pair with its own spans, which the Review page scores when it is shown.

Session keys (pair id P): span_open (the toggle), span_head_P / span_tail_P (the pills' word indices), span_label_P.
"""

from __future__ import annotations

import streamlit as st
from sqlalchemy.exc import OperationalError

from app.services.store import PairView, ReviewState, add_pair_beside, fix_spans
from app.ui.render import plain
from app.ui.resources import get_sessions
from app.ui.review_actions import SAVED_REVISIONS
from app.ui.state import flash, review_session
from db.errors import ConcurrentEditError, LabelStoreError


def as_span(words: list[int] | None, role: str) -> tuple[int, int]:
    """Picked word indices as (start, end exclusive); LabelStoreError unless they are consecutive words."""
    picked = sorted(words or [])
    if not picked:
        raise LabelStoreError(f"field {role!r}: pick the {role}'s words")
    if picked != list(range(picked[0], picked[-1] + 1)):
        raise LabelStoreError(f"field {role!r}: the {role} is one run of consecutive words")
    return picked[0], picked[-1] + 1


def _picked(pair_id: int) -> tuple[tuple[int, int], tuple[int, int], str]:
    state = st.session_state
    return (
        as_span(state.get(f"span_head_{pair_id}"), "head"),
        as_span(state.get(f"span_tail_{pair_id}"), "tail"),
        state.get(f"span_label_{pair_id}"),
    )


def _forget(pair_id: int) -> None:
    for key in ("head", "tail", "label"):
        st.session_state.pop(f"span_{key}_{pair_id}", None)


def save_spans(pair_id: int, revision: int) -> None:
    """Button callback: fix the shown pair's spans with the picked label, on the revision that was shown."""
    try:
        head, tail, label = _picked(pair_id)
        saved = fix_spans(get_sessions(), pair_id, st.session_state["reviewer"], revision, head, tail, label)
    except ConcurrentEditError as err:
        flash(
            "error",
            f"Not saved: pair {pair_id} was changed by {err.annotator} meanwhile; it now shows theirs.",
        )
        return
    except (LabelStoreError, OperationalError) as err:
        flash("error", f"Spans not saved: {err}. Your picks are kept.")
        return
    _forget(pair_id)
    review_session().actions.append(pair_id)  # U undoes it like any decision
    # the revision this save created: the one U checks, whichever pair is shown by then (as review_actions.save)
    st.session_state.setdefault(SAVED_REVISIONS, {})[pair_id] = saved.revision
    flash("success", f"Pair {pair_id}: spans fixed, {saved.status} as {plain(saved.label)}.")


def save_new_pair(pair_id: int, dataset: str) -> None:
    """Button callback: add the picked pair to the shown pair's post and open it."""
    try:
        head, tail, label = _picked(pair_id)
        new_id = add_pair_beside(
            get_sessions(), pair_id, dataset, st.session_state["reviewer"], head, tail, label
        )
    except (LabelStoreError, OperationalError) as err:
        flash("error", f"Pair not added: {err}. Your picks are kept.")
        return
    _forget(pair_id)
    review = review_session()
    review.actions.append(new_id)
    st.session_state.setdefault(SAVED_REVISIONS, {})[new_id] = 1  # its label: the new pair's first decision
    review.open(new_id)
    flash("success", f"Pair {new_id} added to this post as {plain(label)}; it is shown now.")


def span_editor(view: PairView, state: ReviewState) -> None:
    """The toggle, and when it is on: head and tail words, the label, and the two saves."""
    if state.spans_fixed:
        st.caption(
            "Spans fixed on Review: the model's prediction above was made for the pair's original spans "
            f"({plain(view.head[2])} -> {plain(view.tail[2])}) and is stale."
        )
    if not st.toggle("Fix spans / add pair", key="span_open"):
        return
    pair_id, tokens = view.pair_id, view.tokens
    head, tail = state.head or view.head, state.tail or view.tail
    st.session_state.setdefault(f"span_head_{pair_id}", list(range(head[0], head[1])))
    st.session_state.setdefault(f"span_tail_{pair_id}", list(range(tail[0], tail[1])))
    with st.container(border=True):
        words = list(range(len(tokens)))
        st.pills(
            "Head words",
            words,
            selection_mode="multi",
            format_func=lambda i: tokens[i],
            key=f"span_head_{pair_id}",
        )
        st.pills(
            "Tail words",
            words,
            selection_mode="multi",
            format_func=lambda i: tokens[i],
            key=f"span_tail_{pair_id}",
        )
        labels = view.labels
        current = state.label_in_effect
        st.selectbox(
            "Label of the pair",
            labels,
            index=labels.index(current) if current in labels else 0,
            key=f"span_label_{pair_id}",
        )
        fix, add = st.columns(2)
        fix.button(
            "Fix this pair's spans",
            on_click=save_spans,
            args=(pair_id, state.revision),
            key="span_fix",
            width="stretch",
        )
        add.button(
            "Add as a new pair",
            on_click=save_new_pair,
            args=(pair_id, view.dataset),
            key="span_add",
            width="stretch",
        )
