"""Experiments: the paper's two tables rebuilt from the evaluation runs in the label store.

Table 1 (visual shuffle): does F1 drop when images are shuffled at train or test time? A model that uses the image
drops; one that ignores it does not. Table 2 (ablation): the variants side by side, with the paper's F1 for
reference (bert-base + CLIP on the MNRE test split; ours are offline MiniLM + EfficientNet-Lite0 on val). The
experiment jobs and the plausibility table are app.ui.experiment_panels; the rows app.services.experiments.
"""

from __future__ import annotations

import streamlit as st

from app.services.experiments import ABLATION_COLUMNS, SHUFFLE_COLUMNS, paper_runs, table_frame
from app.ui.experiment_panels import experiment_jobs_panel, plausibility_panel
from app.ui.resources import get_sessions

st.title("Experiments")
experiment_jobs_panel()
plausibility_panel()
runs = paper_runs(get_sessions())
if not runs:
    st.info(
        "No experiment runs are stored yet. Run Table 1 or Table 2 above; this page then shows the paper's "
        "tables from the runs those jobs store. (`python -m model.shuffle` writes its table to JSON and "
        "Markdown files only; a retraining's before/after evaluations are not part of these tables.)"
    )
    st.stop()
# the explain package (and its Plotly figures) only once there are runs to draw
from explain import ablation_table, figures, shuffle_table  # noqa: E402

splits = sorted({run["eval_split"] for run in runs})
split = st.selectbox("Evaluated on", splits, key="experiments_split")
chosen = [run for run in runs if run["eval_split"] == split]

st.subheader("Table 1: visual shuffle")  # metrics in percent, named so in each header
shuffle_rows = shuffle_table(chosen)
st.dataframe(
    table_frame(shuffle_rows, SHUFFLE_COLUMNS),
    hide_index=True,
    key="experiments_shuffle",
    column_config={c: st.column_config.NumberColumn(f"{c} %", format="%.2f") for c in SHUFFLE_COLUMNS[2:7]},
)
st.plotly_chart(figures.shuffle_table_figure(shuffle_rows), key="experiments_shuffle_chart")

st.subheader("Table 2: ablation")
ablation_rows = ablation_table(chosen)
if ablation_rows:
    st.dataframe(
        table_frame(ablation_rows, ABLATION_COLUMNS),
        hide_index=True,
        key="experiments_ablation",
        column_config={
            c: st.column_config.NumberColumn(f"{c} %", format="%.2f")
            for c in ("accuracy", "precision", "recall", "f1", "f1_std", "f1_vs_full", "paper_f1")
        },
    )
    st.plotly_chart(figures.ablation_figure(ablation_rows), key="experiments_ablation_chart")
else:
    st.info("No standard-setting run on this split: Table 2 needs one per variant.")
st.caption(
    f"{len(chosen)} stored runs on {split}; several runs of one model and setting (seeds) are averaged."
)
