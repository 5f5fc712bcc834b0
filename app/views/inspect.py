"""Inspect one pair side by side: IFAformer's token-object attention next to MEGA's scene graph and alignment,
Captum token attributions and the visual heat map with their faithfulness, and the image reliance test.

Each panel is a fragment: moving a slider reruns that panel only, from cached per-post results.
"""

from __future__ import annotations

import streamlit as st

from app.explanations import (
    attention,
    explain_module,
    faithfulness_numbers,
    post_inputs,
    prediction,
    reliance,
    scene_graph,
    store_summary,
    token_attribution,
    token_faithfulness,
    visual_attribution,
    visual_faithfulness,
)
from app.render import highlighted_text
from app.resources import get_sessions
from app.state import review_session
from app.store import load_pair_view
from db.base import database_url
from db.queries import LabelStoreError, active_model_version

st.title("Inspect")
sessions, url = get_sessions(), database_url()
with sessions() as session:
    active = active_model_version(session)
if active is None:
    st.info("No model is active yet, so there is nothing to explain (see the **Models** page).")
    st.stop()
if explain_module("explain") is None:
    st.stop()
figures = explain_module("explain.figures")

default = review_session().pair_id or 1
pair_id = int(st.number_input("Pair id", min_value=1, value=default, step=1, key="inspect_pair"))
try:
    with sessions() as session:
        view = load_pair_view(session, pair_id)
except LabelStoreError as err:
    st.error(str(err))
    st.stop()
path = active.path
st.markdown(highlighted_text(view.tokens, view.head[:2], view.tail[:2]), unsafe_allow_html=True)
try:
    inputs = post_inputs(url, pair_id, path)
except (OSError, ValueError) as err:
    st.error(f"The model {active.version_id} cannot read this post: {err}")
    st.stop()
pred = prediction(url, pair_id, path)
st.markdown(
    f"**{active.version_id}** predicts **{pred.label}** ({pred.probabilities[pred.label]:.1%}, "
    f"margin {pred.margin:.3f}, entropy {pred.entropy:.2f}) · gold `{view.gold_label}`"
    f"{'' if inputs.has_image else ' · the model reads no image for this post'}"
)


@st.fragment
def attention_panel() -> None:
    st.subheader("IFAformer: token-object attention")
    maps = attention(url, pair_id, path)
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
    if figures is not None:
        st.plotly_chart(
            figures.attention_heatmap(maps, layer=layer, head=head, rollout=rollout),
            key="inspect_attention_chart",
        )


@st.fragment
def mega_panel() -> None:
    st.subheader("MEGA: scene graph and alignment")
    graph, alignment, image = scene_graph(url, pair_id)
    if not graph.nodes:
        st.info("No objects: the post has no image here and no stored boxes.")
        return
    from explain.scene_graph_figures import alignment_matrix_figure, scene_graph_figure

    st.plotly_chart(scene_graph_figure(image, graph), key="inspect_scene_graph")
    if alignment is not None:
        st.plotly_chart(alignment_matrix_figure(alignment), key="inspect_alignment")


left, right = st.columns(2)
with left:
    attention_panel()
with right:
    mega_panel()


@st.fragment
def attribution_panel() -> None:
    st.subheader("Captum attributions and faithfulness")
    c1, c2, c3 = st.columns(3)
    baseline = c1.selectbox("Token baseline", ["pad", "mask"], key="inspect_baseline")
    n_steps = c2.select_slider("IG steps", [8, 16, 32, 64], value=16, key="inspect_steps")
    method = c3.selectbox("Visual method", ["occlusion", "integrated_gradients"], key="inspect_visual_method")
    tokens = token_attribution(url, pair_id, path, baseline, n_steps)
    if figures is not None:
        st.plotly_chart(figures.token_attribution_figure(tokens), key="inspect_token_chart")
    st.caption(f"{tokens.method} for p({tokens.target_label}); convergence delta {tokens.delta:+.4f}")
    faithfulness_numbers(token_faithfulness(url, pair_id, path, baseline, n_steps), "Tokens")
    visual = visual_attribution(url, pair_id, path, method, n_steps)
    if visual is None:
        st.info("No visual attribution: the model reads no image for this post.")
    else:
        graph, _, image = scene_graph(url, pair_id)
        if figures is not None and image is not None:
            st.plotly_chart(figures.visual_heatmap_figure(image, visual), key="inspect_visual_chart")
        faithfulness_numbers(visual_faithfulness(url, pair_id, path, method, n_steps), "Image")
    store_summary(
        pair_id,
        "inspect:token_attribution",
        {
            "model_version": tokens.model_version,
            "target_label": tokens.target_label,
            "delta": tokens.delta,
            "top_tokens": sorted(
                zip(tokens.tokens, map(float, tokens.scores), strict=True), key=lambda kv: -kv[1]
            )[:5],
        },
        {"baseline": baseline, "n_steps": n_steps},
        active.version_id,
    )


@st.fragment
def reliance_panel() -> None:
    st.subheader("Image reliance")
    c1, c2 = st.columns(2)
    k = c1.slider("Swapped images", 1, 10, 5, key="inspect_k")
    seed = int(c2.number_input("Seed", 0, 10_000, 0, key="inspect_seed"))
    result = reliance(url, pair_id, path, k, seed)
    if result.reason:
        st.info(f"Reliance is 0 by definition here: {result.reason}.")
    st.metric(
        "Reliance score",
        f"{result.score:.3f}",
        help="How much p(predicted label) depends on this post's own image (0 = not at all).",
    )
    st.caption(
        f"p({result.predicted_label}) with the image {result.p_original:.3f}, without it "
        f"{result.p_no_image:.3f} ({result.no_image_prediction}); {result.flip_rate:.0%} of swaps change the "
        f"label: {', '.join(result.swapped_predictions) or 'no swap'}"
    )
    if figures is not None:
        st.plotly_chart(figures.reliance_figure(result), key="inspect_reliance_chart")


attribution_panel()
reliance_panel()
