"""Loop: what reviewing a dataset buys. Decisions per day and reviewer, how often the review changed the gold label
or found the active model wrong, the app's own learning curve (each model version's val micro-F1 against the
reviewed labels there were when it was registered) beside the benchmark's measured curve, the gain it predicts for
retraining now, and retraining that starts by itself every N new decisions (admins; off by default); how the team
shares the dataset out (overlap, lease length, assigned filters; admins) and each reviewer's progress.
"""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd
import streamlit as st

from app.services.errors import LabelStoreError
from app.services.leases import (
    MAX_LEASE_MINUTES,
    MAX_OVERLAP,
    assign_queue_filter,
    assignment_choices,
    progress_rows,
    save_team_settings,
    settings_of,
)
from app.services.loop_report import (
    benchmark_figure,
    dataset_names,
    decisions_figure,
    learning_curve_figure,
    loop_report,
    measured_curves,
    outcome_rows,
    save_schedule,
)
from app.ui.auth import refuse_unless_admin
from app.ui.identity import require_reviewer
from app.ui.resources import get_sessions

st.title("Loop")
st.caption(
    "Every review decision is a label the next model can learn from. This page shows what the review of a dataset "
    "has found and what the models trained since have gained."
)
sessions = get_sessions()
datasets = dataset_names(sessions)
if not datasets:
    st.info("The store has no dataset yet.")
    st.stop()
dataset = st.selectbox("Dataset", datasets, key="loop_dataset")
report = loop_report(sessions, dataset)

left, right = st.columns(2)
with left:
    if report.decisions:
        st.plotly_chart(decisions_figure(report.decisions), use_container_width=True, key="loop_decisions")
    else:
        st.info("No review decisions on this dataset yet.")
with right:
    st.subheader("What the review found")
    st.dataframe(pd.DataFrame(outcome_rows(report.outcomes)), hide_index=True, use_container_width=True)
    if report.active is None:
        st.caption("No model is active, so there is nothing to compare the reviewed labels with.")

st.plotly_chart(
    learning_curve_figure(report.curve, report.measured), use_container_width=True, key="loop_curve"
)
if not report.curve:
    st.caption("No model version trained on this dataset has a val micro-F1 stored yet.")
if report.measured is None:
    st.caption("The annotation-loop benchmark has not been run on this machine (benchmarks/bench_loop.py).")

measured = measured_curves()
if measured:
    with st.expander("The benchmark behind the Queue's default order (benchmarks/loop.md)"):
        st.caption(
            "A simulated reviewer labels 250 pairs a round, picked by each order, and the model is retrained after "
            "each round; val micro-F1 per labelled pair, mean over seeds. The Queue starts in the order that beat "
            "random on every seed with the largest area under this curve (random if none did)."
        )
        for name, (winner, curves) in measured.items():
            st.plotly_chart(
                benchmark_figure(curves, winner), use_container_width=True, key=f"loop_bench_{name}"
            )

st.subheader("Retrain now?")
if report.gain is None:
    st.write("Needs an active model and the benchmark's measured curve.")
else:
    gain = report.gain
    if gain.new_decisions == 0:
        st.write(
            "No label decisions since the active model was registered: retraining now would learn nothing new."
        )
    else:
        st.metric(
            f"Expected val micro-F1 change from {gain.new_decisions} new decision(s)",
            f"{100 * gain.points:+.2f} points",
        )
        st.caption(
            f"From the benchmark's {report.measured.strategy} curve on {report.measured.dataset}: {gain.how}. A "
            "retraining is activated only if its val micro-F1 beats the active model's."
        )

st.subheader("Retrain by itself")
schedule = report.schedule
if schedule.every is None:
    st.write("Off: retraining starts only from the Models page.")
else:
    st.write(
        f"On: a retraining of the active model on the curated {dataset} labels ({schedule.epochs} epoch(s)) is "
        f"queued every {schedule.every} new decisions; {schedule.new_decisions} so far"
        + (f" (last queued: job {schedule.last_job_id})." if schedule.last_job_id else ".")
    )
with st.form("loop_schedule"):
    every_col, epochs_col = st.columns(2)
    every = every_col.number_input(
        "Every N new decisions (0 = off)", 0, 1_000_000, schedule.every or 0, step=50, key="loop_every"
    )
    epochs = epochs_col.number_input("Epochs", 1, 20, schedule.epochs, key="loop_epochs")
    if st.form_submit_button("Save the schedule"):
        who = require_reviewer()
        if (admin := refuse_unless_admin("change the retraining schedule")) is not None:
            saved = save_schedule(sessions, dataset, int(every) or None, int(epochs), admin, who)
            st.success(
                f"Retraining every {saved.every} new decisions, from now on."
                if saved.every
                else "Retraining by itself is off."
            )

st.subheader("Working as a team")
st.caption(
    "Review hands each reviewer the next pair of the queue under a lease: nobody else gets that pair while they hold "
    "it, unless the overlap asks for several reviewers per pair (for agreement). A lease lapses after the minutes "
    "below without activity and the pair goes to the next reviewer; a skip hands it on at once."
)
team = progress_rows(sessions, dataset)
if team:
    st.dataframe(
        pd.DataFrame([asdict(row) for row in team]).rename(
            columns={"leased_now": "leased now", "assigned": "assigned filter"}
        ),
        hide_index=True,
        use_container_width=True,
        key="loop_team_progress",
    )
else:
    st.caption("Nobody has decided, skipped or leased a pair of this dataset yet.")
shared = settings_of(sessions, dataset)
with st.form("loop_team"):
    overlap_col, minutes_col = st.columns(2)
    overlap = overlap_col.number_input(
        "Reviewers per pair (overlap)", 1, MAX_OVERLAP, shared.overlap, key="loop_overlap"
    )
    minutes = minutes_col.number_input(
        "Lease lapses after (minutes without activity)",
        1,
        MAX_LEASE_MINUTES,
        shared.lease_minutes,
        key="loop_lease",
    )
    if st.form_submit_button("Save how pairs are shared"):
        require_reviewer()
        if (admin := refuse_unless_admin("set how a dataset is shared among reviewers")) is not None:
            saved = save_team_settings(sessions, dataset, int(overlap), int(minutes), admin)
            st.success(
                f"Each pair of {dataset} goes to {saved.overlap} reviewer(s); leases lapse after "
                f"{saved.lease_minutes} minutes."
            )
choices = assignment_choices(sessions)
with st.form("loop_assign"):
    st.caption("Assign a reviewer a queue filter: their Review hands out only these pairs of this dataset.")
    who_col, split_col, gold_col = st.columns(3)
    assignee = who_col.text_input("Reviewer (their identity)", key="loop_assignee")
    split = split_col.selectbox("Split", ["any", *choices["split"]], key="loop_assign_split")
    gold = gold_col.selectbox("Gold label", ["any", *choices["gold_label"]], key="loop_assign_gold")
    words = st.text_input("Text contains", key="loop_assign_text")
    assign, remove = st.columns(2)
    clicked_assign = assign.form_submit_button("Assign this filter")
    clicked_remove = remove.form_submit_button("Remove their filter")
    if clicked_assign or clicked_remove:
        require_reviewer()
        if (admin := refuse_unless_admin("assign a queue filter to a reviewer")) is not None:
            values = None
            if clicked_assign:
                values = {
                    "dataset": dataset,
                    "split": None if split == "any" else split,
                    "gold_label": None if gold == "any" else gold,
                    "text": words.strip() or None,
                }
            try:
                assign_queue_filter(sessions, assignee, values, admin)
            except LabelStoreError as err:
                st.error(f"Not saved: {err}")
            else:
                st.success(f"{assignee.strip()}: filter {'assigned' if values else 'removed'}.")
