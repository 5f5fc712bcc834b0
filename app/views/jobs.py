"""Jobs: the long work the worker runs beside the app (training, scoring, grounding, experiments).

Every job's kind, who started it, its progress (step, epoch, time left, latest val F1), its log tail, its outcome or
error, and a cancel button while it is queued or running. The state is the label store's jobs table, so a refresh
or an app restart shows the same; the page re-reads it every few seconds while something runs.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.jobs import cancel
from app.services.model_status import job_name
from app.ui.auth import current_actor
from app.ui.resources import get_sessions
from db.errors import LabelStoreError
from db.jobs import list_jobs, pending_jobs, running_jobs
from db.models import Job
from db.redact import mask_secrets

REFRESH_SECONDS = 3


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return (
        f"{seconds // 3600}h{seconds // 60 % 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def progress_text(job: Job) -> str:
    job_progress = job.progress or {}
    parts = []
    if job_progress.get("parts", 1) > 1:
        parts.append(f"part {job_progress['part']}/{job_progress['parts']}")
    if job_progress.get("epoch"):
        parts.append(f"epoch {job_progress['epoch']}/{job_progress['epochs']}")
    if job_progress.get("step") and not job_progress.get("epoch") and job_progress.get("message"):
        # a job without epochs (scoring, explanations, grounding) says what it counts: "explanations: 5/8 pairs"
        parts.append(job_progress["message"])
    elif job_progress.get("step"):
        parts.append(
            f"step {job_progress['step']}"
            + (f"/{job_progress['steps']}" if job_progress.get("steps") else "")
        )
    if job.status == "running" and job_progress.get("eta_s") is not None:
        parts.append(f"about {duration(job_progress['eta_s'])} left")
    if job_progress.get("val_f1") is not None:
        parts.append(f"latest val F1 {100 * job_progress['val_f1']:.1f}")
    return " · ".join(parts) or job_progress.get("message", "")


def job_rows(jobs: list[Job]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "job": job.id,
                "kind": job_name(job),
                "started by": job.started_by,
                "status": job.status,
                "progress %": 100 * (job.progress or {}).get("fraction", 0.0),
                "created": job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                "outcome": ", ".join(f"{k}: {v}" for k, v in (job.outcome or {}).items() if v is not None),
                "error": mask_secrets(job.error or ""),  # rows stored before errors were masked
            }
            for job in jobs
        ]
    )


def cancel_button(job: Job) -> None:
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
with sessions() as session:
    running, pending, recent = running_jobs(session), pending_jobs(session), list_jobs(session, limit=50)
    session.expunge_all()  # the rows are read after the session closes


@st.fragment(run_every=REFRESH_SECONDS if running or pending else None)
def live() -> None:
    with get_sessions()() as session:
        now_running, now_pending = running_jobs(session), pending_jobs(session)
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
                job_progress = job.progress or {}
                st.markdown(
                    f"**Job {job.id}: {job_name(job)}**, started by {job.started_by} "
                    f"on {job.worker}" + (" · **cancel requested**" if job.cancel_requested else "")
                )
                st.progress(
                    min(1.0, job_progress.get("fraction", 0.0)), text=progress_text(job) or "starting ..."
                )
                if job.log_tail:
                    st.code(mask_secrets("\n".join(job.log_tail.splitlines()[-12:])), language=None)
                cancel_button(job)
        st.subheader(f"Queue ({len(now_pending)} waiting)")
        if not now_pending:
            st.caption("No job is waiting.")
        for position, job in enumerate(now_pending, 1):
            c1, c2 = st.columns([5, 1])
            c1.markdown(
                f"{position}. **Job {job.id}: {job_name(job)}**, started by "
                f"{job.started_by}, queued {job.created_at:%H:%M:%S} UTC (priority {job.priority})"
            )
            with c2:
                cancel_button(job)


live()
st.subheader("All jobs")
if recent:
    st.dataframe(
        job_rows(recent),
        hide_index=True,
        key="jobs_table",
        column_config={
            "progress %": st.column_config.ProgressColumn(min_value=0, max_value=100, format="%.0f%%")
        },
    )
    finished = [j for j in recent if j.status not in ("queued", "running")]
    if finished:
        labels = {f"job {j.id}: {job_name(j)} ({j.status})": j for j in finished}
        picked = labels[st.selectbox("Details of", list(labels), key="jobs_details")]
        if picked.error:
            st.error(mask_secrets(picked.error))
        if picked.outcome:
            st.json(picked.outcome, expanded=False)
        if picked.log_tail:
            st.code(mask_secrets(picked.log_tail), language=None)
else:
    st.info(
        "No job has run yet. `make app` queues the first model; the Models and Experiments pages start more."
    )
