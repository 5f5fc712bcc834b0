"""Queue: every entity pair with filters, sorted by what most needs a human (uncertain, image-reliant, disputed)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.services.agreement import reviewer_agreement
from app.services.model_status import no_active_model_text
from app.services.queue_view import (
    ANNOTATION_STATUSES,
    QUEUE_SORTS,
    SORT_NAMES,
    QueueFilter,
    default_sort,
    queue_columns,
    queue_context,
    queue_page,
)
from app.services.store import Progress
from app.ui.bulk_accept import bulk_accept_panel
from app.ui.render import MISSING, count, plain, progress_figure
from app.ui.resources import get_sessions
from app.ui.review_link import link_filters, queue_filters_from_link, write_queue_link
from app.ui.state import review_session, show_flash

st.title("Review queue")
show_flash()
sessions = get_sessions()
context = queue_context(sessions)
datasets, options, active, status_now = context.datasets, context.options, context.active, context.status
# image reliance from whichever version computed it (the active one when it has), named below
reliance_source = context.reliance_source
if not datasets:
    st.info(
        "The label store is empty. Run `make app`: it imports a dataset and queues the first model, "
        "or add a single post on the **Add post** page."
    )
    st.stop()
if active is None:
    st.warning(no_active_model_text(status_now, "the prediction and uncertainty columns stay empty"))

# reviewers work through one split at a time: start on val (the held-out split) when the store has one
default_split = "val" if "val" in options["split"] else (options["split"] or [None])[0]
# the filters live in app.ui.state, never in the widget keys (Streamlit drops those when the page is left): each
# widget starts from the kept value and writes its value back
# a reload or a shared link: its filter
kept = queue_filters_from_link(sort=default_sort(), split=default_split)


def choose(column, label: str, attribute: str, choices: list, everything: str, name=str, **kwargs):
    """A selectbox over `choices` with None (shown as `everything`) first, starting at the kept value."""
    choices = [None, *choices]
    current = getattr(kept, attribute)
    value = column.selectbox(
        label,
        choices,
        index=choices.index(current) if current in choices else 0,
        format_func=lambda x: everything if x is None else name(x),
        key=f"queue_{attribute}",
        **kwargs,
    )
    setattr(kept, attribute, value)
    return value


with st.container(border=True):
    c1, c2, c3, c4 = st.columns(4)
    dataset = choose(c1, "Dataset", "dataset", datasets, "all")
    split = choose(c2, "Split", "split", options["split"], "all")
    status = choose(c3, "Status", "status", list(ANNOTATION_STATUSES), "all")
    annotator = choose(c4, "Annotator", "annotator", options["annotator"], "anyone")
    c5, c6, c7, c8 = st.columns(4)
    gold = choose(c5, "Gold label", "gold", options["gold_label"], "any")
    predicted = choose(c6, "Predicted label", "predicted", options["gold_label"], "any")
    kept.text = text = c7.text_input("Search text or entity", value=kept.text, key="queue_text")
    kept.more_columns = more = c8.toggle(
        "More columns",
        value=kept.more_columns,
        key="queue_more_columns",
        help="split, margin, entropy, image reliance, annotator, image",
    )
    # the sort names are long: a row of their own, so the chosen one is never cut off
    c9, c10, c11 = st.columns([3, 1, 1])
    kept.sort = sort = c9.selectbox(
        "Sort",
        QUEUE_SORTS,
        index=QUEUE_SORTS.index(kept.sort) if kept.sort in QUEUE_SORTS else 0,
        format_func=lambda name: SORT_NAMES.get(name, name),
        key="queue_sort",
    )
    suspects = choose(
        c10,
        "Likely label errors",
        "suspects",
        [50, 100, 200, 500],
        "all pairs",
        name=lambda n: f"top {n} only",
        help="Only the most likely label errors of the dataset's latest Find label errors run (Label errors page)",
    )
    kept.limit = limit = c11.select_slider(
        "Rows", [50, 100, 200, 500, 1000], value=kept.limit, key="queue_limit"
    )

# the address bar holds the filter and sort: a reload or a shared link opens them again
write_queue_link(kept)
queue_filter = QueueFilter(
    dataset, split, predicted, gold, status, annotator, text.strip() or None, suspects=suspects
)
shown = queue_page(sessions, queue_filter, sort, limit, reliance_source)
counts, items = shown.counts, shown.items

done = Progress(counts)  # a skipped pair is not reviewed
st.progress(done.reviewed / done.total if done.total else 0.0, text=done.sentence())
cols = st.columns(5)
for col, name in zip(cols, ["accepted", "corrected", "rejected", "skipped", "unreviewed"], strict=True):
    col.metric(name, counts[name])
st.plotly_chart(progress_figure(counts), key="queue_progress_chart", config={"displayModeBar": False})
with st.expander("Agreement between reviewers (labels and rationales)"):
    # read on request only: a new Queue session stays fast
    if st.toggle("Compute agreement", key="queue_agreement"):
        shown_agreement = reviewer_agreement(sessions, dataset)
        if not shown_agreement.labels:
            st.caption("No pair has decisions of two reviewers yet.")
        else:
            alpha = "n/a" if shown_agreement.alpha is None else f"{shown_agreement.alpha:.3f}"
            st.markdown(
                f"**Labels**: Krippendorff's alpha {alpha} on {count(shown_agreement.items, 'pair')} decided by "
                "two or more reviewers"
            )
            st.dataframe(shown_agreement.labels, hide_index=True, key="queue_label_agreement")
            st.markdown("**Rationales** (pairs where both reviewers marked evidence)")
            if shown_agreement.rationales:
                st.dataframe(
                    shown_agreement.rationales,
                    hide_index=True,
                    key="queue_rationale_agreement",
                    placeholder="n/a",
                )
            else:
                st.caption("No pair has rationales of two reviewers yet.")

# admins: accept the whole filter at once, with one undo (before the stop below: the undo stays reachable)
bulk_accept_panel(sessions, queue_filter)
if not items:
    st.info("No pair matches these filters.")
    st.stop()


table = pd.DataFrame(queue_columns(items))
# the review state first, then the post and the labels: at 1600 px the main columns fit (fixed widths, 1,070 px),
# and a narrower window cuts the post text, never the status
AUDIT_COLUMNS = ["suspect rank", "out-of-sample", "p(gold) out-of-sample"]
MAIN_COLUMNS = ["pair", "status", "text", "head", "tail", "gold", "predicted", "confidence", "label"]
if sort == "label_error" or suspects is not None:
    MAIN_COLUMNS = MAIN_COLUMNS[:6] + AUDIT_COLUMNS + MAIN_COLUMNS[8:]
DETAIL_COLUMNS = ["split", "margin", "entropy", "image reliance", "annotator", "image"]
# every stored prediction without an image reliance: say so and why, rather than an empty column and a sort that
# silently falls back to pair order
if not any(i.image_reliance is not None for i in items):
    if reliance_source is not None:
        why = f"{plain(reliance_source.version_id)} computed it for other pairs only"
    elif active is not None and active.variant == "text_only":
        why = (
            f"the active model {plain(active.version_id)} is text-only: it never reads the image, and no image "
            "model has computed one (Inspect, through an image model's version, computes it per post; on Models, an "
            "image model's Explain the top of the queue fills it)"
        )
    else:
        why = (
            "no model version has computed one yet (Inspect computes it per post; the worker for the top of the "
            "queue after each activation; or on Models: Explain the top of the queue)"
        )
    DETAIL_COLUMNS.remove("image reliance")
    if sort == "image_reliance":
        st.warning(
            f"Sorted by image reliance, but no pair shown has one ({why}): the pairs are in pair order."
        )
    elif more:
        st.caption(f"No image reliance column: no pair shown has one ({why}).")
if reliance_source is not None and (more or sort == "image_reliance"):
    whose = (
        "the active model"
        if active is not None and reliance_source.key == active.key
        else "not the active model"
    )
    st.caption(
        f"Image reliance as computed by {plain(reliance_source.version_id)} ({whose}; "
        f"{count(reliance_source.pairs, 'pair')} so far)."
    )
st.caption(
    f"{count(len(items), 'pair')} shown. Select a row to open it, or review them in this order."
    + ("" if more else " Split, margin, entropy, image reliance, annotator: **More columns**.")
)
event = st.dataframe(
    table,
    hide_index=True,
    column_order=MAIN_COLUMNS + (DETAIL_COLUMNS if more else []),
    on_select="rerun",
    selection_mode="single-row",
    key="queue_table",
    placeholder=MISSING,  # a missing value is a dash: "None" is one of MNRE's relations
    column_config={
        "margin": st.column_config.NumberColumn(format="%.3f"),
        "entropy": st.column_config.NumberColumn(format="%.3f"),
        "image reliance": st.column_config.NumberColumn(format="%.3f"),
        "p(gold) out-of-sample": st.column_config.NumberColumn(format="%.3f"),
        "pair": st.column_config.NumberColumn(width=60),
        "status": st.column_config.TextColumn(width=90),
        "text": st.column_config.TextColumn(width=250),
        "head": st.column_config.TextColumn(width=100),
        "tail": st.column_config.TextColumn(width=100),
        "gold": st.column_config.TextColumn(width=120),
        "predicted": st.column_config.TextColumn(width=120),
        "confidence": st.column_config.ProgressColumn(format="%.2f", min_value=0, max_value=1, width=80),
        "label": st.column_config.TextColumn(width=150),
    },
)
ids = [i.pair_id for i in items]
review = review_session()
# reviewing in the label-error order is the audit: Review shows the out-of-sample suggestion against gold
audit = sort == "label_error" or suspects is not None
if st.button("Review these in this order", type="primary", key="queue_start"):
    review.queue, review.position, review.audit, review.link = ids, 0, audit, link_filters(kept)
    st.switch_page("views/review.py")
selected = tuple(event.selection.rows)
if selected and selected != st.session_state.get("queue_opened_selection"):
    st.session_state["queue_opened_selection"] = selected  # a kept selection must not reopen on every visit
    review.queue, review.position, review.audit, review.link = ids, selected[0], audit, link_filters(kept)
    st.switch_page("views/review.py")
