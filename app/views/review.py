"""Review one pair at a time: the post, its image and crops, the model's distribution, and the decision.

Keyboard: A accept, a label's own key (1-9, then letters; the same on every pair) or Enter (the model's top
label) corrects to it, E correct to the picked label, X reject,
S skip, N next, P previous, U undo (listed on the page too). Optional evidence (app.ui.rationale_capture): click
words, drag one box on the image; the marks go with the next decision and undo takes them back. Every decision is saved at once with the reviewer's
name and the revision it was made on; a concurrent edit or a busy database shows a message and keeps the note and
the picked label.
"""

from __future__ import annotations

import streamlit as st

from app.services.label_keys import TOP_LABEL_KEY, KeyMapError, label_keys, load_label_keys
from app.services.store import (
    active_version,
    load_audit_view,
    load_review_state,
    queue_progress,
)
from app.ui.identity import require_reviewer
from app.ui.model_status import weak_model_warning
from app.ui.rationale_capture import evidence_panel
from app.ui.render import (
    MISSING,
    count,
    entity_legend,
    highlighted_text,
    image_caption,
    plain,
    ranked_labels,
)
from app.ui.resources import get_sessions, store_url
from app.ui.review_actions import (
    AUDIT_SHORTCUTS,
    SHORTCUTS,
    end_of_queue,
    pair_view,
    save,
    undo_action,
    undo_available,
)
from app.ui.review_leases import fill_review_queue
from app.ui.review_link import restore_review_from_link, write_review_link
from app.ui.review_prefetch import pair_image, prefetch_next, probability_chart, scored_view
from app.ui.span_editor import span_editor
from app.ui.state import review_session, show_flash
from explain.scene_graph_figures import object_caption, objects_provenance

st.title("Review")
weak_model_warning()  # app.services.model_status: no model, or one too weak to trust
reviewer = require_reviewer()
NO_LABEL = "no label"  # distinct from "None", which is one of MNRE's relations


def shown_label(label: str | None) -> str:
    return f"`{label}`" if label is not None else NO_LABEL


def shown_status(state) -> str:
    """The status and who set it: an undo says so ("unreviewed by Ann" would read as Ann's decision)."""
    if state.undone:
        return f"{state.status} (after an undo by {plain(state.annotator)})"
    return f"{state.status} by {plain(state.annotator)}" if state.annotator else state.status


@st.fragment
def review_panel(reviewer: str) -> None:
    """The pair, the model and the decision buttons: a key press reruns only this fragment, never the title, the
    sidebar or the navigation (the decisions' callbacks run first, then this redraws the next pair)."""
    sessions, review = get_sessions(), review_session()
    active = active_version(sessions)  # db.model_versions.ModelVersionInfo, or None before the first model
    # a reload or a shared link: its queue at its pair (the session's first run only)
    restore_review_from_link(sessions, review)
    fill_review_queue(sessions, review, reviewer)  # nothing picked on the Queue: pairs under leases
    if review.at_end:
        end_of_queue(queue_progress(sessions, review.queue))
        return
    if review.pair_id is None:
        st.info("Nothing to review: the store has no unreviewed pair. Pick pairs on the **Queue** page.")
        return

    version = active.version_id if active else None
    view = pair_view(store_url(), review.pair_id, version)
    with sessions() as session:
        state = load_review_state(session, view.pair_id)
        audit = load_audit_view(session, view.pair_id) if review.audit else None
    st.session_state["review_shown"] = (view.pair_id, state.revision)
    write_review_link(review, view.pair_id)  # the address bar reopens this pair in this queue

    show_flash()
    st.caption(
        f"Pair {view.pair_id} · {plain(view.dataset)} / {plain(view.split)}"
        f"{f' line {view.source_line}' if view.source_line else ''} · {review.position + 1} of "
        f"{count(len(review.queue), 'pair')} in this queue · reviewing as {plain(reviewer)}"
    )
    # the spans in effect: one a decision fixed (app.ui.span_editor), else the pair's own
    head, tail = state.head or view.head, state.tail or view.tail
    st.markdown(highlighted_text(view.tokens, head[:2], tail[:2]), unsafe_allow_html=True)
    st.markdown(entity_legend(head[2], tail[2]), unsafe_allow_html=True)
    # the pair's line and text are on screen before the model runs on a pair it has not scored yet (the next pairs
    # were scored ahead, app.ui.review_prefetch; this pair when a model became active since)
    if view.probabilities is None and active is not None:
        with st.spinner("Running the model on this pair ..."):
            try:
                # run once and stored; the prefetch of the pairs ahead shares it (app.ui.review_prefetch)
                view = scored_view(store_url(), review.pair_id, active)
            except (OSError, ValueError) as err:
                st.error(f"The model {version} could not score this pair: {err}")

    if view.image_path:
        # image and crops on the left, the model on the right; without an image the message and the model stack, so
        # no column is left empty beside a tall chart
        left, right = st.columns([3, 2])
        image_col, crops_col = left.columns([3, 1])
        # the objects Inspect's scene graph is built from (one source: app.ui.explanation_panels.post_objects); a guess dotted
        image, objects = pair_image(store_url(), view)
        image_col.image(
            image,
            caption=image_caption([o.source for o in objects]),
            width="stretch",
        )
        crop_files = [c for c in view.crops if c.path]
        for k, crop in enumerate(crop_files[:6]):  # the dataset's crop images beside the image
            score = f" {crop.score:.2f}" if crop.score is not None else ""
            caption = f"crop {k + 1}: {object_caption(crop.label or crop.source, crop.source)}{score}"
            crops_col.image(crop.path, caption=caption, width="stretch")
        if crop_files:
            crops_col.caption(
                f"{count(len(crop_files), 'crop')} stored with the post"
                + (f", {min(6, len(crop_files))} shown" if len(crop_files) > 6 else "")
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
                f"**Model** `{view.model_version}` predicts **{plain(predicted)}** "
                f"({view.probabilities[predicted]:.1%})"
            )
            st.plotly_chart(
                probability_chart(view.probabilities, view.gold_label),
                key="review_probs",
                config={"displayModeBar": False},
            )
        else:
            st.warning("No prediction: no model is active yet (see the **Models** page).")

    # the label in effect comes from the store's one rule (app.services.store.ReviewState): the label every export writes
    current = state.label_in_effect
    gold_text = f"`{view.gold_label}`" if view.gold_label is not None else "no gold label (a post added here)"
    st.markdown(
        f"**Gold label:** {gold_text} · **current label:** {shown_label(current)} · **status:** {shown_status(state)} "
        f"(revision {state.revision})"
    )
    if state.note:
        st.caption(f"Note kept with this decision: {plain(state.note)}")
    # optional: words (click) and one box (drag on the image) saved with the next decision; starts from the saved ones
    evidence_panel(view, state.rationale, (state.head, state.tail))  # the words of the spans in effect
    span_editor(view, state)  # app.ui.span_editor: off by default, nothing computed until opened

    if review.audit:
        # the label-error audit: a model that never trained on this pair against the label the run scored
        with st.container(border=True):
            if audit is None:
                st.caption("Audit: no Find label errors run has scored this pair (Label errors page).")
            else:
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
                take, keep = st.columns(2)
                take.button(
                    f"Take {plain(audit.suggested_label)}",
                    shortcut="T",
                    on_click=save,
                    args=("corrected", audit.suggested_label),
                    key="review_audit_take",
                    type="primary",
                    width="stretch",
                    disabled=audit.suggested_label == audit.given_label,
                    help="The model agrees with gold" if audit.suggested_label == audit.given_label else None,
                )
                keep.button(
                    f"Keep {plain(audit.given_label)}",
                    shortcut="K",
                    on_click=save,
                    args=("accepted", audit.given_label),
                    key="review_audit_keep",
                    width="stretch",
                )

    labels = ranked_labels(view.probabilities, view.labels)
    decision_columns = st.columns(6)
    decision_columns[0].button(
        "Accept",
        shortcut="A",
        on_click=save,
        args=("accepted", current),
        type="primary",
        key="review_accept",
        width="stretch",
        # never disabled: a disabled button's key does nothing, silently; the save says why there is nothing to accept
        help="Nothing to accept: correct it to a label (its key, Enter or E) or reject it."
        if current is None
        else None,
    )
    decision_columns[1].button(
        "Reject", shortcut="X", on_click=save, args=("rejected",), key="review_reject", width="stretch"
    )
    decision_columns[2].button(
        "Skip", shortcut="S", on_click=save, args=("skipped",), key="review_skip", width="stretch"
    )
    decision_columns[3].button(
        "Previous",
        shortcut="P",
        on_click=review.move,
        args=(-1,),
        key="review_prev",
        width="stretch",
        disabled=review.position == 0,
    )
    decision_columns[4].button(
        "Next",
        shortcut="N",
        on_click=review.move,
        args=(1,),
        key="review_next",
        width="stretch",
        disabled=review.position >= len(review.queue) - 1,
    )
    decision_columns[5].button(
        "Undo",
        shortcut="U",
        on_click=undo_action,
        key="review_undo",
        width="stretch",
        disabled=not undo_available(state.revision),  # after a reload too: the store's history
    )

    # one key per label for the whole dataset (app.services.label_keys), in label order, so a hand can learn them
    try:
        keys = load_label_keys(view.dataset, view.labels)
    except KeyMapError as err:
        st.warning(f"Label keys file ignored ({err}); the default keys are used.")
        keys = label_keys(view.labels)
    if view.probabilities:
        top = max(view.probabilities, key=view.probabilities.get)
        st.button(
            f"Enter · the model's top label: {plain(top)} {view.probabilities[top]:.0%}",
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
            f"{key} · {plain(name)}{p}",
            shortcut=key,
            on_click=save,
            args=("corrected", name),
            key=f"review_label_{key.lower()}",
            width="stretch",
        )
    pick_col, button_col = st.columns([3, 1])
    picked = pick_col.selectbox("Any label (type to filter)", labels, key=f"review_pick_{view.pair_id}")
    button_col.button(
        "Correct to picked",
        shortcut="E",
        on_click=save,
        args=("corrected", picked),
        key="review_correct",
        width="stretch",
    )
    # the note saved with the decision in effect is back in the box when the reviewer returns to the pair
    st.session_state.setdefault(f"review_note_{view.pair_id}", state.note or "")
    st.text_input("Note (kept with the decision)", key=f"review_note_{view.pair_id}")
    keys = f"{SHORTCUTS} · {AUDIT_SHORTCUTS}" if review.audit else SHORTCUTS
    st.caption(f"Keys: {keys}. Keys work when no text box has the focus (press Esc to leave one).")

    with st.expander(f"History ({count(len(state.history), 'decision')})"):
        if state.history:
            # each row's label is the label in effect after it (a skip shows the label it kept), as in the header
            rows = [
                {**row, "label": row["label"] if row["label"] is not None else NO_LABEL}
                for row in state.history
            ]
            st.dataframe(rows, hide_index=True, key="review_history", placeholder=MISSING)
        else:
            st.caption("No decision yet: the gold label stands.")
    # the next pairs' view, prediction, objects and chart, computed while the reviewer reads this one
    prefetch_next(review, reviewer, active)


review_panel(reviewer)
