"""What the Experiments page shows, without Streamlit: the paper's two tables from the stored evaluation runs (in
percent, the paper's unit), the experiment jobs' progress in words, and the plausibility table's frame.

    paper_runs(sessions) -> list[dict]              evaluation runs that belong in the tables (no retraining's)
    table_frame(rows, columns) -> DataFrame          a table's columns, metrics in percent
    experiment_progress_text(job) -> str             "Job 4: Table 2 (ablation) running, training 2/4, epoch 1/1"
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy.orm import sessionmaker

from app.services.job_board import JobView
from app.services.plausibility import PLAUSIBILITY_COLUMNS, stored_results, table_rows
from app.services.store import evaluation_run_rows

EXPERIMENT_KINDS = {"shuffle": "Table 1 (visual shuffle)", "ablation": "Table 2 (ablation)"}
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


def paper_runs(sessions: sessionmaker) -> list[dict]:
    """The stored evaluation runs of the paper's tables: a retraining's before/after evaluations are stored too,
    for another purpose (explain.tables.OUTSIDE_TABLES), and left out."""
    with sessions() as session:
        runs = evaluation_run_rows(session)
    if not runs:
        return []
    from explain.tables import OUTSIDE_TABLES  # the explain package only once there are runs

    return [run for run in runs if run["purpose"] not in OUTSIDE_TABLES]


def table_frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """The table's columns, metrics in percent (the paper's unit)."""
    frame = pd.DataFrame(rows).reindex(columns=columns)
    for col in columns:
        if col == "paper_f1" or col.startswith("n_") or not pd.api.types.is_numeric_dtype(frame[col]):
            continue  # the paper's numbers are already in percent; counts and names stay as they are
        frame[col] = frame[col] * 100
    return frame


def experiment_progress_text(job: JobView) -> str:
    """One experiment job's state in words, with the training and epoch it is at while it runs."""
    progress = job.progress
    text = f"Job {job.id}: {EXPERIMENT_KINDS[job.kind]} {job.status}"
    if job.status == "running":
        text += f", training {progress.get('part', 1)}/{progress.get('parts', 1)}"
        if progress.get("epoch"):
            text += f", epoch {progress['epoch']}/{progress['epochs']}"
    return text


def plausibility_frame(sessions: sessionmaker) -> pd.DataFrame | None:
    """The stored plausibility jobs' table (method x model version), plausibility in percent; None when none ran."""
    rows = table_rows(stored_results(sessions))
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    for col in PLAUSIBILITY_COLUMNS:
        frame[col] = frame[col] * 100
    return frame
