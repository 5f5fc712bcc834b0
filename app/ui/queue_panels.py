"""The parts of the Queue page: the filter box (every choice kept outside the widget keys, app.ui.state), the
progress, the agreement between reviewers, the notes on the image-reliance column and the table itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from app.services.agreement import reviewer_agreement
from app.services.queue_view import (
    ANNOTATION_STATUSES,
    QUEUE_SORTS,
    SORT_NAMES,
    QueueFilter,
    missing_reliance_reason,
    queue_columns,
    reliance_source_text,
)
from app.ui.render import MISSING, count, plain, progress_figure
from app.ui.state import QueueFilters

if TYPE_CHECKING:
    from sqlalchemy.orm import sessionmaker

    from db.model_versions import ModelVersionInfo
    from db.review_queue import RelianceSource

SUSPECT_LIMITS = [50, 100, 200, 500]
ROW_LIMITS = [50, 100, 200, 500, 1000]
# the review state first, then the post and the labels: at 1600 px the main columns fit (fixed widths, 1,085 px),
# and a narrower window cuts the post text, never the status
MAIN_COLUMNS = ["pair", "status", "text", "head", "tail", "gold", "predicted", "confidence", "label"]
AUDIT_COLUMNS = ["suspect rank", "out-of-sample", "p(gold) out-of-sample"]
DETAIL_COLUMNS = ["split", "margin", "entropy", "image reliance", "annotator", "image"]
# MNRE's longest relation, "/per/loc/place_of_residence", whole (it read "/per/loc/place_of_r" at 120 px)
LABEL_WIDTH = 180
# probabilities in percent with one decimal, as Review and Inspect write them ("17.3%"; "percent" wrote "17.28%"
# beside "22.1%"): queue_columns gives them in percent
PERCENT = "%.1f%%"
COLUMN_CONFIG = {
    "margin": st.column_config.NumberColumn(format="%.3f", width=70),
    "entropy": st.column_config.NumberColumn(format="%.3f", width=70),
    "image reliance": st.column_config.NumberColumn(format="%.3f", width=100),
    "split": st.column_config.TextColumn(width=60),
    "annotator": st.column_config.TextColumn(width=100),
    "image": st.column_config.CheckboxColumn(width=60),
    # probabilities in percent, as Review and Inspect write them ("93.8 %", never 0.938 beside it)
    "p(gold) out-of-sample": st.column_config.NumberColumn(format=PERCENT),
    "pair": st.column_config.NumberColumn(width=60),
    "status": st.column_config.TextColumn(width=90),
    "text": st.column_config.TextColumn(width=140),  # cut in any width: Review shows the whole post
    "head": st.column_config.TextColumn(width=90),
    "tail": st.column_config.TextColumn(width=90),
    "gold": st.column_config.TextColumn(width=LABEL_WIDTH),
    "predicted": st.column_config.TextColumn(width=LABEL_WIDTH),
    "confidence": st.column_config.ProgressColumn(format=PERCENT, min_value=0, max_value=100, width=75),
    "label": st.column_config.TextColumn(width=LABEL_WIDTH),
}


def _choose(
    column, kept: QueueFilters, label: str, attribute: str, choices: list, everything: str, name=str, **kw
):
    """A selectbox over `choices` with None (shown as `everything`) first, starting at the kept value, which it
    writes back (Streamlit drops a widget's key when the page is left; the kept value survives)."""
    choices = [None, *choices]
    current = getattr(kept, attribute)
    value = column.selectbox(
        label,
        choices,
        index=choices.index(current) if current in choices else 0,
        format_func=lambda x: everything if x is None else name(x),
        key=f"queue_{attribute}",
        **kw,
    )
    setattr(kept, attribute, value)
    return value


def filter_panel(kept: QueueFilters, datasets: list[str], options: dict[str, list[str]]) -> QueueFilter:
    """The filters, the sort, the row limit and the column toggle, each starting from `kept` and written back to it;
    returns the store's filter."""
    with st.container(border=True):
        c1, c2, c3, c4 = st.columns(4)
        dataset = _choose(c1, kept, "Dataset", "dataset", datasets, "all")
        split = _choose(c2, kept, "Split", "split", options["split"], "all")
        status = _choose(c3, kept, "Status", "status", list(ANNOTATION_STATUSES), "all")
        annotator = _choose(c4, kept, "Annotator", "annotator", options["annotator"], "anyone")
        c5, c6, c7, c8 = st.columns(4)
        gold = _choose(c5, kept, "Gold label", "gold", options["gold_label"], "any")
        predicted = _choose(c6, kept, "Predicted label", "predicted", options["gold_label"], "any")
        kept.text = c7.text_input("Search text or entity", value=kept.text, key="queue_text")
        kept.more_columns = c8.toggle(
            "More columns",
            value=kept.more_columns,
            key="queue_more_columns",
            help="split, margin, entropy, image reliance, annotator, image (the table then scrolls sideways)",
        )
        # the sort names are long: a row of their own, so the chosen one is never cut off
        c9, c10, c11 = st.columns([3, 1, 1])
        kept.sort = c9.selectbox(
            "Sort",
            QUEUE_SORTS,
            index=QUEUE_SORTS.index(kept.sort) if kept.sort in QUEUE_SORTS else 0,
            format_func=lambda name: SORT_NAMES.get(name, name),
            key="queue_sort",
        )
        suspects = _choose(
            c10,
            kept,
            "Likely label errors",
            "suspects",
            SUSPECT_LIMITS,
            "all pairs",
            name=lambda n: f"top {n} only",
            help="Only the most likely label errors of the dataset's latest Find label errors run (Label errors page)",
        )
        kept.limit = c11.select_slider("Rows", ROW_LIMITS, value=kept.limit, key="queue_limit")
    text = (kept.text or "").strip() or None
    return QueueFilter(dataset, split, predicted, gold, status, annotator, text, suspects=suspects)


def progress_scope(queue_filter: QueueFilter) -> str:
    """What the progress counts: the dataset and split picked, never the other filters (they narrow the table only;
    "1,624 to go" above "9 pairs shown" read as a contradiction without it)."""
    dataset = f"dataset {plain(queue_filter.dataset)}" if queue_filter.dataset else "all datasets"
    split = f"the {plain(queue_filter.split)} split" if queue_filter.split else "every split"
    return f"{split} of {dataset}"


def progress_panel(counts: dict[str, int], done, queue_filter: QueueFilter) -> None:
    """The review progress of the picked dataset and split (a skipped pair is not reviewed): bar, one number per
    status, chart."""
    st.progress(
        done.reviewed / done.total if done.total else 0.0,
        text=f"{done.sentence()} in {progress_scope(queue_filter)}",
    )
    cols = st.columns(5)
    for col, name in zip(cols, ["accepted", "corrected", "rejected", "skipped", "unreviewed"], strict=True):
        col.metric(name, f"{counts[name]:,}")  # "1,624" as the sentence above writes it
    st.plotly_chart(progress_figure(counts), key="queue_progress_chart", config={"displayModeBar": False})


def agreement_panel(sessions: sessionmaker, dataset: str | None) -> None:
    with st.expander("Agreement between reviewers (labels and rationales)"):
        # read on request only: a new Queue session stays fast
        if not st.toggle("Compute agreement", key="queue_agreement"):
            return
        shown = reviewer_agreement(sessions, dataset)
        if not shown.labels:
            st.caption("No pair has decisions of two reviewers yet.")
            return
        alpha = "n/a" if shown.alpha is None else f"{shown.alpha:.3f}"
        st.markdown(
            f"**Labels**: Krippendorff's alpha {alpha} on {count(shown.items, 'pair')} decided by two or more reviewers"
        )
        st.dataframe(shown.labels, hide_index=True, key="queue_label_agreement")
        st.markdown("**Rationales** (pairs where both reviewers marked evidence)")
        if shown.rationales:
            st.dataframe(
                shown.rationales, hide_index=True, key="queue_rationale_agreement", placeholder="n/a"
            )
        else:
            st.caption("No pair has rationales of two reviewers yet.")


def reliance_notes(
    items: list, kept: QueueFilters, reliance: RelianceSource | None, active: ModelVersionInfo | None
) -> list[str]:
    """Say whose image reliance the column shows, or why there is none; returns the detail columns to show (the
    image-reliance column only when a pair shown has one)."""
    details = list(DETAIL_COLUMNS)
    reason = missing_reliance_reason(items, reliance, active, name=plain)
    if reason is not None:
        details.remove("image reliance")
        if kept.sort == "image_reliance":
            st.warning(
                f"Sorted by image reliance, but no pair shown has one ({reason}): the pairs are in pair order."
            )
        elif kept.more_columns:
            st.caption(f"No image reliance column: no pair shown has one ({reason}).")
    if reliance is not None and (kept.more_columns or kept.sort == "image_reliance"):
        st.caption(reliance_source_text(reliance, active, name=plain))
    return details


def queue_table(items: list, kept: QueueFilters, details: list[str]):
    """The pairs, one row each; returns the dataframe's selection event."""
    main = MAIN_COLUMNS
    if kept.sort == "label_error" or kept.suspects is not None:
        main = MAIN_COLUMNS[:6] + AUDIT_COLUMNS + MAIN_COLUMNS[8:]
    st.caption(
        f"{count(len(items), 'pair')} shown. Select a row to open it, or review them in this order."
        + (
            ""
            if kept.more_columns
            else " Split, margin, entropy, image reliance, annotator: **More columns**."
        )
    )
    return st.dataframe(
        pd.DataFrame(queue_columns(items)),
        hide_index=True,
        column_order=main + (details if kept.more_columns else []),
        on_select="rerun",
        selection_mode="single-row",
        key="queue_table",
        placeholder=MISSING,  # a missing value is a dash: "None" is one of MNRE's relations
        column_config=COLUMN_CONFIG,
    )
