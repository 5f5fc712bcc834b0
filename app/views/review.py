"""Review one pair at a time: the post, its image and crops, the model's distribution, and the decision.

Keyboard: A accept, a label's own key (1-9, then letters; the same on every pair) or Enter (the model's top
label) corrects to it, E correct to the picked label, X reject, S skip, N next, P previous, U undo (listed on the
page too). Optional evidence (app.ui.rationale_capture): click words, drag one box on the image; the marks go with
the next decision and undo takes them back. Every decision is saved at once with the reviewer's name and the
revision it was made on; a concurrent edit or a busy database shows a message and keeps the note and the picked
label. The parts of the page are drawn by app.ui.review_panels.
"""

from __future__ import annotations

import streamlit as st

from app.services.store import active_version, queue_progress, review_state
from app.ui import review_panels as panels
from app.ui.identity import require_reviewer
from app.ui.model_status import weak_model_warning
from app.ui.rationale_capture import evidence_panel
from app.ui.resources import get_sessions, store_url
from app.ui.review_actions import end_of_queue, pair_view
from app.ui.review_leases import fill_review_queue
from app.ui.review_link import restore_review_from_link, write_review_link
from app.ui.review_prefetch import prefetch_next
from app.ui.span_editor import span_editor
from app.ui.state import review_session, show_flash

st.title("Review")
weak_model_warning()  # app.services.model_status: no model, or one too weak to trust
reviewer = require_reviewer()


@st.fragment
def review_panel(reviewer: str) -> None:
    """The pair, the model and the decision buttons: a key press reruns only this fragment, never the title, the
    sidebar or the navigation (the decisions' callbacks run first, then this redraws the next pair)."""
    sessions, review = get_sessions(), review_session()
    active = active_version(sessions)  # db.model_versions.ModelVersionInfo, or None before the first model
    restore_review_from_link(
        sessions, review
    )  # a reload or a shared link: its queue at its pair (first run only)
    fill_review_queue(sessions, review, reviewer)  # nothing picked on the Queue: pairs under leases
    if review.at_end:
        end_of_queue(queue_progress(sessions, review.queue))
        return
    if review.pair_id is None:
        st.info("Nothing to review: the store has no unreviewed pair. Pick pairs on the **Queue** page.")
        return

    view = pair_view(store_url(), review.pair_id, active.version_id if active else None)
    # the label in effect comes from the store's one rule (ReviewState): the label every export writes
    state, audit = review_state(sessions, view.pair_id, with_audit=review.audit)
    st.session_state["review_shown"] = (view.pair_id, state.revision)
    write_review_link(review, view.pair_id)  # the address bar reopens this pair in this queue

    show_flash()
    panels.pair_line(view, review, reviewer)
    panels.pair_text(view, state)
    view = panels.scored(view, active)
    panels.image_and_model(view)
    panels.label_line(view, state)
    # optional: words (click) and one box (drag on the image) saved with the next decision; starts from the saved ones
    evidence_panel(view, state.rationale, (state.head, state.tail))  # the words of the spans in effect
    span_editor(view, state)  # off by default, nothing computed until opened
    if review.audit:
        panels.audit_panel(audit)
    panels.decision_buttons(state, review)
    panels.correction_buttons(view)
    panels.note_and_keys(view, state, review.audit)
    panels.history_panel(state)
    # the next pairs' view, prediction, objects and chart, computed while the reviewer reads this one
    prefetch_next(review, reviewer, active)


review_panel(reviewer)
