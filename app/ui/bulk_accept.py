"""The Queue page's bulk accept (admins): count what accepting the current filter would do, ask to confirm, accept
in one transaction, and offer one undo of exactly that batch (app.services.bulk_accept)."""

from __future__ import annotations

import streamlit as st
from sqlalchemy.exc import OperationalError

from app.services.bulk_accept import accept_filtered, bulk_preview, undo_bulk
from app.services.queue_view import QueueFilter
from app.ui.auth import current_actor, refuse_unless_admin
from app.ui.render import count
from app.ui.state import flash, reviewer
from db.errors import LabelStoreError

LAST_BATCH = (
    "queue_bulk_batch"  # session state: (batch id, pairs accepted) of this session's latest bulk accept
)


def _accept(sessions, queue_filter: QueueFilter) -> None:
    actor = refuse_unless_admin("accept a filtered set of pairs at once")
    if actor is None:
        return
    try:
        done = accept_filtered(sessions, queue_filter, reviewer() or actor.identity, actor)
    except (LabelStoreError, OperationalError) as err:
        flash("error", f"Bulk accept failed, nothing was saved: {err}")
        return
    st.session_state[LAST_BATCH] = (done.batch, len(done.accepted))
    st.session_state["queue_bulk_confirm"] = False
    flash(
        "success",
        f"Accepted {count(len(done.accepted), 'pair')} (batch {done.batch}); skipped "
        f"{len(done.skipped_no_label):,} without a label and {len(done.skipped_decided):,} already decided.",
    )


def _undo(sessions, batch: str) -> None:
    actor = refuse_unless_admin("undo a bulk accept")
    if actor is None:
        return
    try:
        undone = undo_bulk(sessions, batch, reviewer() or actor.identity, actor)
    except (LabelStoreError, OperationalError) as err:
        flash("error", f"Undo of the bulk accept failed, nothing was changed: {err}")
        return
    st.session_state.pop(LAST_BATCH, None)
    kept = f"; {count(len(undone.kept), 'pair')} decided since keep that decision" if undone.kept else ""
    flash("success", f"Bulk accept {batch} undone: {count(len(undone.undone), 'pair')} back as before{kept}.")


def bulk_accept_panel(sessions, queue_filter: QueueFilter) -> None:
    """Admins only: the filter's pairs accepted at once after a confirmation, and the undo of the last batch."""
    if not current_actor().is_admin:
        return
    last = st.session_state.get(LAST_BATCH)
    if last is not None:
        batch, accepted = last
        st.button(
            f"Undo bulk accept ({count(accepted, 'pair')}, batch {batch})",
            on_click=_undo,
            args=(sessions, batch),
            key="queue_bulk_undo",
        )
    with st.expander("Bulk accept (admin): accept every pair of this filter"):
        if not st.toggle("Count the pairs", key="queue_bulk_count"):  # read on request: the Queue stays fast
            return
        try:
            preview = bulk_preview(sessions, queue_filter)
        except LabelStoreError as err:
            st.warning(str(err))
            return
        st.markdown(
            f"The filter matches **{count(len(preview.pair_ids), 'pair')}** (all of them, not only the rows "
            f"shown): **{preview.to_accept:,}** would be accepted with their label in effect; "
            f"{preview.no_label:,} have no label and {preview.decided:,} are already decided: those are skipped."
        )
        confirmed = st.checkbox(
            f"Yes, accept {count(preview.to_accept, 'pair')} as one batch", key="queue_bulk_confirm"
        )
        st.button(
            f"Accept {count(preview.to_accept, 'pair')}",
            type="primary",
            on_click=_accept,
            args=(sessions, queue_filter),
            key="queue_bulk_accept",
            disabled=not confirmed or preview.to_accept == 0,
        )
