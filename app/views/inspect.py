"""Inspect one pair through any registered model version (the active one by default): the model's distribution
(the gold label marked as on Review), IFAformer's token-object attention next to MEGA's scene graph and alignment,
Captum token attributions and the visual heat map with their faithfulness, and the image reliance test.

The prediction and the attention (~0.1 s) are drawn first; MEGA's panel next. The expensive panels are drawn from
the label store when their result is stored (the worker precomputes the top of the queue for each activated model;
a result computed here is stored too); otherwise they run as background jobs (app.ui.explanation_panels) and fill in on
their own, each with its own progress bar. A panel polls its job through a fragment with run_every only while the
job runs (app.ui.inspect_panels), and opening another pair drops the queued jobs of the previous one.
"""

from __future__ import annotations

import streamlit as st

from app.services.errors import LabelStoreError
from app.services.plausibility import post_rationale
from app.services.store import pair_view, registered_versions, review_state
from app.ui.explanation_panels import cancel_other_pairs, post_inputs, prediction
from app.ui.inspect_panels import (
    InspectTarget,
    attention_panel,
    expensive_panels,
    mega_panel,
    prediction_line,
    start_expensive,
    version_choice,
)
from app.ui.model_status import weak_model_warning
from app.ui.render import highlighted_text, plain
from app.ui.resources import get_sessions, store_url
from app.ui.state import review_session
from explain import figures

st.title("Inspect")
weak_model_warning()  # app.services.model_status: no model, or one too weak to trust
sessions, url = get_sessions(), store_url()
versions = registered_versions(sessions)  # plain data (db.model_versions.ModelVersionInfo)
if not versions:
    st.info("No model is registered yet, so there is nothing to explain (see the **Models** page).")
    st.stop()
active_id = next((name for name, version in versions.items() if version.active), None)

c_pair, c_version = st.columns([1, 2])
pair_id = int(
    c_pair.number_input(
        "Pair id", min_value=1, value=review_session().pair_id or 1, step=1, key="inspect_pair"
    )
)
# any registered version, the active one first: a text model may pre-annotate while an image model explains
names = list(versions)
chosen = c_version.selectbox(
    "Look through model version",
    names,
    index=names.index(active_id) if active_id else 0,
    format_func=lambda name: version_choice(name, versions[name], active_id),
    key="inspect_version",
)
version = versions[chosen]  # the version every panel explains (caches and stored results keyed by its id)
try:
    view = pair_view(sessions, pair_id)
except LabelStoreError as err:
    st.error(str(err))
    st.stop()
cancel_other_pairs(pair_id)  # the previous pair's queued work must not hold this one up
st.markdown(highlighted_text(view.tokens, view.head[:2], view.tail[:2]), unsafe_allow_html=True)
fixed, _ = review_state(sessions, pair_id)
if fixed.spans_fixed:
    # Review shows the spans in effect; the model (and so every panel here) reads the pair's own, as it was scored
    st.caption(
        f"A decision on Review fixed this pair's entities to {plain(fixed.head[2])} -> {plain(fixed.tail[2])}; "
        f"the model reads the pair's own, marked above ({plain(view.head[2])} -> {plain(view.tail[2])}), so these "
        "explanations are of the original pair. Training on the curated labels uses the fixed spans."
    )
try:
    inputs = post_inputs(url, pair_id, version)
except (OSError, ValueError) as err:
    st.error(f"The model {version.version_id} cannot read this post: {err}")
    st.stop()
# plausibility is scored against the reviewer's current rationale, else the dataset's own evidence
target = InspectTarget(url, pair_id, version, view, inputs, post_rationale(sessions, pair_id))
pred = prediction(url, pair_id, version)
st.markdown(prediction_line(target, pred, active_id))
# the chart Review draws: the gold label in the same colour, outlined and hatched, named in the legend
st.plotly_chart(
    figures.probability_figure(pred, 10, gold=view.gold_label),
    key="inspect_probs",
    config={"displayModeBar": False},
)

left, right = st.columns(2)
with left:
    attention_panel(target)
start_expensive(target)  # the jobs of results not stored run while the rest of the page is built
expensive_panels(target)
# MEGA's column (beside the attention) is filled last: its scene graph may need the grounder on this post's image,
# and stored results below it should not wait for that
with right:
    mega_panel(target)
