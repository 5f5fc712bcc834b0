"""The parts of the Review page, each drawn from plain data: the pair line and text, the image with its crops beside
the model's distribution, the label line, the audit box, the decision buttons, the label keys, the note and the
history. The page (app/views/review.py) only reads the pair and calls these in order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from app.services.label_keys import TOP_LABEL_KEY, KeyMapError, label_keys, load_label_keys
from app.services.store import AuditView, PairView, ReviewState
from app.ui.render import (
    MISSING,
    count,
    entity_legend,
    highlighted_text,
    image_caption,
    label_choice,
    label_text,
    plain,
    ranked_labels,
)
from app.ui.resources import store_url
from app.ui.review_actions import AUDIT_SHORTCUTS, SHORTCUTS, save, undo_action, undo_available
from app.ui.review_prefetch import pair_image, probability_chart, scored_view
from app.ui.state import ReviewSession
from explain.scene_graph_figures import object_caption, objects_provenance

if TYPE_CHECKING:
    from db.model_versions import ModelVersionInfo

NO_LABEL = "no label"  # distinct from "None", which is one of MNRE's relations
CROPS_SHOWN = 6


def shown_label(label: str | None) -> str:
    return f"`{label}`" if label is not None else NO_LABEL


def shown_status(state: ReviewState) -> str:
    """The status and who set it: an undo says so ("unreviewed by Ann" would read as Ann's decision)."""
    if state.undone:
        return f"{state.status} (after an undo by {plain(state.annotator)})"
    return f"{state.status} by {plain(state.annotator)}" if state.annotator else state.status


def queue_place(review: ReviewSession) -> str:
    """Where the pair sits: in a queue picked on the Queue page (or a link), its place of the whole; under leases,
    which the pair is of those taken this session (leases are taken one at a time, so there is no whole to count:
    "1 of 1 pair in this queue" read as a queue of one)."""
    if review.queue and review.queue == review.leased:
        return f"pair {review.position + 1} taken under your leases this session (the next is leased as you move on)"
    return f"{review.position + 1} of {count(len(review.queue), 'pair')} in this queue"


def pair_line(view: PairView, review: ReviewSession, reviewer: str) -> None:
    st.caption(
        f"Pair {view.pair_id} · {plain(view.dataset)} / {plain(view.split)}"
        f"{f' line {view.source_line}' if view.source_line else ''} · {queue_place(review)} · "
        f"reviewing as {plain(reviewer)}"
    )


def pair_text(view: PairView, state: ReviewState) -> None:
    """The post with its two entities marked: the spans in effect (one a decision fixed, else the pair's own)."""
    head, tail = state.head or view.head, state.tail or view.tail
    st.markdown(highlighted_text(view.tokens, head[:2], tail[:2]), unsafe_allow_html=True)
    st.markdown(entity_legend(head[2], tail[2]), unsafe_allow_html=True)


def scored(view: PairView, active: ModelVersionInfo | None) -> PairView:
    """The pair with the active model's prediction: the pair's line and text are on screen before the model runs on
    a pair it has not scored yet (the next pairs were scored ahead, app.ui.review_prefetch; this pair when a model
    became active since)."""
    if view.probabilities is not None or active is None:
        return view
    with st.spinner("Running the model on this pair ..."):
        try:
            # run once and stored; the prefetch of the pairs ahead shares it (app.ui.review_prefetch)
            return scored_view(store_url(), view.pair_id, active)
        except (OSError, ValueError) as err:
            st.error(f"The model {active.version_id} could not score this pair: {err}")
    return view


def crop_caption(k: int, crop) -> str:
    """ "crop 1: ping-pong ball? (score 0.31)": the object's name (a guess marked ?) and its grounding score, named."""
    score = f" (score {crop.score:.2f})" if crop.score is not None else ""
    return f"crop {k + 1}: {object_caption(crop.label or crop.source, crop.source)}{score}"


def image_and_model(view: PairView) -> None:
    """Image and crops on the left, the model on the right; without an image the message and the model stack, so no
    column is left empty beside a tall chart."""
    if view.image_path:
        left, right = st.columns([3, 2])
        image_col, crops_col = left.columns([3, 1])
        # the objects Inspect's scene graph is built from (one source: app.ui.explanation_panels.post_objects); a
        # guess is dotted
        image, objects = pair_image(store_url(), view)
        image_col.image(image, caption=image_caption([o.source for o in objects]), width="stretch")
        crop_files = [c for c in view.crops if c.path]
        for k, crop in enumerate(crop_files[:CROPS_SHOWN]):  # the dataset's crop images beside the image
            crops_col.image(crop.path, caption=crop_caption(k, crop), width="stretch")
        if crop_files:
            crops_col.caption(
                f"{count(len(crop_files), 'crop')} stored with the post"
                + (f", {CROPS_SHOWN} shown" if len(crop_files) > CROPS_SHOWN else "")
            )
        left.caption(objects_provenance([o.source for o in objects]))
    else:
        left = right = st.container()
        if view.image_missing:
            left.warning("This post's image is not on this machine: the model saw the text only.")
        else:
            left.info("This post has no image.")
    with right:
        if view.probabilities:
            predicted = max(view.probabilities, key=view.probabilities.get)
            st.markdown(
                f"**Model** `{view.model_version}` predicts **{label_text(predicted)}** "
                f"({view.probabilities[predicted]:.1%})"
            )
            st.plotly_chart(
                probability_chart(view.probabilities, view.gold_label),
                key="review_probs",
                config={"displayModeBar": False},
            )
        else:
            st.warning("No prediction: no model is active yet (see the **Models** page).")


def label_line(view: PairView, state: ReviewState) -> None:
    """Gold, the label in effect (the store's one rule: the label every export writes), status and revision."""
    gold_text = f"`{view.gold_label}`" if view.gold_label is not None else "no gold label (a post added here)"
    st.markdown(
        f"**Gold label:** {gold_text} · **current label:** {shown_label(state.label_in_effect)} · "
        f"**status:** {shown_status(state)} (revision {state.revision})"
    )
    if state.note:
        st.caption(f"Note kept with this decision: {plain(state.note)}")


def audit_panel(audit: AuditView | None) -> None:
    """The label-error audit: a model that never trained on this pair against the label the run scored."""
    with st.container(border=True):
        if audit is None:
            st.caption("Audit: no Find label errors run has scored this pair (Label errors page).")
            return
        flagged = " · flagged by cleanlab" if audit.flagged else ""
        who = (
            "a fold model that never saw this pair"
            if audit.source == "fold"
            else "the active model (never trained on this split)"
        )
        st.markdown(
            f"**Audit** (suspect {audit.rank} of run {audit.run_id}{flagged}): gold says "
            f"`{audit.given_label}` ({audit.given_probability:.1%}); {who} says "
            f"**`{audit.suggested_label}`** ({audit.suggested_probability:.1%})."
        )
        agrees = audit.suggested_label == audit.given_label
        take, keep = st.columns(2)
        take.button(
            f"Take {label_text(audit.suggested_label)}",
            shortcut="T",
            on_click=save,
            args=("corrected", audit.suggested_label),
            key="review_audit_take",
            type="primary",
            width="stretch",
            disabled=agrees,
            help="The model agrees with gold" if agrees else None,
        )
        keep.button(
            f"Keep {label_text(audit.given_label)}",
            shortcut="K",
            on_click=save,
            args=("accepted", audit.given_label),
            key="review_audit_keep",
            width="stretch",
        )


def decision_buttons(state: ReviewState, review: ReviewSession) -> None:
    """Accept, reject, skip, previous, next and undo, each with its key."""
    current = state.label_in_effect
    columns = st.columns(6)
    columns[0].button(
        "Accept",
        shortcut="A",
        on_click=save,
        args=("accepted", current),
        # a pair with no label has nothing to accept: not the highlighted action
        type="primary" if current is not None else "secondary",
        key="review_accept",
        width="stretch",
        # never disabled: a disabled button's key does nothing, silently; the save says why there is nothing to accept
        help="Nothing to accept: correct it to a label (its key, Enter or E) or reject it."
        if current is None
        else None,
    )
    columns[1].button(
        "Reject", shortcut="X", on_click=save, args=("rejected",), key="review_reject", width="stretch"
    )
    columns[2].button(
        "Skip", shortcut="S", on_click=save, args=("skipped",), key="review_skip", width="stretch"
    )
    columns[3].button(
        "Previous",
        shortcut="P",
        on_click=review.move,
        args=(-1,),
        key="review_prev",
        width="stretch",
        disabled=review.position == 0,
    )
    columns[4].button(
        "Next",
        shortcut="N",
        on_click=review.move,
        args=(1,),
        key="review_next",
        width="stretch",
        disabled=review.position >= len(review.queue) - 1,
    )
    columns[5].button(
        "Undo",
        shortcut="U",
        on_click=undo_action,
        key="review_undo",
        width="stretch",
        disabled=not undo_available(state.revision),  # after a reload too: the store's history
    )


def correction_buttons(view: PairView) -> None:
    """Enter for the model's top label, one key per label for the whole dataset (app.services.label_keys, in label
    order, so a hand can learn them) and E for a label picked from the full list."""
    try:
        keys = load_label_keys(view.dataset, view.labels)
    except KeyMapError as err:
        st.warning(f"Label keys file ignored ({err}); the default keys are used.")
        keys = label_keys(view.labels)
    if view.probabilities:
        top = max(view.probabilities, key=view.probabilities.get)
        st.button(
            f"Enter · the model's top label: {label_text(top)} {view.probabilities[top]:.0%}",
            shortcut=TOP_LABEL_KEY,
            on_click=save,
            args=("corrected", top),
            key="review_top",
        )
    st.markdown("**Correct to** (each label's key is the same on every pair)")
    quick = st.columns(4)
    for k, (name, key) in enumerate(keys.items()):
        p = f" {view.probabilities.get(name, 0):.0%}" if view.probabilities else ""
        quick[k % 4].button(
            f"{key} · {label_text(name)}{p}",
            shortcut=key,
            on_click=save,
            args=("corrected", name),
            key=f"review_label_{key.lower()}",
            width="stretch",
        )
    pick_col, button_col = st.columns([3, 1])
    labels = ranked_labels(view.probabilities, view.labels)
    picked = pick_col.selectbox(
        "Any label (type to filter)", labels, format_func=label_choice, key=f"review_pick_{view.pair_id}"
    )
    button_col.button(
        "Correct to picked",
        shortcut="E",
        on_click=save,
        args=("corrected", picked),
        key="review_correct",
        width="stretch",
    )


def note_and_keys(view: PairView, state: ReviewState, audit: bool) -> None:
    """The note box (the note saved with the decision in effect is back when the reviewer returns to the pair) and
    the list of keys."""
    st.session_state.setdefault(f"review_note_{view.pair_id}", state.note or "")
    st.text_input("Note (kept with the decision)", key=f"review_note_{view.pair_id}")
    keys = f"{SHORTCUTS} · {AUDIT_SHORTCUTS}" if audit else SHORTCUTS
    st.caption(f"Keys: {keys}. Keys work when no text box has the focus (press Esc to leave one).")


def history_panel(state: ReviewState) -> None:
    with st.expander(f"History ({count(len(state.history), 'decision')})"):
        if not state.history:
            st.caption("No decision yet: the gold label stands.")
            return
        # each row's label is the label in effect after it (a skip shows the label it kept), as in the header
        rows = [
            {**row, "label": row["label"] if row["label"] is not None else NO_LABEL} for row in state.history
        ]
        st.dataframe(rows, hide_index=True, key="review_history", placeholder=MISSING)
