"""Models: the registered versions, which one the queue uses, and retraining on the curated labels."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import streamlit as st
from sqlalchemy.exc import OperationalError

from app.auth import current_actor, refuse_unless_admin
from app.identity import require_reviewer
from app.paths import feature_cache_dir, runs_dir
from app.resources import get_sessions
from app.retrain import retrain
from app.store import model_versions
from db.queries import LabelStoreError, list_datasets, set_active
from model.data import DataFormatError

st.title("Models")
if not current_actor().is_admin:
    st.info(
        f"{current_actor().identity} is a reviewer here: activating a version and retraining are for admins."
    )
sessions = get_sessions()
with sessions() as session:
    versions = model_versions(session)
    datasets = {d.name: d.source_path for d in list_datasets(session)}
if not versions:
    st.info(
        "No model is registered yet. Run `python -m app.prepare` (it registers runs/*/best or trains a "
        "quick-start model), or `python -m db register-model runs/<name>/best`."
    )
    st.stop()

active = next((v for v in versions if v["active"]), None)
if active is None:
    st.warning("No version is active: the queue shows no predictions until one is.")
elif active["quick-start"]:
    st.warning(
        f"The active model **{active['version']}** is a **quick-start** model (1 epoch on a few thousand "
        "records, trained by `app.prepare`): use it to try the app, not to judge the method."
    )
table = pd.DataFrame(versions)
table["version"] = [
    f"{v} (quick-start)" if q else v for v, q in zip(table["version"], table["quick-start"], strict=True)
]
st.dataframe(
    table.drop(columns=["quick-start"]),
    hide_index=True,
    key="models_table",
    column_config={"val F1": st.column_config.NumberColumn(format="%.2f")},
)

names = [v["version"] for v in versions]
c1, c2 = st.columns([3, 1])
chosen = c1.selectbox(
    "Version", names, index=names.index(active["version"]) if active else 0, key="models_pick"
)
if c2.button("Make active", key="models_activate", disabled=bool(active and chosen == active["version"])):
    try:
        with sessions.begin() as session:
            # admins only: a reviewer gets the store's PermissionDeniedError (a LabelStoreError) shown below
            set_active(session, chosen, actor=current_actor())
    except (LabelStoreError, OperationalError) as err:
        st.error(f"Could not activate {chosen}: {err}")
    else:
        st.success(
            f"{chosen} is now active; the queue shows its predictions (run `python -m app.prepare` "
            "to score the pairs it has not seen)."
        )
        st.rerun()

st.subheader("Retrain on the curated labels")
st.caption(
    "Fine-tunes the chosen version on its dataset's train split with the reviewers' corrections applied "
    "and rejected pairs dropped (app.retrain), evaluates before and after on val, and registers the result."
)
sources = {
    name: path for name, path in datasets.items() if path and (Path(path) / "ours_rel2id.json").is_file()
}
if not sources:
    st.info("Retraining needs a dataset imported from an MNRE-layout folder that is still on this machine.")
    st.stop()
c3, c4, c5, c6 = st.columns(4)
dataset = c3.selectbox("Dataset", list(sources), key="models_dataset")
epochs = c4.number_input("Epochs", 1, 20, 1, key="models_epochs")
limit_train = c5.number_input("Train records (0 = all)", 0, 100_000, 2000, step=500, key="models_limit_train")
limit_val = c6.number_input("Val records (0 = all)", 0, 10_000, 500, step=100, key="models_limit_val")
activate = st.checkbox("Make the new version active", value=True, key="models_activate_new")
if st.button("Retrain", type="primary", key="models_retrain"):
    who = require_reviewer()
    if (admin := refuse_unless_admin("start a retraining")) is None:
        st.stop()
    bar = st.progress(0.0, text="preparing ...")
    with st.status("Retraining ...", expanded=True) as status:
        try:
            result = retrain(
                sessions,
                chosen,
                sources[dataset],
                dataset,
                int(epochs),
                runs_dir() / f"retrain-{time.strftime('%Y%m%d-%H%M%S')}",
                activate=activate,
                created_by=who,
                actor=admin,
                log=status.write,
                progress_callback=lambda f, msg: bar.progress(min(f, 1.0), text=msg),
                limit_train=int(limit_train) or None,
                limit_val=int(limit_val) or None,
                feature_cache=str(feature_cache_dir()),
                device="cpu",
                progress=False,
            )
        except (LabelStoreError, DataFormatError, OSError) as err:
            status.update(label="Retraining failed", state="error")
            st.error(f"Retraining failed: {err}")
            st.stop()
        status.update(label=f"Registered {result.new_version}", state="complete")
    bar.progress(1.0, text="done")
    st.code(result.table())
