"""Inspect one pair through any registered model version (the active one by default): the model's distribution
(the gold label marked as on Review), IFAformer's token-object attention next to MEGA's scene graph and alignment,
Captum token attributions and the visual heat map with their faithfulness, and the image reliance test.

The prediction and the attention (~0.1 s) are drawn first; MEGA's panel next. The expensive panels are drawn from
the label store when their result is stored (the worker precomputes the top of the queue for each activated model;
a result computed here is stored too); otherwise they run as background jobs (app.ui.explanation_panels) and fill in on
their own, each with its own progress bar. A panel polls its job through a fragment with run_every only while the
job runs, and opening another pair drops the queued jobs of the previous one.
"""

from __future__ import annotations

import streamlit as st

from app.services.errors import LabelStoreError
from app.services.plausibility import (
    attention_plausibility,
    map_plausibility,
    post_rationale,
    token_plausibility,
)
from app.services.store import load_pair_view, registered_versions
from app.services.stored_explanations import DEFAULT_SETTINGS
from app.ui.explanation_panels import (
    attention,
    cancel_other_pairs,
    faithfulness_numbers,
    job_failed,
    job_progress,
    plausibility_numbers,
    post_inputs,
    prediction,
    result_or_job,
    scene_graph,
)
from app.ui.model_status import weak_model_warning
from app.ui.render import highlighted_text, plain
from app.ui.resources import get_sessions, store_url
from app.ui.state import review_session
from explain import figures
from explain.scene_graph_figures import (
    alignment_matrix_figure,
    is_flat,
    objects_provenance,
    scene_graph_figure,
)

POLL_SECONDS = 2.0

st.title("Inspect")
weak_model_warning()  # app.services.model_status: no model, or one too weak to trust
sessions, url = get_sessions(), store_url()
# plain data (db.model_versions.ModelVersionInfo): read after the session closed and on reruns
versions = registered_versions(sessions)
if not versions:
    st.info("No model is registered yet, so there is nothing to explain (see the **Models** page).")
    st.stop()
active_id = next((name for name, version in versions.items() if version.active), None)

default = review_session().pair_id or 1
c_pair, c_version = st.columns([1, 2])
pair_id = int(c_pair.number_input("Pair id", min_value=1, value=default, step=1, key="inspect_pair"))
# any registered version, the active one first: a text model may pre-annotate while an image model explains
names = list(versions)
chosen = c_version.selectbox(
    "Look through model version",
    names,
    index=names.index(active_id) if active_id else 0,
    format_func=lambda name: (
        f"{name} · {versions[name].variant} · active"
        if name == active_id
        else f"{name} · {versions[name].variant}"
    ),
    key="inspect_version",
)
active = versions[
    chosen
]  # the version every panel below explains (caches and stored results keyed by its id)
try:
    with sessions() as session:
        view = load_pair_view(session, pair_id)
except LabelStoreError as err:
    st.error(str(err))
    st.stop()
cancel_other_pairs(pair_id)  # the previous pair's queued work must not hold this one up
# what plausibility is scored against: the reviewer's current rationale, else the dataset's own evidence
rationale = post_rationale(sessions, pair_id)
version = active.version_id
st.markdown(highlighted_text(view.tokens, view.head[:2], view.tail[:2]), unsafe_allow_html=True)
try:
    inputs = post_inputs(url, pair_id, active)
except (OSError, ValueError) as err:
    st.error(f"The model {version} cannot read this post: {err}")
    st.stop()
pred = prediction(url, pair_id, active)
gold = f"gold {view.gold_label}" if view.gold_label is not None else "no gold label"
st.markdown(
    f"**{version}** predicts **{plain(pred.label)}** ({pred.probabilities[pred.label]:.1%}, "
    f"margin {pred.margin:.3f}, entropy {pred.entropy:.2f}) · {plain(gold)}"
    f"{'' if inputs.has_image else ' · the model reads no image for this post'}"
    f"{'' if active.active else ' · not the active model (the queue uses ' + (active_id or 'none') + ')'}"
)
# the chart Review draws: the gold label in the same colour, outlined and hatched, named in the legend
st.plotly_chart(
    figures.probability_figure(pred, 10, gold=view.gold_label),
    key="inspect_probs",
    config={"displayModeBar": False},
)


@st.fragment
def attention_panel() -> None:
    st.subheader("IFAformer: token-object attention")
    maps = attention(url, pair_id, active)
    if not maps.layers:
        st.info("No text-to-image attention: this model or post has no visual tokens.")
        return
    c1, c2, c3 = st.columns(3)
    rollout = c1.toggle("Rollout over layers", key="inspect_rollout")
    layer = c2.selectbox(
        "Layer",
        [None, *maps.layers],
        format_func=lambda x: "mean" if x is None else str(x),
        key="inspect_layer",
        disabled=rollout,
    )
    heads = list(range(maps.text_to_visual.shape[1]))
    head = c3.selectbox(
        "Head",
        [None, *heads],
        format_func=lambda x: "mean" if x is None else str(x),
        key="inspect_head",
        disabled=rollout,
    )
    index = None if layer is None else maps.layers.index(layer)
    st.plotly_chart(
        figures.attention_heatmap(maps, layer=index, head=head, rollout=rollout),
        key="inspect_attention_chart",
    )
    if rationale is not None and rationale.box is not None:
        plausibility_numbers(
            attention_plausibility(maps, inputs, layer, head, rollout, rationale), rationale, "Attention"
        )


@st.fragment
def mega_panel() -> None:
    st.subheader("MEGA: scene graph and alignment")
    try:
        graph, alignment, image = scene_graph(url, pair_id)
    except (OSError, ValueError) as err:
        st.warning(f"No scene graph: {err}")
        return
    if not graph.nodes:
        st.info("No objects: the post has no image here and no stored boxes.")
        return
    st.caption(objects_provenance([n.source for n in graph.nodes]))
    st.plotly_chart(scene_graph_figure(image, graph), key="inspect_scene_graph")
    if alignment is not None:
        st.plotly_chart(alignment_matrix_figure(alignment), key="inspect_alignment")
        if is_flat(alignment.structural):
            st.caption(
                "The structural alignment has nothing to show for this post: graph matching sees objects only "
                "through the scene graph's contact edges (inside, contains, overlaps, near), and here every "
                "object sits alike in that graph, so each token spreads its weight evenly over them. The "
                "combined alignment is then the semantic one, shifted."
            )


# Expensive panels. Their settings live in session_state (widget keys), read here before each fragment is drawn
# so the page knows whether that panel's job is still running, and polls only then. The defaults are the settings
# the worker precomputes with.
TOKEN_SETTINGS = {
    "baseline": ("inspect_baseline", DEFAULT_SETTINGS["tokens"]["baseline"]),
    "n_steps": ("inspect_steps", DEFAULT_SETTINGS["tokens"]["n_steps"]),
}
VISUAL_SETTINGS = {
    "method": ("inspect_visual_method", DEFAULT_SETTINGS["visual"]["method"]),
    "n_steps": ("inspect_steps", DEFAULT_SETTINGS["visual"]["n_steps"]),
}
RELIANCE_SETTINGS = {
    "k": ("inspect_k", DEFAULT_SETTINGS["reliance"]["k"]),
    "seed": ("inspect_seed", DEFAULT_SETTINGS["reliance"]["seed"]),
}
EXPENSIVE = [("tokens", TOKEN_SETTINGS), ("visual", VISUAL_SETTINGS), ("reliance", RELIANCE_SETTINGS)]


def settings_of(spec: dict) -> dict:
    return {name: st.session_state.get(key, value) for name, (key, value) in spec.items()}


def panel_result(kind: str, spec: dict):
    """(result, job): the stored result (job None), else its background job and, once done, its result."""
    return result_or_job(kind, url, pair_id, active, settings_of(spec))


left, right = st.columns(2)
with left:
    attention_panel()
# the background jobs of results not stored start now, so they run while the rest of the page is built
for kind, spec in EXPENSIVE:
    panel_result(kind, spec)


def polled(panel, kinds: list[tuple[str, dict]]) -> None:
    """Draw `panel` as a fragment that reruns every POLL_SECONDS while one of its jobs runs, and not after."""
    running = False
    for kind, spec in kinds:
        _result, job = panel_result(kind, spec)
        running = running or (job is not None and not job.done)
    st.fragment(run_every=POLL_SECONDS if running else None)(panel)(running)


def finish_polling(polling: bool) -> None:
    """A polling fragment whose jobs are all done reruns the page once, which draws it without a timer."""
    if polling:
        st.rerun()


def wants_polling(polling: bool) -> None:
    """A settings change inside a still fragment started a job: rerun the page so the fragment polls it."""
    if not polling:
        st.rerun()


def stored_caption(job) -> None:
    """Where the drawn result came from: the label store (computed before: by the worker's precompute or an
    earlier visit), or this page's own job just now (and stored for the next visit)."""
    if job is None:
        st.caption("Read from the label store: computed before for this model version and these settings.")
    else:
        st.caption(
            f"Computed here in {job.elapsed():.1f} s for this model version and these settings; kept in the label "
            "store for the next visit."
        )


def tokens_panel(polling: bool) -> None:
    result, job = panel_result("tokens", TOKEN_SETTINGS)
    if result is None:
        if not job.done:
            job_progress(job, "LayerIntegratedGradients over the tokens")
            wants_polling(polling)
            return
        job_failed(job, "Token attribution")
    else:
        attribution, faith = result
        st.plotly_chart(figures.token_attribution_figure(attribution), key="inspect_token_chart")
        st.caption(
            f"{attribution.method} for p({attribution.target_label}); convergence delta {attribution.delta:+.4f}"
        )
        left_col, right_col = st.columns(2)
        with left_col:
            faithfulness_numbers(faith, "Tokens")
        with right_col:
            plausibility_numbers(
                token_plausibility(
                    attribution.scores,
                    inputs.word_index,
                    len(view.tokens),
                    [view.head[:2], view.tail[:2]],
                    rationale,
                ),
                rationale,
                "Tokens",
            )
        stored_caption(job)
    finish_polling(polling)


def visual_panel(polling: bool) -> None:
    settings = settings_of(VISUAL_SETTINGS)
    result, job = panel_result("visual", VISUAL_SETTINGS)
    if result is None:
        if not job.done:
            job_progress(job, f"Visual {settings['method'].replace('_', ' ')} over regions and crops")
            wants_polling(polling)
            return
        job_failed(job, "Visual attribution")
    else:
        visual, faith = result
        if visual is None:
            st.info("No visual attribution: the model reads no image for this post.")
        else:
            try:
                image = scene_graph(url, pair_id)[2]
            except (OSError, ValueError):
                image = None
            st.plotly_chart(figures.visual_heatmap_figure(image, visual), key="inspect_visual_chart")
            left_col, right_col = st.columns(2)
            with left_col:
                faithfulness_numbers(faith, "Image")
            with right_col:
                size = rationale.image_size if rationale is not None else None
                plausibility_numbers(
                    map_plausibility(visual.heatmap(size), rationale) if size else None, rationale, "Image"
                )
            stored_caption(job)
    finish_polling(polling)


def reliance_panel(polling: bool) -> None:
    st.subheader("Image reliance")
    c1, c2 = st.columns(2)
    k = c1.slider("Swapped images", 1, 10, RELIANCE_SETTINGS["k"][1], key="inspect_k")
    c2.number_input("Seed", 0, 10_000, RELIANCE_SETTINGS["seed"][1], key="inspect_seed")
    result, job = panel_result("reliance", RELIANCE_SETTINGS)
    if result is None:
        if not job.done:
            job_progress(job, f"Swapping in {k} other posts' images")
            wants_polling(polling)
            return
        job_failed(job, "Image reliance")
    else:
        if result.reason:
            st.info(f"Reliance is 0 by definition here: {result.reason}.")
        st.metric(
            "Reliance score",
            f"{result.score:.3f}",
            help="How much p(predicted label) depends on this post's own image (0 = not at all).",
        )
        st.caption(
            f"p({result.predicted_label}) with the image {result.p_original:.3f}, without it "
            f"{result.p_no_image:.3f} ({result.no_image_prediction}); {result.flip_rate:.0%} of swaps change "
            f"the label: {', '.join(result.swapped_predictions) or 'no swap'}"
        )
        st.plotly_chart(figures.reliance_figure(result), key="inspect_reliance_chart")
        stored_caption(job)
    finish_polling(polling)


# the settings of both attribution panels: a change reruns the page, which starts the new jobs
st.subheader("Captum attributions and faithfulness")
c1, c2, c3 = st.columns(3)
c1.selectbox("Token baseline", ["pad", "mask"], key="inspect_baseline")
c2.select_slider(
    "IG steps", [8, 16, 32, 64], value=DEFAULT_SETTINGS["tokens"]["n_steps"], key="inspect_steps"
)
c3.selectbox("Visual method", ["occlusion", "integrated_gradients"], key="inspect_visual_method")
# one fragment per panel, so a finished chart is not redrawn while its neighbour still polls
polled(tokens_panel, [("tokens", TOKEN_SETTINGS)])
polled(visual_panel, [("visual", VISUAL_SETTINGS)])
polled(reliance_panel, [("reliance", RELIANCE_SETTINGS)])
# MEGA's column (beside the attention) is filled last: its scene graph may need the grounder on this post's image,
# and stored results below it should not wait for that
with right:
    mega_panel()
