"""The Loop page's admin panels: retraining by itself every N decisions, and how a dataset is shared among
reviewers (overlap, lease length, assigned queue filters) with each reviewer's progress."""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd
import streamlit as st
from sqlalchemy.orm import sessionmaker

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
from app.services.loop_report import save_schedule
from app.ui.auth import refuse_unless_admin
from app.ui.identity import require_reviewer
from app.ui.render import plain


def schedule_panel(sessions: sessionmaker, dataset: str, schedule) -> None:
    """Whether a retraining starts by itself every N new decisions, and the form that sets it (admins)."""
    st.subheader("Retrain by itself")
    if schedule.every is None:
        st.write("Off: retraining starts only from the Models page.")
    else:
        st.write(
            f"On: a retraining of the active model on the curated {plain(dataset)} labels "
            f"({schedule.epochs} epoch(s)) is queued every {schedule.every} new decisions; {schedule.new_decisions} so far"
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


def team_panel(sessions: sessionmaker, dataset: str) -> None:
    """Each reviewer's progress on the dataset; the overlap and lease length, and a reviewer's assigned filter
    (admins)."""
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
            width="stretch",
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
                    f"Each pair of {plain(dataset)} goes to {saved.overlap} reviewer(s); leases lapse after "
                    f"{saved.lease_minutes} minutes."
                )
    choices = assignment_choices(sessions)
    with st.form("loop_assign"):
        st.caption(
            "Assign a reviewer a queue filter: their Review hands out only these pairs of this dataset."
        )
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
                    st.error(f"Not saved: {plain(err)}")
                else:
                    st.success(f"{plain(assignee.strip())}: filter {'assigned' if values else 'removed'}.")
