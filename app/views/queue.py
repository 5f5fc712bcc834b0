"""Queue: every entity pair with filters, sorted by what most needs a human (uncertain, image-reliant, disputed)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.render import progress_figure
from app.resources import get_sessions
from app.state import review_session, show_flash
from app.store import filter_options
from db.datasets import list_datasets
from db.models import ANNOTATION_STATUSES
from db.provenance import active_model_version
from db.review_queue import QUEUE_SORTS, QueueFilter, progress, review_queue

SORT_NAMES = {
    "uncertainty": "uncertainty: smallest top-2 margin first",
    "entropy": "uncertainty: highest entropy first",
    "image_reliance": "image reliance: highest first",
    "disagreement": "disagreement with the gold label first",
    "label_error": "likely label error first (a model that never saw the pair)",
    "source_order": "source order",
    "random": "random (a seeded shuffle: the baseline)",
}

st.title("Review queue")
show_flash()
sessions = get_sessions()
with sessions() as session:
    datasets = [d.name for d in list_datasets(session)]
    options = filter_options(session)
    active = active_model_version(session)
if not datasets:
    st.info(
        "The label store is empty. Run `make app`: it imports a dataset and queues the first model, "
        "or add a single post on the **Add post** page."
    )
    st.stop()
if active is None:
    st.warning(
        "No model is active yet: predictions, uncertainty and reliance columns stay empty. "
        "Register or train one on the **Models** page."
    )

# Streamlit drops a widget's value when its page is left; keep the filters across a visit to Review.
FILTER_KEYS = (
    "queue_dataset",
    "queue_split",
    "queue_status",
    "queue_annotator",
    "queue_gold",
    "queue_predicted",
    "queue_text",
    "queue_sort",
    "queue_limit",
    "queue_suspects",
)
# reviewers work through one split at a time: start on val (the held-out split) when the store has one
default_split = "val" if "val" in options["split"] else (options["split"] or [None])[0]
saved = st.session_state.setdefault("queue_saved_filters", {"queue_limit": 200, "queue_split": default_split})
for key in FILTER_KEYS:
    if key not in st.session_state and key in saved:
        st.session_state[key] = saved[key]

with st.container(border=True):
    c1, c2, c3, c4 = st.columns(4)
    dataset = c1.selectbox(
        "Dataset", [None, *datasets], format_func=lambda x: x or "all", key="queue_dataset"
    )
    split = c2.selectbox(
        "Split", [None, *options["split"]], format_func=lambda x: x or "all", key="queue_split"
    )
    status = c3.selectbox(
        "Status", [None, *ANNOTATION_STATUSES], format_func=lambda x: x or "all", key="queue_status"
    )
    annotator = c4.selectbox(
        "Annotator", [None, *options["annotator"]], format_func=lambda x: x or "anyone", key="queue_annotator"
    )
    c5, c6, c7, c8 = st.columns(4)
    gold = c5.selectbox(
        "Gold label", [None, *options["gold_label"]], format_func=lambda x: x or "any", key="queue_gold"
    )
    predicted = c6.selectbox(
        "Predicted label",
        [None, *options["gold_label"]],
        format_func=lambda x: x or "any",
        key="queue_predicted",
    )
    text = c7.text_input("Search text or entity", key="queue_text")
    more = c8.toggle(
        "More columns",
        key="queue_more_columns",
        help="split, margin, entropy, image reliance, annotator, image",
    )
    # the sort names are long: a row of their own, so the chosen one is never cut off
    c9, c10, c11 = st.columns([3, 1, 1])
    sort = c9.selectbox(
        "Sort", QUEUE_SORTS, format_func=lambda name: SORT_NAMES.get(name, name), key="queue_sort"
    )
    suspects = c10.selectbox(
        "Likely label errors",
        [None, 50, 100, 200, 500],
        format_func=lambda n: "all pairs" if n is None else f"top {n} only",
        key="queue_suspects",
        help="Only the most likely label errors of the dataset's latest Find label errors run (Label errors page)",
    )
    limit = c11.select_slider("Rows", [50, 100, 200, 500, 1000], key="queue_limit")

saved.update({key: st.session_state[key] for key in FILTER_KEYS if key in st.session_state})
queue_filter = QueueFilter(
    dataset, split, predicted, gold, status, annotator, text.strip() or None, suspects=suspects
)
with sessions() as session:
    counts = progress(session, dataset, split)
    items = review_queue(session, queue_filter, sort=sort, limit=limit)

done = counts["total"] - counts["unreviewed"]
st.progress(
    done / counts["total"] if counts["total"] else 0.0,
    text=f"{done} of {counts['total']} pairs reviewed ({counts['unreviewed']} to go)",
)
cols = st.columns(5)
for col, name in zip(cols, ["accepted", "corrected", "rejected", "skipped", "unreviewed"], strict=True):
    col.metric(name, counts[name])
st.plotly_chart(progress_figure(counts), key="queue_progress_chart", config={"displayModeBar": False})

if not items:
    st.info("No pair matches these filters.")
    st.stop()


table = pd.DataFrame(
    {
        "pair": [i.pair_id for i in items],
        "split": [i.split for i in items],
        "text": [i.text for i in items],
        "head": [i.head_name for i in items],
        "tail": [i.tail_name for i in items],
        # "None" is an MNRE relation: a missing gold label or prediction is said in words
        "gold": [i.gold_label if i.gold_label is not None else "no gold label" for i in items],
        "predicted": [i.predicted_label if i.predicted_label is not None else "no prediction" for i in items],
        "confidence": [i.confidence for i in items],
        "margin": [i.margin for i in items],
        "entropy": [i.entropy for i in items],
        "image reliance": [i.image_reliance for i in items],
        "status": [i.status for i in items],
        # the label in effect, by the store's one rule (the label every export writes); "no label": dropped
        "label": [i.label_in_effect if i.label_in_effect is not None else "no label" for i in items],
        "annotator": [i.annotator for i in items],
        "image": [i.has_image for i in items],
        # the latest Find label errors run: what a model that never saw the pair says, and how sure
        "suspect rank": [i.suspect_rank for i in items],
        "out-of-sample": [
            f"{i.suggested_label} ({i.suggested_probability:.0%})"
            if i.suggested_label is not None
            else "not scored"
            for i in items
        ],
        "p(gold) out-of-sample": [i.given_probability for i in items],
    }
)
AUDIT_COLUMNS = ["suspect rank", "out-of-sample", "p(gold) out-of-sample"]
MAIN_COLUMNS = ["pair", "text", "head", "tail", "gold", "predicted", "confidence", "label", "status"]
if sort == "label_error" or suspects is not None:
    MAIN_COLUMNS = MAIN_COLUMNS[:5] + AUDIT_COLUMNS + MAIN_COLUMNS[7:]
DETAIL_COLUMNS = ["split", "margin", "entropy", "image reliance", "annotator", "image"]
st.caption(
    f"{len(items)} pairs shown. Select a row to open it, or review them in this order."
    + ("" if more else " Split, margin, entropy, image reliance, annotator: **More columns**.")
)
event = st.dataframe(
    table,
    hide_index=True,
    column_order=MAIN_COLUMNS + (DETAIL_COLUMNS if more else []),
    on_select="rerun",
    selection_mode="single-row",
    key="queue_table",
    column_config={
        "margin": st.column_config.NumberColumn(format="%.3f"),
        "entropy": st.column_config.NumberColumn(format="%.3f"),
        "image reliance": st.column_config.NumberColumn(format="%.3f"),
        "p(gold) out-of-sample": st.column_config.NumberColumn(format="%.3f"),
        "text": st.column_config.TextColumn(width="medium"),
        "pair": st.column_config.NumberColumn(width="small"),
        "confidence": st.column_config.ProgressColumn(format="%.2f", min_value=0, max_value=1, width="small"),
    },
)
ids = [i.pair_id for i in items]
review = review_session()
# reviewing in the label-error order is the audit: Review shows the out-of-sample suggestion against gold
audit = sort == "label_error" or suspects is not None
if st.button("Review these in this order", type="primary", key="queue_start"):
    review.queue, review.position, review.audit = ids, 0, audit
    st.switch_page("views/review.py")
selected = tuple(event.selection.rows)
if selected and selected != st.session_state.get("queue_opened_selection"):
    st.session_state["queue_opened_selection"] = selected  # a kept selection must not reopen on every visit
    review.queue, review.position, review.audit = ids, selected[0], audit
    st.switch_page("views/review.py")
