"""Review-page actions and per-post caches: the button callbacks record a decision or an undo and move on.

Callbacks run before the page reruns, so their messages (flash) appear on the next render, and a failure leaves
the reviewer's pending note and label in the session untouched.
"""

from __future__ import annotations

import streamlit as st
from PIL import Image, ImageDraw
from sqlalchemy.exc import OperationalError

from app.services.store import PairView, Progress, decide, load_pair_view, own_undo_stack, undo
from app.ui.auth import current_actor
from app.ui.rationale_capture import forget, marked
from app.ui.render import draw_boxes, label_text
from app.ui.resources import get_sessions
from app.ui.state import flash, review_session, show_flash
from db.errors import ConcurrentEditError, LabelStoreError
from db.label_errors import AUDIT_ORIGIN
from model.images import ImageError, load_image

# session state: pair id -> revision this reviewer's last save created
SAVED_REVISIONS = "review_saved_revisions"
SHORTCUTS = (
    "**A** accept · **a label's key** (on its button) correct to it · **Enter** the model's top label · "
    "**E** the picked label · **X** reject · "
    "**S** skip · **N** next · **P** previous · **U** undo"
)
AUDIT_SHORTCUTS = "**T** take the suggested label · **K** keep the gold label"


@st.cache_data(max_entries=1000, show_spinner=False)
def pair_view(url: str, pair_id: int, model_version: str | None) -> PairView:
    with get_sessions()() as session:
        return load_pair_view(session, pair_id)


@st.cache_data(max_entries=200, show_spinner=False)
def boxed_image(path: str, boxes: tuple) -> Image.Image:
    """The post's image with its grounded boxes; an image that cannot be read (damaged, replaced, too large since
    import) becomes a grey panel that says why, never an exception in the page."""
    try:
        image = load_image(path)
    except ImageError as err:
        return unreadable_image_panel(err.problem)
    with image:
        return draw_boxes(image, list(boxes))


def unreadable_image_panel(problem: str) -> Image.Image:
    panel = Image.new("RGB", (480, 80), (235, 235, 235))
    ImageDraw.Draw(panel).text((10, 30), f"image not shown: {problem}"[:90], fill=(80, 80, 80))
    return panel


def save(status: str, label: str | None = None) -> None:
    """Button callback: record the decision on the revision that was shown, then go to the next pair."""
    review, (pair_id, revision) = review_session(), st.session_state["review_shown"]
    note = st.session_state.get(f"review_note_{pair_id}", "")
    if status == "accepted" and label is None:  # a rejected pair, or a post added here that nobody labelled
        flash(
            "warning",
            f"Nothing to accept: pair {pair_id} has no label. Correct it to a label (its key, Enter or E) or reject it (X).",
        )
        return
    origin = AUDIT_ORIGIN if review.audit else None
    try:
        saved = decide(
            get_sessions(),
            pair_id,
            status,
            st.session_state["reviewer"],
            revision,
            label,
            note,
            origin,
            rationale=marked(pair_id),  # None when nothing is marked: the decision is saved as before
        )
    except OperationalError as err:
        flash(
            "error",
            f"The database is busy or unavailable ({err.orig}); nothing was saved. "
            "Your note and label are kept: press the key again.",
        )
        return
    except ConcurrentEditError as err:
        # the page shows the pair's new state on this rerun; the reviewer's note and label stay in place
        flash(
            "error",
            f"Not saved: pair {pair_id} was changed by {err.annotator} meanwhile (revision {err.revision}); it now "
            "shows their decision. Your note and label are kept: press the key again to save yours on top of it.",
        )
        return
    except LabelStoreError as err:
        flash("error", f"Not saved: {err}. Your note, label and evidence marks are kept.")
        return
    st.session_state.pop(f"review_note_{pair_id}", None)
    forget(pair_id)  # coming back shows the stored rationale
    review.actions.append(pair_id)
    # the revision this reviewer's save created: the one an undo of it must find still current
    st.session_state.setdefault(SAVED_REVISIONS, {})[pair_id] = saved.revision
    # the status the store recorded: a correction to the gold label is recorded as an acceptance
    flash(
        "success", f"Pair {pair_id}: {saved.status}{f' as {label_text(label)}' if label is not None else ''}."
    )
    review.advance()  # past the last pair: the page says the queue has ended and what to do next


def undo_action() -> None:
    """Button callback: undo this session's last decision; with none (a reload, a new tab), the reviewer's newest
    decision still in effect from the store's history (app.services.store.own_undo_stack); with none either, the
    shown pair's.

    The undo is checked against the revision this reviewer saw: their own save's revision, the pair's current one
    as the history read it, or the shown one.
    """
    review = review_session()
    shown_pair, shown_revision = st.session_state["review_shown"]
    own = [] if review.actions else own_undo_stack(get_sessions(), st.session_state["reviewer"], limit=1)
    if review.actions:
        pair_id = review.actions[-1]
        revision = st.session_state.get(SAVED_REVISIONS, {}).get(pair_id, shown_revision)
    elif own:  # after a reload: the reviewer's newest decision still in effect, from the store's history
        pair_id, revision = own[0].pair_id, own[0].current_revision
    else:
        pair_id, revision = shown_pair, shown_revision
    try:
        undo(get_sessions(), pair_id, st.session_state["reviewer"], revision, actor=current_actor())
    except ConcurrentEditError as err:
        if review.actions:
            review.actions.pop()
        review.open(pair_id)
        flash(
            "error",
            f"Not undone: {err.annotator} saved pair {pair_id} after you (revision {err.revision}); "
            "their decision stands. The pair is shown with its current state.",
        )
        return
    except OperationalError as err:
        flash("error", f"Undo failed: the database is busy or unavailable ({err.orig}); nothing was changed.")
        return
    except LabelStoreError as err:
        flash("error", f"Undo failed: {err}")
        return
    if review.actions:
        review.actions.pop()
    forget(pair_id)  # the restored decision's rationale is shown, not the marks of the one undone
    review.open(pair_id)
    flash("success", f"Pair {pair_id}: last decision undone.")


def undo_available(shown_revision: int) -> bool:
    """Whether U has something to take back: this session's own decisions, the reviewer's decisions still in effect
    in the store (after a reload), or a decision on the shown pair."""
    if review_session().actions or shown_revision > 0:
        return True
    return bool(own_undo_stack(get_sessions(), st.session_state.get("reviewer", ""), limit=1))


def end_of_queue(progress: Progress) -> None:
    """The end of the Review queue: how far its pairs are, and what to do next (each a page link)."""
    show_flash()  # the last decision's message
    st.success(f"End of this queue: {progress.sentence()}.")
    st.markdown("**What next**")
    st.page_link("views/queue.py", label="Queue: change the filter or the sort for the next pairs", icon="🔎")
    if progress.skipped:
        st.caption(
            f"The {progress.skipped:,} skipped pairs are on the Queue page with the status filter 'skipped'."
        )
    st.page_link("views/export.py", label="Export: write the reviewed labels", icon="📦")
    st.page_link("views/models.py", label="Models: retrain on the reviewed labels", icon="🧠")
    st.page_link(
        "views/label_errors.py", label="Label errors: find likely wrong labels to review next", icon="🩺"
    )
    st.button(
        "Back to the last pair",
        shortcut="P",
        on_click=review_session().move,
        args=(-1,),
        key="review_prev",
    )
