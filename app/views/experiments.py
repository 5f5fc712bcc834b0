"""Experiments: the paper's two tables rebuilt from the evaluation runs in the label store.

Table 1 (visual shuffle): does F1 drop when images are shuffled at train or test time? A model that uses the image
drops; one that ignores it does not. Table 2 (ablation): the variants side by side, with the paper's F1 for
reference (bert-base + CLIP on the MNRE test split; ours are offline MiniLM + EfficientNet-Lite0 on val).
"""

from __future__ import annotations

import importlib

import pandas as pd
import streamlit as st

from app.resources import get_sessions
from app.store import evaluation_run_rows

SHUFFLE_COLUMNS = [
    "model",
    "eval_split",
    "standard_f1",
    "shuffle_train_f1",
    "shuffle_test_f1",
    "f1_drop_shuffle_train",
    "f1_drop_shuffle_test",
    "n_standard",
    "n_shuffle_train",
    "n_shuffle_test",
]
ABLATION_COLUMNS = [
    "model",
    "variant",
    "eval_split",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "f1_std",
    "n_runs",
    "f1_vs_full",
    "paper_name",
    "paper_f1",
]


def percent(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """The table's columns, metrics in percent (the paper's unit)."""
    frame = pd.DataFrame(rows).reindex(columns=columns)
    for col in columns:
        if col == "paper_f1" or col.startswith("n_") or not pd.api.types.is_numeric_dtype(frame[col]):
            continue  # the paper's numbers are already in percent; counts and names stay as they are
        frame[col] = frame[col] * 100
    return frame


def figures_module():
    try:
        return importlib.import_module("explain.figures")
    except ImportError as err:
        st.info(
            f"Plots not available: `explain.figures` cannot be imported yet ({err}). The tables are complete."
        )
        return None


st.title("Experiments")
with get_sessions()() as session:
    runs = evaluation_run_rows(session)
if not runs:
    st.info(
        "No evaluation runs are stored yet. `python -m model.shuffle` and `python -m app.retrain` store "
        "them; this page then shows the paper's Table 1 and Table 2 from them."
    )
    st.stop()
from explain import ablation_table, shuffle_table  # noqa: E402  (only needed once there are runs)

splits = sorted({r["eval_split"] for r in runs})
split = st.selectbox("Evaluated on", splits, key="experiments_split")
chosen = [r for r in runs if r["eval_split"] == split]
figures = figures_module()

st.subheader("Table 1: visual shuffle")
shuffle_rows = shuffle_table(chosen)
st.dataframe(
    percent(shuffle_rows, SHUFFLE_COLUMNS),
    hide_index=True,
    key="experiments_shuffle",
    column_config={c: st.column_config.NumberColumn(format="%.2f") for c in SHUFFLE_COLUMNS[2:7]},
)
if figures is not None:
    st.plotly_chart(figures.shuffle_table_figure(shuffle_rows), key="experiments_shuffle_chart")

st.subheader("Table 2: ablation")
ablation_rows = ablation_table(chosen)
if ablation_rows:
    st.dataframe(
        percent(ablation_rows, ABLATION_COLUMNS),
        hide_index=True,
        key="experiments_ablation",
        column_config={
            c: st.column_config.NumberColumn(format="%.2f")
            for c in ("accuracy", "precision", "recall", "f1", "f1_std", "f1_vs_full")
        },
    )
    if figures is not None:
        st.plotly_chart(figures.ablation_figure(ablation_rows), key="experiments_ablation_chart")
else:
    st.info("No standard-setting run on this split: Table 2 needs one per variant.")
st.caption(
    f"{len(chosen)} stored runs on {split}; several runs of one model and setting (seeds) are averaged."
)
