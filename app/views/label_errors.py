"""Label errors: find the gold labels that are likely wrong, follow the run, review the suspects, export them.

Find label errors (admins) queues a crossfit job: K fold models, each trained on the other folds, predict the pairs
they never saw; cleanlab scores how likely each label is wrong. The suspects are reviewed on Review in audit mode
(T takes the suggested label, K keeps the gold one), or exported for experts.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from app.services.errors import LabelStoreError, mask_secrets
from app.services.label_errors import (
    DEFAULT_SUSPECTS,
    LabelErrorsRunning,
    cancel_run,
    eta_text,
    export_top_suspects,
    finished_run,
    run_progress,
    start_find_label_errors,
    suspect_review,
)
from app.services.paths import export_dir
from app.services.store import dataset_names
from app.ui.auth import current_actor, refuse_unless_admin
from app.ui.identity import require_reviewer
from app.ui.render import plain
from app.ui.resources import get_sessions
from app.ui.state import review_session

REFRESH_SECONDS = 3

st.title("Label errors")
st.caption(
    "A model scoring the pairs it was trained on agrees with the wrong labels it has fitted. Here every labelled "
    "pair is scored by a model that never saw it (K-fold cross-fitting of the train split; the active model for "
    "the other splits), and cleanlab ranks the labels most likely wrong."
)
sessions = get_sessions()
datasets = dataset_names(sessions)
if not datasets:
    st.info("The store has no dataset yet.")
    st.stop()
dataset = st.selectbox("Dataset", datasets, key="label_errors_dataset")


LIVE = ("planning", "running")


def run_panel(polling: bool) -> None:
    """The latest run's progress. While it runs this is a fragment re-reading the jobs table every few seconds (the
    rest of the page stays); once it ends, one page rerun draws the results and stops the timer."""
    with sessions() as session:
        progress = run_progress(session, dataset)
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


with sessions() as session:
    current = run_progress(session, dataset)
live = current is not None and current.status in LIVE
# a timer only while a run is under way: a fragment that keeps polling would also fire after the reviewer has
# moved on to another page
st.fragment(run_every=REFRESH_SECONDS if live else None)(run_panel)(live)

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

run = finished_run(sessions, dataset)
if run is None:
    st.info("No Find label errors run has finished on this dataset yet.")
    st.stop()
top = st.select_slider("Suspects shown", [50, 100, 200, 500], value=DEFAULT_SUSPECTS, key="label_errors_top")
found = suspect_review(sessions, dataset, top)
audit, rows, states = found.audit, found.rows, found.states

fold_f1 = [m["val_f1"] for m in run.settings.get("fold_models", []) if m.get("val_f1") is not None]
summary = st.columns(4)
summary[0].metric("pairs scored", f"{run.pairs:,}")
summary[1].metric("flagged by cleanlab", f"{run.flagged:,}")
summary[2].metric(
    f"top {audit.suspects} reviewed",
    f"{audit.reviewed} of {audit.suspects}",
    help="accepted, corrected or rejected since the run (skipped is not a review)",
)
summary[3].metric("gold labels changed", f"{audit.changed}", help="of the reviewed suspects")
st.caption(
    f"Run {run.id} of {run.created_at:%Y-%m-%d %H:%M} UTC: {run.folds} folds"
    + (f", fold models' val micro-F1 {min(fold_f1) * 100:.1f}-{max(fold_f1) * 100:.1f}" if fold_f1 else "")
    + f"; ranked by cleanlab's {run.method.replace('_', ' ')}; {audit.in_audit} pairs decided in the audit."
)

table = pd.DataFrame(
    {
        "rank": [s.rank for s in rows],
        "pair": [s.pair_id for s in rows],
        "split": [s.split for s in rows],
        "text": [s.text for s in rows],
        "head": [s.head for s in rows],
        "tail": [s.tail for s in rows],
        "gold": [s.given_label for s in rows],
        "suggested": [s.suggested_label for s in rows],
        "p(suggested)": [s.suggested_probability for s in rows],
        "p(gold)": [s.given_probability for s in rows],
        "flagged": [s.flagged for s in rows],
        "status": [states[s.pair_id].status if s.pair_id in states else "unreviewed" for s in rows],
    }
)
st.dataframe(
    table,
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

review = review_session()
to_review = [s.pair_id for s in rows if s.pair_id in states and states[s.pair_id].status == "unreviewed"]
if st.button(
    f"Review the {len(to_review)} unreviewed suspects (audit)",
    type="primary",
    key="label_errors_review",
    disabled=not to_review,
):
    review.queue, review.position, review.audit = to_review, 0, True
    st.switch_page("views/review.py")

st.subheader("Export for expert review")
export_cols = st.columns(2)
for col, (fmt, extension, mime) in zip(
    export_cols,
    [("csv", "csv", "text/csv"), ("labelstudio", "json", "application/json")],
    strict=True,
):
    if col.button(
        f"Export the top {top} as {'CSV' if fmt == 'csv' else 'Label Studio tasks'}", key=f"le_{fmt}"
    ):
        name = f"suspects-run{run.id}-{dt.datetime.now():%Y%m%d-%H%M%S}.{extension}"
        try:
            path = export_top_suspects(sessions, dataset, export_dir() / name, fmt, top)
            st.session_state["label_errors_export"] = (path, mime)
        except (LabelStoreError, ValueError, OSError) as err:
            st.error(f"Export failed: {plain(err)}")
exported = st.session_state.get("label_errors_export")
if exported:
    path, mime = exported
    st.download_button(
        f"Download {path.name}", path.read_bytes(), file_name=path.name, mime=mime, key="le_dl"
    )
