"""Jobs: the long work the worker runs beside the app (training, scoring, grounding, experiments).

Every job's kind, who started it, its progress (step, epoch, time left, latest val F1), its log tail, its outcome or
error, and a cancel button while it is queued or running. The state is the label store's jobs table, so a refresh
or an app restart shows the same; the page re-reads it every few seconds while something runs.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.jobs import cancel
from app.services.errors import LabelStoreError, mask_secrets
from app.services.job_board import JobView, job_board, job_rows, outcome_text, progress_text
from app.ui.auth import current_actor
from app.ui.render import plain
from app.ui.resources import get_sessions

REFRESH_SECONDS = 3
# Fixed widths (px) of the All jobs table: at 1600 px the wide layout leaves about 1,100 px beside the sidebar, and
# with automatic widths a training's outcome pushed the outcome and error columns past the right edge; the chosen
# job's whole outcome is written out under the table
JOB_WIDTHS = {
    "job": 45,
    "kind": 250,
    "started by": 80,
    "status": 80,
    "progress %": 110,
    "created": 140,
    "outcome": 290,
    "error": 100,
}  # 1,095 px


def cancel_button(job: JobView) -> None:
    if st.button(
        "Cancel", key=f"jobs_cancel_{job.id}", disabled=job.cancel_requested and job.status == "running"
    ):
        try:
            status = cancel(get_sessions(), job.id, actor=current_actor())
        except LabelStoreError as err:
            st.error(mask_secrets(err))
        else:
            st.toast(f"Job {job.id}: " + ("cancelled" if status == "cancelled" else "stops at its next step"))
            st.rerun()


st.title("Jobs")
sessions = get_sessions()
board = job_board(sessions)  # plain data: nothing is read from a session after it closes
running, pending, recent = board.running, board.pending, board.recent


@st.fragment(run_every=REFRESH_SECONDS if running or pending else None)
def live() -> None:
    now = job_board(get_sessions(), limit=0)
    now_running, now_pending = now.running, now.pending
    if [j.id for j in now_running] != [j.id for j in running] or len(now_pending) != len(pending):
        st.rerun()  # a job started or ended: redraw the whole page
    st.subheader("Running")
    if not now_running:
        st.caption(
            "Nothing is running. The worker (`python -m app.worker`, started by `make app`) takes the "
            "next queued job."
        )
    for job in now_running:
        with st.container(border=True):
            st.markdown(
                f"**Job {job.id}: {job.name}**, started by {plain(job.started_by)} "
                f"on {plain(job.worker)}" + (" · **cancel requested**" if job.cancel_requested else "")
            )
            st.progress(job.fraction, text=progress_text(job) or "starting ...")
            if job.log_tail:
                # long lines wrap: at 1600 px an unwrapped log ran past the column's right edge
                st.code("\n".join(job.log_tail.splitlines()[-12:]), language=None, wrap_lines=True)
            cancel_button(job)
    st.subheader(f"Queue ({len(now_pending)} waiting)")
    if not now_pending:
        st.caption("No job is waiting.")
    for position, job in enumerate(now_pending, 1):
        c1, c2 = st.columns([5, 1])
        c1.markdown(
            f"{position}. **Job {job.id}: {job.name}**, started by "
            f"{plain(job.started_by)}, queued {job.created_at:%H:%M:%S} UTC (priority {job.priority})"
        )
        with c2:
            cancel_button(job)


live()
st.subheader("All jobs")
if recent:
    st.dataframe(
        pd.DataFrame(job_rows(recent)),
        hide_index=True,
        key="jobs_table",
        column_config={
            column: (
                st.column_config.ProgressColumn(min_value=0, max_value=100, format="%.0f%%", width=width)
                if column == "progress %"
                else st.column_config.Column(width=width)
            )
            for column, width in JOB_WIDTHS.items()
        },
    )
    finished = [j for j in recent if j.finished]
    if finished:
        labels = {f"job {j.id}: {j.name} ({j.status})": j for j in finished}
        # the newest finished job until the reviewer picks another: a job that finishes later takes its place
        newest, shown_newest = next(iter(labels)), st.session_state.get("jobs_details_newest")
        if st.session_state.get("jobs_details") in (None, shown_newest):
            st.session_state["jobs_details"] = newest
        st.session_state["jobs_details_newest"] = newest
        picked = labels[st.selectbox("Details of", list(labels), key="jobs_details")]
        if picked.error:
            st.error(picked.error)
        if outcome_text(picked.outcome):
            st.markdown(f"**Outcome**: {plain(outcome_text(picked.outcome))}")
        if picked.log_tail:
            st.code(picked.log_tail, language=None, wrap_lines=True)
else:
    st.info(
        "No job has run yet. `make app` queues the first model; the Models and Experiments pages start more."
    )
