"""Label errors: find the gold labels that are likely wrong, follow the run, review the suspects, export them.

Find label errors (admins) queues a crossfit job: K fold models, each trained on the other folds, predict the pairs
they never saw; cleanlab scores how likely each label is wrong. The suspects are reviewed on Review in audit mode
(T takes the suggested label, K keeps the gold one), or exported for experts. The panels are
app.ui.label_error_panels.
"""

from __future__ import annotations

import streamlit as st

from app.services.label_errors import (
    DEFAULT_SUSPECTS,
    datasets_with_labels,
    finished_run,
    suspect_review,
    unreviewed_suspects,
)
from app.ui.label_error_panels import export_panel, find_panel, run_progress_panel, run_results
from app.ui.render import plain
from app.ui.resources import get_sessions
from app.ui.state import review_session

st.title("Label errors")
st.caption(
    "A model scoring the pairs it was trained on agrees with the wrong labels it has fitted. Here every labelled "
    "pair is scored by a model that never saw it (K-fold cross-fitting of the train split; the active model for "
    "the other splits), and cleanlab ranks the labels most likely wrong."
)
sessions = get_sessions()
datasets, unlabelled = datasets_with_labels(sessions)
if not datasets:
    st.info("The store has no dataset with a label map yet (an imported dataset has one).")
    st.stop()
dataset = st.selectbox("Dataset", datasets, key="label_errors_dataset")
if unlabelled:
    st.caption(
        f"Not offered: {', '.join(plain(name) for name in unlabelled)} (no label map: posts added on the Add post "
        "page have no label set to check them against)."
    )
run_progress_panel(sessions, dataset)
find_panel(sessions, dataset)

run = finished_run(sessions, dataset)
if run is None:
    st.info("No Find label errors run has finished on this dataset yet.")
    st.stop()
top = st.select_slider("Suspects shown", [50, 100, 200, 500], value=DEFAULT_SUSPECTS, key="label_errors_top")
found = suspect_review(sessions, dataset, top)
run_results(run, found)

to_review = unreviewed_suspects(found)
if st.button(
    f"Review the {len(to_review)} unreviewed suspects (audit)",
    type="primary",
    key="label_errors_review",
    disabled=not to_review,
):
    review = review_session()
    review.queue, review.position, review.audit = to_review, 0, True
    st.switch_page("views/review.py")

export_panel(sessions, dataset, run.id, top)
