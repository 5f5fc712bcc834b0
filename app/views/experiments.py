"""Experiments: the paper's two tables rebuilt from the evaluation runs in the label store.

Table 1 (visual shuffle): does F1 drop when images are shuffled at train or test time? A model that uses the image
drops; one that ignores it does not. Table 2 (ablation): the variants side by side, with the paper's F1 for
reference (bert-base + CLIP on the MNRE test split; ours are offline MiniLM + EfficientNet-Lite0 on val).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.jobs import enqueue
from app.services.job_board import live_jobs
from app.services.model_jobs import training_sources
from app.services.plausibility import FAITHFULNESS_COLUMNS, PLAUSIBILITY_COLUMNS, stored_results, table_rows
from app.services.store import dataset_names, evaluation_run_rows, registered_versions
from app.ui.auth import refuse_unless_admin
from app.ui.identity import require_reviewer
from app.ui.resources import get_sessions

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


EXPERIMENT_KINDS = {"shuffle": "Table 1 (visual shuffle)", "ablation": "Table 2 (ablation)"}
REFRESH_SECONDS = 3


def experiment_jobs_panel() -> None:
    """Start Table 1 / Table 2 as worker jobs on the current data, and follow the ones queued or running."""
    sessions = get_sessions()
    sources = training_sources(sessions)
    live = live_jobs(sessions, tuple(EXPERIMENT_KINDS))
    with st.expander("Run the experiments on the current data", expanded=not live):
        if not sources:
            st.info("Needs a dataset imported from an MNRE-layout folder that is still on this machine.")
            return
        c1, c2, c3 = st.columns(3)
        dataset = c1.selectbox("Dataset", list(sources), key="experiments_dataset")
        epochs = c2.number_input("Epochs per training", 1, 20, 1, key="experiments_epochs")
        limit = c3.number_input("Train records (0 = all)", 0, 100_000, 0, step=500, key="experiments_limit")
        params = {
            "data": sources[dataset],
            "dataset": dataset,
            "epochs": int(epochs),
            "limit_train": int(limit) or None,
        }
        st.caption(
            "Table 1 trains the objects variant twice (matched and shuffled train images) and tests it with matched "
            "and shuffled images; Table 2 trains each variant once (text only, vanilla, no text attention, objects). "
            "Both run in the worker (see Jobs) with the default recipe's settings and store their runs here."
        )
        b1, b2 = st.columns(2)
        for column, kind in ((b1, "shuffle"), (b2, "ablation")):
            if column.button(f"Run {EXPERIMENT_KINDS[kind]}", key=f"experiments_run_{kind}"):
                who = require_reviewer()
                if (admin := refuse_unless_admin(f"run {EXPERIMENT_KINDS[kind]}")) is None:
                    return
                job = enqueue(sessions, kind, who, params, actor=admin)
                st.success(f"Queued job {job}: {EXPERIMENT_KINDS[kind]}. Follow it on the Jobs page.")
                st.rerun()
    # re-read every few seconds while an experiment is queued or running, as the Jobs page does
    st.fragment(run_every=REFRESH_SECONDS if live else None)(experiment_progress)(
        [(job.id, job.status) for job in live]
    )


def experiment_progress(drawn: list[tuple[int, str]]) -> None:
    """The progress of the experiment jobs queued or running; the whole page is redrawn when one starts or ends
    (its tables then show the runs it stored)."""
    live = live_jobs(get_sessions(), tuple(EXPERIMENT_KINDS))
    if [(job.id, job.status) for job in live] != drawn:
        st.rerun()
    for job in live:
        job_progress = job.progress
        text = f"Job {job.id}: {EXPERIMENT_KINDS[job.kind]} {job.status}"
        if job.status == "running":
            text += f", training {job_progress.get('part', 1)}/{job_progress.get('parts', 1)}"
            if job_progress.get("epoch"):
                text += f", epoch {job_progress['epoch']}/{job_progress['epochs']}"
        st.progress(job.fraction, text=text)


def plausibility_panel() -> None:
    """Plausibility (against the stored rationales) and faithfulness of every explanation method, method x model
    version, from the plausibility jobs' outcomes; a form queues one more job."""
    sessions = get_sessions()
    st.subheader("Plausibility of the explanations")
    datasets, versions = dataset_names(sessions), list(registered_versions(sessions))
    with st.expander("Score a model version's explanations against the rationales", expanded=False):
        if not datasets or not versions:
            st.info("Needs a dataset in the label store and a registered model version.")
        else:
            c1, c2, c3, c4 = st.columns(4)
            dataset = c1.selectbox("Dataset", datasets, key="experiments_plaus_dataset")
            version = c2.selectbox("Model version", versions, key="experiments_plaus_version")
            split = c3.selectbox("Split", ["val", "test", "train"], key="experiments_plaus_split")
            limit = c4.number_input("Posts (0 = all)", 0, 100_000, 50, key="experiments_plaus_limit")
            if st.button("Run plausibility", key="experiments_run_plausibility"):
                who = require_reviewer()
                params = {
                    "dataset": dataset,
                    "model_version": version,
                    "split": split,
                    "limit": int(limit) or None,
                }
                job = enqueue(sessions, "plausibility", who, params)
                st.success(f"Queued job {job}: plausibility of {version}. Follow it on the Jobs page.")
    live = live_jobs(sessions, ("plausibility",))
    for job in live:
        st.progress(
            job.fraction, text=f"Job {job.id}: plausibility of {job.params.get('model_version')} {job.status}"
        )
    rows = table_rows(stored_results(sessions))
    if not rows:
        st.caption(
            "No plausibility table yet: run one above or with `python -m app.plausibility --dataset NAME --model "
            "VERSION`. It needs stored rationales (marked on Review, or a synthetic set's own evidence)."
        )
        return
    frame = pd.DataFrame(rows)
    for col in PLAUSIBILITY_COLUMNS:
        frame[col] = frame[col] * 100
    st.dataframe(
        frame,
        hide_index=True,
        key="experiments_plausibility",
        column_config={
            **{c: st.column_config.NumberColumn(f"{c} %", format="%.1f") for c in PLAUSIBILITY_COLUMNS},
            **{c: st.column_config.NumberColumn(format="%.3f") for c in FAITHFULNESS_COLUMNS},
        },
    )
    st.caption(
        "Plausibility (token F1, IOU F1, AUPRC against the marked words; pointing game and mass in box against the "
        "evidence box) and faithfulness (comprehensiveness, sufficiency) answer different questions: side by side, "
        "never combined. Empty cells: the metric does not apply to that method."
    )


st.title("Experiments")
experiment_jobs_panel()
plausibility_panel()
with get_sessions()() as session:
    runs = evaluation_run_rows(session)
if runs:
    # imports the explain package: only once there are runs
    from explain.tables import OUTSIDE_TABLES

    # a retraining's before/after evaluations are stored too, for another purpose: not the paper's tables
    runs = [run for run in runs if run["purpose"] not in OUTSIDE_TABLES]
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

st.subheader("Table 1: visual shuffle")
shuffle_rows = shuffle_table(chosen)
st.dataframe(
    percent(shuffle_rows, SHUFFLE_COLUMNS),
    hide_index=True,
    key="experiments_shuffle",
    column_config={c: st.column_config.NumberColumn(format="%.2f") for c in SHUFFLE_COLUMNS[2:7]},
)
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
    st.plotly_chart(figures.ablation_figure(ablation_rows), key="experiments_ablation_chart")
else:
    st.info("No standard-setting run on this split: Table 2 needs one per variant.")
st.caption(
    f"{len(chosen)} stored runs on {split}; several runs of one model and setting (seeds) are averaged."
)
