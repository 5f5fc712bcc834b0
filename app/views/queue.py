"""Queue: every entity pair with filters, sorted by what most needs a human (uncertain, image-reliant, disputed).
The parts of the page are drawn by app.ui.queue_panels from app.services.queue_view's plain data."""

from __future__ import annotations

import streamlit as st

from app.services.model_status import no_active_model_text
from app.services.queue_view import default_sort, queue_context, queue_page
from app.services.store import Progress
from app.ui.bulk_accept import bulk_accept_panel
from app.ui.queue_panels import agreement_panel, filter_panel, progress_panel, queue_table, reliance_notes
from app.ui.resources import get_sessions
from app.ui.review_link import link_filters, queue_filters_from_link, write_queue_link
from app.ui.state import review_session, show_flash

st.title("Review queue")
show_flash()
sessions = get_sessions()
context = queue_context(sessions)
if not context.datasets:
    st.info(
        "The label store is empty. Run `make app`: it imports a dataset and queues the first model, "
        "or add a single post on the **Add post** page."
    )
    st.stop()
if context.active is None:
    st.warning(no_active_model_text(context.status, "the prediction and uncertainty columns stay empty"))

# reviewers work through one split at a time: start on val (the held-out split) when the store has one
splits = context.options["split"]
default_split = "val" if "val" in splits else (splits or [None])[0]
# the filters live in app.ui.state, never in the widget keys; a reload or a shared link brings its own
kept = queue_filters_from_link(sort=default_sort(), split=default_split)
queue_filter = filter_panel(kept, context.datasets, context.options)
write_queue_link(
    kept
)  # the address bar holds the filter and sort: a reload or a shared link opens them again
# image reliance from whichever version computed it (the active one when it has), named by reliance_notes
shown = queue_page(sessions, queue_filter, kept.sort, kept.limit, context.reliance_source)
progress_panel(shown.counts, Progress(shown.counts), queue_filter)
agreement_panel(sessions, queue_filter.dataset)
# admins: accept the whole filter at once, with one undo (before the stop below: the undo stays reachable)
bulk_accept_panel(sessions, queue_filter)
if not shown.items:
    st.info("No pair matches these filters.")
    st.stop()

details = reliance_notes(shown.items, kept, context.reliance_source, context.active)
event = queue_table(shown.items, kept, details)
ids = [i.pair_id for i in shown.items]
review = review_session()
# reviewing in the label-error order is the audit: Review shows the out-of-sample suggestion against gold
audit = kept.sort == "label_error" or kept.suspects is not None
if st.button("Review these in this order", type="primary", key="queue_start"):
    review.queue, review.position, review.audit, review.link = ids, 0, audit, link_filters(kept)
    st.switch_page("views/review.py")
selected = tuple(event.selection.rows)
if selected and selected != st.session_state.get("queue_opened_selection"):
    st.session_state["queue_opened_selection"] = selected  # a kept selection must not reopen on every visit
    review.queue, review.position, review.audit, review.link = ids, selected[0], audit, link_filters(kept)
    st.switch_page("views/review.py")
