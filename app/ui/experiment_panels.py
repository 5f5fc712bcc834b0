"""The Experiments page's panels: starting Table 1 / Table 2 as worker jobs and following them, and the
plausibility table with its form. Rows and texts come from app.services.experiments."""

from __future__ import annotations

import streamlit as st

from app.jobs import enqueue
from app.services.experiments import EXPERIMENT_KINDS, experiment_progress_text, plausibility_frame
from app.services.job_board import live_jobs
from app.services.model_jobs import recipe_for, training_sources
from app.services.plausibility import FAITHFULNESS_COLUMNS, PLAUSIBILITY_COLUMNS
from app.services.store import dataset_names, registered_versions
from app.ui.auth import refuse_unless_admin
from app.ui.identity import require_reviewer
from app.ui.render import plain
from app.ui.resources import get_sessions

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
        recipe = recipe_for(sessions, dataset)
        if recipe.variant == "text_only":
            # MNRE on a machine with few of its images: a shuffle of a few dozen images measures nothing
            st.warning(
                f"Only {recipe.why} on this machine in {plain(dataset)}: Table 1 shuffles those few and the image-reading variants "
                "see no image for the rest, so neither table can say much about the images here."
            )
        for column, kind in zip(st.columns(2), ("shuffle", "ablation"), strict=True):
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
        st.progress(job.fraction, text=experiment_progress_text(job))


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
                params = {
                    "dataset": dataset,
                    "model_version": version,
                    "split": split,
                    "limit": int(limit) or None,
                }
                job = enqueue(sessions, "plausibility", require_reviewer(), params)
                st.success(f"Queued job {job}: plausibility of {version}. Follow it on the Jobs page.")
    for job in live_jobs(sessions, ("plausibility",)):
        st.progress(
            job.fraction, text=f"Job {job.id}: plausibility of {job.params.get('model_version')} {job.status}"
        )
    frame = plausibility_frame(sessions)
    if frame is None:
        st.caption(
            "No plausibility table yet: run one above or with `python -m app.plausibility --dataset NAME --model "
            "VERSION`. It needs stored rationales (marked on Review, or a synthetic set's own evidence)."
        )
        return
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
