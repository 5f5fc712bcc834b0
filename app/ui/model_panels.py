"""The Models page's panels: the versions table, one version's per-label figures, queuing a training, comparing two
versions on val, retraining from the curated labels. Rows and messages come from app.services.model_catalog;
every training is a worker job (app.jobs): nothing here trains."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from app.jobs import enqueue
from app.services.errors import LabelStoreError
from app.services.model_catalog import (
    ModelVersionInfo,
    compare_versions,
    comparison_note,
    label_f1_rows,
    per_label_rows,
    val_summary,
    version_rows,
)
from app.services.model_jobs import (
    TRAINING_NAMES,
    VARIANTS,
    explain_limit,
    queue_explanations,
    queue_training,
    recipe_for,
    training_config_file,
)
from app.ui.auth import current_actor, refuse_unless_admin
from app.ui.identity import require_reviewer
from app.ui.render import MISSING, plain

# Fixed widths (px) of the versions table: at 1600 px the wide layout leaves about 1,100 px beside the sidebar,
# and with Streamlit's automatic widths the last columns ("created by", "created") fell outside it
# the version id whole (30 characters: "ifaformer-objects-afcab8ead0a6") and the training data in words; precision,
# recall and the val record count are in each version's details below the table
VERSION_WIDTHS = {
    "version": 235,
    "active": 50,
    "variant": 70,
    "architecture": 80,
    "text encoder": 85,
    "val F1": 70,
    "training data": 220,  # "mnre, full train split, 1 epoch(s)" whole (it was cut at 175)
    "job": 55,  # "job 12"
    "created by": 85,
    "created": 115,
}  # 1,065 px


def versions_table(versions: list[ModelVersionInfo]) -> None:
    """Every registered version with its val figures (percent, two decimals, the unit in each header) and how it
    was trained."""
    percent_columns = ("val F1",)
    st.dataframe(
        pd.DataFrame(version_rows(versions)),
        hide_index=True,
        key="models_table",
        placeholder=MISSING,  # a figure not stored is a dash, never "None" (which reads like a value)
        column_config={
            column: (
                st.column_config.NumberColumn(f"{column} %", format="%.2f", width=width)
                if column in percent_columns
                else st.column_config.Column(width=width)
            )
            for column, width in VERSION_WIDTHS.items()
        },
    )


def version_details(sessions: sessionmaker, version: ModelVersionInfo) -> None:
    """One version's per-label val figures and its training settings, in an expander; for an image-reading
    version, the precompute of the queue's top (explain_top_panel)."""
    with st.expander(f"{version.version_id}: val figures per label and training settings", expanded=False):
        st.caption(val_summary(version))
        rows = per_label_rows(version)
        if rows:
            st.dataframe(
                pd.DataFrame(rows),
                hide_index=True,
                key="models_per_label",
                placeholder=MISSING,
                column_config={
                    c: st.column_config.NumberColumn(f"{c} %", format="%.1f") for c in ("P", "R", "F1")
                },
            )
        else:
            st.caption("No per-label figures were stored with this version.")
        st.json({"path": version.folder, "settings": dict(version.settings)}, expanded=False)
    if version.variant != "text_only":
        explain_top_panel(sessions, version)


def explain_top_panel(sessions: sessionmaker, version: ModelVersionInfo) -> None:
    """Queue the precompute of Inspect's explanations (attributions and image reliance) for the top of the queue
    with an image-reading version: what fills the Queue's image reliance column when the version was scored
    before, or the activation's precompute did not reach those pairs."""
    n = explain_limit()
    c1, c2 = st.columns([3, 1])
    c1.caption(
        f"Inspect's attributions and image reliance for the top {n} pairs of the queue, computed by the worker "
        f"with {version.version_id} and stored: the Queue's image reliance column shows them."
    )
    if c2.button("Explain the top of the queue", key="models_explain_top"):
        job = queue_explanations(sessions, version.version_id, n, require_reviewer())
        st.success(f"Queued job {job}: the top {n} pairs explained by {version.version_id} (see Jobs).")


def training_panel(sessions: sessionmaker, sources: dict[str, str], pending: dict[str, object]) -> None:
    """Queue the first model (one epoch) or the full recipe of any variant as a worker job, as `make app` does
    (app.services.model_jobs); the variant starts at the data's (objects when most posts have an image, else
    text_only)."""
    st.subheader("Train a model")
    if not current_actor().is_admin:
        st.caption("Queuing a training is for admins.")
        return
    if not sources:
        st.info("Training needs a dataset imported from an MNRE-layout folder that is still on this machine.")
        return
    names = list(sources)
    c1, c2 = st.columns(2)
    dataset = c1.selectbox(
        "Train on", names, index=names.index("mnre") if "mnre" in names else 0, key="models_train_dataset"
    )
    recipe = recipe_for(sessions, dataset)
    variants = list(VARIANTS)
    variant = c2.selectbox(
        "Variant",
        variants,
        index=variants.index(recipe.variant),
        format_func=lambda name: f"{name} (the data's default)" if name == recipe.variant else name,
        key="models_train_variant",
    )
    st.caption(
        f"The default for {plain(dataset)} is **{recipe.variant}**: {recipe.why} on this machine (an image "
        "missing from the data folder counts as none; the paper's objects model when more than half have one, else "
        "text_only). vanilla reads the global image, objects also up to 3 object "
        "crops, mega aligns the words with a scene graph of them."
    )
    for column, (kind, name) in zip(st.columns(len(TRAINING_NAMES)), TRAINING_NAMES.items(), strict=True):
        with column:
            job = pending.get(kind)
            config = training_config_file(kind, dataset)
            # redrawn once a job is queued below: the line read "no job" beside "Queued job 5"
            line = st.empty()
            line.caption(
                f"{name.capitalize()}: `{config.name}`"
                + (f" · job {job.id} is {job.status}" if job is not None else "")
            )
            if not st.button(f"Queue {name} ({variant})", key=f"models_queue_{kind}"):
                continue
            who = require_reviewer()
            if (admin := refuse_unless_admin(f"queue {name}")) is None:
                continue
            try:
                job_id = queue_training(
                    sessions, kind, sources[dataset], dataset, who, actor=admin, variant=variant
                )
            except (LabelStoreError, OperationalError, FileNotFoundError) as err:
                st.error(f"Not queued: {err}")
            else:
                line.caption(f"{name.capitalize()}: `{config.name}` · job {job_id} is queued")
                st.success(
                    f"Queued job {job_id}: {name} ({variant}) on {plain(dataset)}. It is registered when it "
                    "ends and made active only if its val micro-F1 beats the active model's. Follow it on the "
                    "Jobs page."
                )


def compare_panel(sessions: sessionmaker, by_name: dict[str, ModelVersionInfo], active) -> None:
    """Per-label val F1 of two versions and the val pairs whose prediction changed between them."""
    st.subheader("Compare two versions on val")
    names = list(by_name)
    if len(names) < 2:
        st.caption("Only one version is registered.")
        return
    c1, c2 = st.columns(2)
    first = c1.selectbox("Before", names, index=min(1, len(names) - 1), key="models_compare_a")
    second = c2.selectbox("After", names, index=0, key="models_compare_b")
    version_a, version_b = by_name[first], by_name[second]
    delta = pd.DataFrame(label_f1_rows(version_a, version_b)).astype({"F1 before": float, "F1 after": float})
    delta["change"] = delta["F1 after"] - delta["F1 before"]
    st.dataframe(
        delta,
        hide_index=True,
        key="models_compare_labels",
        placeholder=MISSING,
        column_config={
            column: st.column_config.NumberColumn(
                "change (points)" if column == "change" else f"{column} %",
                format="%+.1f" if column == "change" else "%.1f",
            )
            for column in ("F1 before", "F1 after", "change")
        },
    )
    comparison = compare_versions(sessions, version_a, version_b, active)
    kind, text = comparison_note(comparison)
    (st.info if kind == "info" else st.caption)(text)
    if comparison.changed:
        st.dataframe(pd.DataFrame(comparison.changed), hide_index=True, key="models_compare_pairs")
    for version_id in comparison.missing:
        if st.button(f"Score val with {version_id}", key=f"models_score_{version_id}"):
            job = enqueue(sessions, "score", require_reviewer(), {"model_version": version_id})
            st.success(f"Queued job {job}: {version_id} scores the queue, val first (see Jobs).")


def retrain_panel(sessions: sessionmaker, sources: dict[str, str], base: str) -> None:
    """Queue a retraining of `base` on a dataset's curated labels (admins only)."""
    st.subheader("Retrain on the curated labels")
    st.caption(
        "Queues a job that fine-tunes the chosen version on its dataset's train split with the reviewers' "
        "corrections applied and rejected pairs dropped (app.services.retrain), measures before and after on the "
        "same val records, registers the result and activates it only if its val micro-F1 beats the active "
        "model's."
    )
    if not sources:
        st.info(
            "Retraining needs a dataset imported from an MNRE-layout folder that is still on this machine."
        )
        return
    c1, c2, c3, c4 = st.columns(4)
    dataset = c1.selectbox("Dataset", list(sources), key="models_dataset")
    epochs = c2.number_input("Epochs", 1, 20, 1, key="models_epochs")
    limit_train = c3.number_input(
        "Train records (0 = all)", 0, 100_000, 0, step=500, key="models_limit_train"
    )
    limit_val = c4.number_input("Val records (0 = all)", 0, 10_000, 0, step=100, key="models_limit_val")
    if not st.button("Retrain from curated labels", type="primary", key="models_retrain"):
        return
    who = require_reviewer()
    if (admin := refuse_unless_admin("start a retraining")) is None:
        return
    params = {
        "base": base,
        "data": sources[dataset],
        "dataset": dataset,
        "epochs": int(epochs),
        "limit_train": int(limit_train) or None,
        "limit_val": int(limit_val) or None,
    }
    job = enqueue(sessions, "retrain", who, params, actor=admin)
    st.success(
        f"Queued job {job}: retraining {base} on the curated {plain(dataset)} labels. Follow it on Jobs."
    )
