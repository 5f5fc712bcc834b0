"""The Label errors page's panels: the latest run's progress (a fragment polling while it runs), starting a run,
the finished run's summary and suspects, and their export for experts. The rows and texts come from
app.services.label_errors."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st
from sqlalchemy.orm import sessionmaker

from app.services.errors import LabelStoreError, mask_secrets
from app.services.label_errors import (
    LabelErrorsRunning,
    SuspectReview,
    cancel_run,
    eta_text,
    export_top_suspects,
    fold_weakness,
    latest_progress,
    run_summary,
    start_find_label_errors,
    suspect_rows,
)
from app.services.paths import export_dir
from app.ui.auth import current_actor, refuse_unless_admin
from app.ui.identity import require_reviewer
from app.ui.render import plain

REFRESH_SECONDS = 3
LIVE = ("planning", "running")
EXPORTS = [
    ("csv", "CSV", "csv", "text/csv"),
    ("labelstudio", "Label Studio tasks", "json", "application/json"),
]


def run_progress_panel(sessions: sessionmaker, dataset: str) -> None:
    """The latest run's progress; a fragment re-reading the jobs table every few seconds only while a run is under
    way (one that kept polling would also fire after the reviewer has moved on to another page)."""
    current = latest_progress(sessions, dataset)
    live = current is not None and current.status in LIVE
    st.fragment(run_every=REFRESH_SECONDS if live else None)(_run_panel)(sessions, dataset, live)


def _run_panel(sessions: sessionmaker, dataset: str, polling: bool) -> None:
    """While the run runs, its progress and a cancel button (the rest of the page stays); once it ends, one page
    rerun draws the results and stops the timer."""
    progress = latest_progress(sessions, dataset)
    if progress is None:
        return
    if progress.status in LIVE:
        st.progress(
            progress.fraction, text=f"Find label errors: {progress.message} · {eta_text(progress.eta_s)}"
        )
        cancel = st.button("Cancel the run", key="label_errors_cancel")
        if cancel and (admin := refuse_unless_admin("cancel Find label errors")) is not None:
            cancel_run(sessions, progress.plan.id, actor=admin)
            st.rerun()
        return
    if polling:
        st.rerun()
    if progress.status == "succeeded":
        st.caption(f"Latest run (job {progress.plan.id}): {progress.message}.")
    else:
        # a job's error may quote a URL: shown through the one masking function, as on the Jobs page
        st.error(mask_secrets(f"The latest run did not finish: {progress.message}. Start it again below."))


def find_panel(sessions: sessionmaker, dataset: str) -> None:
    """The number of folds and the button that queues a run (admins)."""
    with st.container(border=True):
        folds_col, button_col = st.columns([1, 2])
        folds = folds_col.number_input(
            "Folds", min_value=2, max_value=10, value=5, step=1, key="label_errors_folds"
        )
        find = button_col.button("Find label errors", type="primary", key="label_errors_find")
        if find and (admin := refuse_unless_admin("run Find label errors")) is not None:
            try:
                job_id = start_find_label_errors(sessions, dataset, require_reviewer(), admin, int(folds))
                st.success(
                    f"Queued as job {job_id}; its folds train one after another in the worker (Jobs page)."
                )
            except LabelErrorsRunning as err:
                st.warning(str(err))
            except LabelStoreError as err:
                st.error(f"Not started: {plain(err)}")
        if not current_actor().is_admin:
            st.caption("Starting a run is for admins; everyone can review its suspects.")


def run_results(run, found: SuspectReview) -> None:
    """The run's counts, the audit's progress, and the suspects table."""
    audit = found.audit
    summary = st.columns(4)
    summary[0].metric("pairs scored", f"{run.pairs:,}")
    summary[1].metric("flagged by cleanlab", f"{run.flagged:,}")
    summary[2].metric(
        f"top {audit.suspects} reviewed",
        f"{audit.reviewed} of {audit.suspects}",
        help="accepted, corrected or rejected since the run (skipped is not a review)",
    )
    summary[3].metric("gold labels changed", f"{audit.changed}", help="of the reviewed suspects")
    st.caption(run_summary(run, audit))
    weak = fold_weakness(run)
    if weak:
        st.warning(weak)
    st.dataframe(
        pd.DataFrame(suspect_rows(found)),
        hide_index=True,
        key="label_errors_table",
        column_config={
            "p(suggested)": st.column_config.ProgressColumn(
                format="%.2f", min_value=0, max_value=1, width="small"
            ),
            "p(gold)": st.column_config.NumberColumn(format="%.3f"),
            "text": st.column_config.TextColumn(width="medium"),
        },
    )


def export_panel(sessions: sessionmaker, dataset: str, run_id: int, top: int) -> None:
    """The top suspects as a CSV or Label Studio tasks, kept in the export folder and offered for download."""
    st.subheader("Export for expert review")
    for col, (fmt, name, extension, mime) in zip(st.columns(len(EXPORTS)), EXPORTS, strict=True):
        if col.button(f"Export the top {top} as {name}", key=f"le_{fmt}"):
            file_name = f"suspects-run{run_id}-{dt.datetime.now():%Y%m%d-%H%M%S}.{extension}"
            try:
                path = export_top_suspects(sessions, dataset, export_dir() / file_name, fmt, top)
                st.session_state["label_errors_export"] = (path, mime)
            except (LabelStoreError, ValueError, OSError) as err:
                st.error(f"Export failed: {plain(err)}")
    exported = st.session_state.get("label_errors_export")
    if exported:
        path, mime = exported
        st.download_button(
            f"Download {path.name}", path.read_bytes(), file_name=path.name, mime=mime, key="le_dl"
        )
