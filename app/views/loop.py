"""Loop: what reviewing a dataset buys. Decisions per day and reviewer, how often the review changed the gold label
or found the active model wrong, the app's own learning curve (each model version's val micro-F1 against the
reviewed labels there were when it was registered) beside the benchmark's measured curve, the gain it predicts for
retraining now, and retraining that starts by itself every N new decisions (admins; off by default); how the team
shares the dataset out (overlap, lease length, assigned filters; admins) and each reviewer's progress.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.services.loop_report import (
    benchmark_figure,
    dataset_names,
    decisions_figure,
    learning_curve_figure,
    loop_report,
    measured_curves,
    outcome_rows,
)
from app.ui.loop_panels import schedule_panel, team_panel
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
        st.plotly_chart(decisions_figure(report.decisions), width="stretch", key="loop_decisions")
    else:
        st.info("No review decisions on this dataset yet.")
with right:
    st.subheader("What the review found")
    st.dataframe(pd.DataFrame(outcome_rows(report.outcomes)), hide_index=True, width="stretch")
    if report.active is None:
        st.caption("No model is active, so there is nothing to compare the reviewed labels with.")

st.plotly_chart(learning_curve_figure(report.curve, report.measured), width="stretch", key="loop_curve")
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
            st.plotly_chart(benchmark_figure(curves, winner), width="stretch", key=f"loop_bench_{name}")

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

schedule_panel(sessions, dataset, report.schedule)
team_panel(sessions, dataset)
