"""Models: queue the first model or the default recipe of any variant (text_only, vanilla, objects, MEGA; the
data's by default), every registered version with its val figures and how it was trained, which one the queue
uses, a comparison of two versions on val, and retraining from the curated labels (all trainings are jobs: the page
never trains; the panels are app.ui.model_panels)."""

from __future__ import annotations

import streamlit as st
from sqlalchemy.exc import OperationalError

from app.services.errors import LabelStoreError
from app.services.model_catalog import models_overview
from app.services.model_jobs import activate
from app.services.model_status import weakness
from app.ui.auth import current_actor
from app.ui.identity import require_reviewer
from app.ui.model_panels import (
    compare_panel,
    retrain_panel,
    training_panel,
    version_details,
    versions_table,
)
from app.ui.resources import get_sessions

st.title("Models")
actor = current_actor()
if not actor.is_admin:
    st.info(f"{actor.identity} is a reviewer here: activating a version and retraining are for admins.")
sessions = get_sessions()
overview = models_overview(sessions)  # plain data (db.model_versions.ModelVersionInfo, job views)
versions, active = overview.versions, overview.active
if not versions:
    st.info(
        "No model is registered yet. `make app` queues the first model as a job (see the Jobs page), and the "
        "buttons below queue it here; `python -m db register-model runs/<name>/best` registers a checkpoint "
        "trained elsewhere."
    )
    training_panel(sessions, overview.sources, overview.pending)
    st.stop()

if flash := st.session_state.pop("models_flash", None):
    st.success(flash)
if active is None:
    st.warning("No version is active: the queue shows no predictions until one is.")
elif (why := weakness(active)) is not None:
    st.warning(
        f"The active model **{active.version_id}** is weak ({why}): its suggestions and explanations are mostly "
        "noise."
    )
versions_table(versions)

by_name = {version.version_id: version for version in versions}
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

version_details(sessions, by_name[chosen])
training_panel(sessions, overview.sources, overview.pending)
compare_panel(sessions, by_name, active)
retrain_panel(sessions, overview.sources, chosen)
