"""Models: queue the first model or the default recipe of any variant (text_only, vanilla, objects, MEGA; the
data's by default), every registered version with its val figures and how it was trained, which one the queue
uses, a comparison of two versions on val, and retraining from the curated labels (all trainings are jobs: the page
never trains)."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sqlalchemy.exc import OperationalError

from app.jobs import enqueue
from app.services.errors import LabelStoreError
from app.services.model_catalog import (
    ModelVersionInfo,
    compare_versions,
    label_f1_rows,
    models_overview,
    percent,
    val,
)
from app.services.model_jobs import (
    TRAINING_NAMES,
    VARIANTS,
    activate,
    default_recipe,
    queue_training,
    training_config_file,
)
from app.services.model_status import weakness
from app.ui.auth import current_actor, refuse_unless_admin
from app.ui.identity import require_reviewer
from app.ui.render import plain
from app.ui.resources import get_sessions


def training_panel(sessions, sources: dict[str, str], pending: dict[str, object]) -> None:
    """Queue the first model (one epoch) or the full recipe of any variant as a worker job, as `make app` does
    (app.services.model_jobs); the variant starts at the data's (objects when most posts have an image, else text_only)."""
    st.subheader("Train a model")
    if not actor.is_admin:
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
    with sessions() as session:
        recipe = default_recipe(session, dataset)
    variants = list(VARIANTS)
    variant = c2.selectbox(
        "Variant",
        variants,
        index=variants.index(recipe.variant),
        format_func=lambda name: f"{name} (the data's default)" if name == recipe.variant else name,
        key="models_train_variant",
    )
    st.caption(
        f"The default for {plain(dataset)} is **{recipe.variant}**: {recipe.why} (the paper's objects model when "
        "more than half have one, else text_only). vanilla reads the global image, objects also up to 3 object "
        "crops, mega aligns the words with a scene graph of them."
    )
    columns = st.columns(len(TRAINING_NAMES))
    for column, (kind, name) in zip(columns, TRAINING_NAMES.items(), strict=True):
        with column:
            job = pending.get(kind)
            config = training_config_file(kind, dataset)
            st.caption(
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
                st.success(
                    f"Queued job {job_id}: {name} ({variant}) on {plain(dataset)}. It is registered when it "
                    "ends and made active only if its val micro-F1 beats the active model's. Follow it on the "
                    "Jobs page."
                )


st.title("Models")
actor = current_actor()
if not actor.is_admin:
    st.info(f"{actor.identity} is a reviewer here: activating a version and retraining are for admins.")
sessions = get_sessions()
overview = models_overview(sessions)  # plain data (db.model_versions.ModelVersionInfo, job views)
versions, pending_trainings, sources = overview.versions, overview.pending, overview.sources
if not versions:
    st.info(
        "No model is registered yet. `make app` queues the first model as a job (see the Jobs page), and the "
        "buttons below queue it here; `python -m db register-model runs/<name>/best` registers a checkpoint "
        "trained elsewhere."
    )
    training_panel(sessions, sources, pending_trainings)
    st.stop()

if flash := st.session_state.pop("models_flash", None):
    st.success(flash)
by_name = {version.version_id: version for version in versions}
active = overview.active
if active is None:
    st.warning("No version is active: the queue shows no predictions until one is.")
elif (why := weakness(active)) is not None:
    st.warning(
        f"The active model **{active.version_id}** is weak ({why}): its suggestions and explanations are mostly "
        "noise."
    )


def job_text(version: ModelVersionInfo) -> str:
    origin = version.origin
    if origin.job is None:
        return ""
    return (
        f"job {origin.job} ({origin.kind}, {origin.started_by})" if origin.started_by else f"job {origin.job}"
    )


table = pd.DataFrame(
    [
        {
            "version": version.version_id,
            "active": version.active,
            "variant": version.variant,
            "architecture": version.architecture or "?",
            # stored from config.json at registration: no checkpoint file is read per row
            "text encoder": version.text_encoder or "?",
            "val F1": percent(val(version).f1),
            "val P": percent(val(version).precision),
            "val R": percent(val(version).recall),
            "val records": val(version).records,
            "training data": version.origin.describe_data(),
            "job": job_text(version),
            "created by": version.created_by,
            "created": version.created_at.strftime("%Y-%m-%d %H:%M") if version.created_at else "",
        }
        for version in versions
    ]
)
st.dataframe(
    table,
    hide_index=True,
    key="models_table",
    column_config={
        column: st.column_config.NumberColumn(format="%.2f") for column in ("val F1", "val P", "val R")
    },
)

names = list(by_name)
c1, c2 = st.columns([3, 1])
chosen = c1.selectbox(
    "Version", names, index=names.index(active.version_id) if active else 0, key="models_pick"
)
if c2.button("Make active", key="models_activate", disabled=bool(active and chosen == active.version_id)):
    try:
        # admins only: a reviewer gets the store's PermissionDeniedError (a LabelStoreError) shown below; the one
        # activation path, which also queues the re-scoring and the explanation precompute
        job = activate(sessions, chosen, require_reviewer(), actor=actor)["score_job"]
    except (LabelStoreError, OperationalError) as err:
        st.error(f"Could not activate {chosen}: {err}")
    else:
        # shown after the rerun that redraws the table with the new active version (a message before st.rerun
        # is never seen)
        st.session_state["models_flash"] = (
            f"{chosen} is now the active model; job {job} stores its predictions for the queue, then Inspect's "
            "explanations for its top (see Jobs)."
        )
        st.rerun()

picked = by_name[chosen]
with st.expander(f"{chosen}: per-label val F1 and training settings", expanded=False):
    per_label = val(picked).per_label
    if per_label:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "label": name,
                        "P": percent(label_metrics.precision),
                        "R": percent(label_metrics.recall),
                        "F1": percent(label_metrics.f1),
                        "support": label_metrics.support,
                    }
                    for name, label_metrics in per_label.items()
                ]
            ),
            hide_index=True,
            key="models_per_label",
            column_config={
                column: st.column_config.NumberColumn(format="%.1f") for column in ("P", "R", "F1")
            },
        )
    else:
        st.caption("No per-label figures were stored with this version.")
    st.json({"path": picked.folder, "settings": dict(picked.settings)}, expanded=False)

training_panel(sessions, sources, pending_trainings)

st.subheader("Compare two versions on val")
if len(names) < 2:
    st.caption("Only one version is registered.")
else:
    c3, c4 = st.columns(2)
    first = c3.selectbox("Before", names, index=min(1, len(names) - 1), key="models_compare_a")
    second = c4.selectbox("After", names, index=0, key="models_compare_b")
    version_a, version_b = by_name[first], by_name[second]
    delta = pd.DataFrame(label_f1_rows(version_a, version_b))
    delta = delta.astype({"F1 before": float, "F1 after": float})
    delta["change"] = delta["F1 after"] - delta["F1 before"]
    st.dataframe(
        delta,
        hide_index=True,
        key="models_compare_labels",
        column_config={
            column: st.column_config.NumberColumn(format="%+.1f" if column == "change" else "%.1f")
            for column in ("F1 before", "F1 after", "change")
        },
    )
    comparison = compare_versions(sessions, version_a, version_b, active)
    both, changed, missing, scoring = (
        comparison.both,
        comparison.changed,
        comparison.missing,
        comparison.scoring,
    )
    if missing:
        # no pair to compare yet: "changed on 0" would read as "the two agree"
        st.info(
            f"{' and '.join(missing)} {'has' if len(missing) == 1 else 'have'} not scored val yet (a scoring job "
            "may still be running: see Jobs), so the predictions cannot be compared yet."
        )
    elif scoring:
        st.info(
            f"{' and '.join(scoring)} {'is' if len(scoring) == 1 else 'are'} still scoring (see Jobs): so far "
            f"{both} val pairs are scored by both and the prediction changed on {len(changed)}; the comparison is "
            "complete when the scoring ends."
        )
    else:
        st.caption(f"{both} val pairs scored by both; the prediction changed on {len(changed)}.")
    if changed:
        st.dataframe(pd.DataFrame(changed), hide_index=True, key="models_compare_pairs")
    for version_id in missing:
        if st.button(f"Score val with {version_id}", key=f"models_score_{version_id}"):
            job = enqueue(sessions, "score", require_reviewer(), {"model_version": version_id})
            st.success(f"Queued job {job}: {version_id} scores the queue, val first (see Jobs).")

st.subheader("Retrain on the curated labels")
st.caption(
    "Queues a job that fine-tunes the chosen version on its dataset's train split with the reviewers' "
    "corrections applied and rejected pairs dropped (app.services.retrain), measures before and after on the same val "
    "records, registers the result and activates it only if its val micro-F1 beats the active model's."
)
if not sources:
    st.info("Retraining needs a dataset imported from an MNRE-layout folder that is still on this machine.")
    st.stop()
c5, c6, c7, c8 = st.columns(4)
dataset = c5.selectbox("Dataset", list(sources), key="models_dataset")
epochs = c6.number_input("Epochs", 1, 20, 1, key="models_epochs")
limit_train = c7.number_input("Train records (0 = all)", 0, 100_000, 0, step=500, key="models_limit_train")
limit_val = c8.number_input("Val records (0 = all)", 0, 10_000, 0, step=100, key="models_limit_val")
if st.button("Retrain from curated labels", type="primary", key="models_retrain"):
    who = require_reviewer()
    if (admin := refuse_unless_admin("start a retraining")) is None:
        st.stop()
    job = enqueue(
        sessions,
        "retrain",
        who,
        {
            "base": chosen,
            "data": sources[dataset],
            "dataset": dataset,
            "epochs": int(epochs),
            "limit_train": int(limit_train) or None,
            "limit_val": int(limit_val) or None,
        },
        actor=admin,
    )
    st.success(f"Queued job {job}: retraining {chosen} on the curated {dataset} labels. Follow it on Jobs.")
