"""The Inspect page's panels, each drawn for one pair seen through one model version (an InspectTarget).

Cheap panels (the attention, MEGA's scene graph) are fragments drawn in the page's run. The expensive ones
(token attribution, visual attribution, image reliance) read their result from the label store, else run as a
background job (app.ui.explanation_panels); such a panel is a fragment that polls its job every POLL_SECONDS while it
runs and stops polling once it is done. Their settings live in session_state under the widget keys below, read
before each fragment is drawn so the page knows whether that panel's job is still running; the defaults are the
settings the worker precomputes with (app.services.stored_explanations.DEFAULT_SETTINGS).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from app.services.plausibility import attention_plausibility, map_plausibility, token_plausibility
from app.services.rationales import Rationale
from app.services.store import PairView
from app.services.stored_explanations import DEFAULT_SETTINGS
from app.ui.explanation_panels import (
    attention,
    faithfulness_numbers,
    job_failed,
    job_progress,
    plausibility_numbers,
    result_or_job,
    scene_graph,
)
from app.ui.render import plain
from db.model_versions import ModelVersionInfo
from explain import figures
from explain.scene_graph_figures import (
    alignment_matrix_figure,
    is_flat,
    objects_provenance,
    scene_graph_figure,
)

POLL_SECONDS = 2.0

# setting name -> (widget key, default) per expensive panel
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
EXPENSIVE = {"tokens": TOKEN_SETTINGS, "visual": VISUAL_SETTINGS, "reliance": RELIANCE_SETTINGS}


@dataclass(frozen=True)
class InspectTarget:
    """One pair seen through one model version: what every panel explains."""

    url: str  # the label store's URL (the cache key of the cheap results)
    pair_id: int
    version: ModelVersionInfo
    view: PairView
    inputs: object  # explain.PostInputs of this pair for this version
    rationale: Rationale | None  # what plausibility is scored against (the reviewer's, else the dataset's)


def version_choice(name: str, version: ModelVersionInfo, active_id: str | None) -> str:
    """A version as the version picker lists it: id, variant, and whether the queue uses it."""
    return f"{name} · {version.variant}" + (" · active" if name == active_id else "")


def prediction_line(target: InspectTarget, pred, active_id: str | None) -> str:
    """The headline under the post: the prediction with its probability, margin and entropy, the gold label, and
    what the reader should know about the model (no image read; not the one the queue uses). Markdown, with every
    label escaped."""
    view, version = target.view, target.version
    gold = f"gold {view.gold_label}" if view.gold_label is not None else "no gold label"
    return (
        f"**{version.version_id}** predicts **{plain(pred.label)}** ({pred.probabilities[pred.label]:.1%}, "
        f"margin {pred.margin:.3f}, entropy {pred.entropy:.2f}) · {plain(gold)}"
        + ("" if target.inputs.has_image else " · the model reads no image for this post")
        + ("" if version.active else f" · not the active model (the queue uses {active_id or 'none'})")
    )


def settings_of(kind: str) -> dict:
    return {name: st.session_state.get(key, value) for name, (key, value) in EXPENSIVE[kind].items()}


def panel_result(kind: str, target: InspectTarget):
    """(result, job): the stored result (job None), else its background job and, once done, its result."""
    return result_or_job(kind, target.url, target.pair_id, target.version, settings_of(kind))


def start_expensive(target: InspectTarget) -> None:
    """Start the background jobs of the results not stored, so they run while the rest of the page is built."""
    for kind in EXPENSIVE:
        panel_result(kind, target)


@st.fragment
def attention_panel(target: InspectTarget) -> None:
    st.subheader("IFAformer: token-object attention")
    maps = attention(target.url, target.pair_id, target.version)
    if not maps.layers:
        st.info("No text-to-image attention: this model or post has no visual tokens.")
        return
    c1, c2, c3 = st.columns(3)
    rollout = c1.toggle("Rollout over layers", key="inspect_rollout")
    mean_or = lambda x: "mean" if x is None else str(x)  # noqa: E731
    layer = c2.selectbox(
        "Layer", [None, *maps.layers], format_func=mean_or, key="inspect_layer", disabled=rollout
    )
    heads = list(range(maps.text_to_visual.shape[1]))
    head = c3.selectbox("Head", [None, *heads], format_func=mean_or, key="inspect_head", disabled=rollout)
    index = None if layer is None else maps.layers.index(layer)
    st.plotly_chart(
        figures.attention_heatmap(maps, layer=index, head=head, rollout=rollout),
        key="inspect_attention_chart",
    )
    rationale = target.rationale
    if rationale is not None and rationale.box is not None:
        plausibility_numbers(
            attention_plausibility(maps, target.inputs, layer, head, rollout, rationale),
            rationale,
            "Attention",
        )


FLAT_ALIGNMENT = (
    "The structural alignment has nothing to show for this post: graph matching sees objects only through the "
    "scene graph's contact edges (inside, contains, overlaps, near), and here every object sits alike in that "
    "graph, so each token spreads its weight evenly over them. The combined alignment is then the semantic one, "
    "shifted."
)


@st.fragment
def mega_panel(target: InspectTarget) -> None:
    st.subheader("MEGA: scene graph and alignment")
    try:
        graph, alignment, image = scene_graph(target.url, target.pair_id)
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
            st.caption(FLAT_ALIGNMENT)


def attribution_settings() -> None:
    """The settings of both attribution panels: a change reruns the page, which starts the new jobs."""
    st.subheader("Captum attributions and faithfulness")
    c1, c2, c3 = st.columns(3)
    c1.selectbox("Token baseline", ["pad", "mask"], key="inspect_baseline")
    c2.select_slider(
        "IG steps", [8, 16, 32, 64], value=DEFAULT_SETTINGS["tokens"]["n_steps"], key="inspect_steps"
    )
    c3.selectbox("Visual method", ["occlusion", "integrated_gradients"], key="inspect_visual_method")


def polled(panel: Callable[[InspectTarget, bool], None], kind: str, target: InspectTarget) -> None:
    """Draw `panel` as a fragment that reruns every POLL_SECONDS while its job runs, and not after (one fragment
    per panel, so a finished chart is not redrawn while its neighbour still polls)."""
    _result, job = panel_result(kind, target)
    running = job is not None and not job.done
    st.fragment(run_every=POLL_SECONDS if running else None)(panel)(target, running)


def _finish_polling(polling: bool) -> None:
    """A polling fragment whose job is done reruns the page once, which draws it without a timer."""
    if polling:
        st.rerun()


def _wants_polling(polling: bool) -> None:
    """A settings change inside a still fragment started a job: rerun the page so the fragment polls it."""
    if not polling:
        st.rerun()


def stored_caption(job) -> str:
    """Where the drawn result came from: the label store (computed before: by the worker's precompute or an
    earlier visit), or this page's own job just now (and stored for the next visit)."""
    if job is None:
        return "Read from the label store: computed before for this model version and these settings."
    took = job.elapsed()
    return (
        f"Computed here in {'under 0.1' if took < 0.05 else f'{took:.1f}'} s for this model version and these "
        "settings; kept in the label store for the next visit."
    )


def tokens_panel(target: InspectTarget, polling: bool) -> None:
    result, job = panel_result("tokens", target)
    if result is None:
        if not job.done:
            job_progress(job, "LayerIntegratedGradients over the tokens")
            _wants_polling(polling)
            return
        job_failed(job, "Token attribution")
    else:
        attribution, faith = result
        view = target.view
        st.plotly_chart(figures.token_attribution_figure(attribution), key="inspect_token_chart")
        st.caption(convergence_caption(attribution))
        left, right = st.columns(2)
        with left:
            faithfulness_numbers(faith, "Tokens")
        with right:
            spans = [view.head[:2], view.tail[:2]]
            plausibility = token_plausibility(
                attribution.scores, target.inputs.word_index, len(view.tokens), spans, target.rationale
            )
            plausibility_numbers(plausibility, target.rationale, "Tokens")
        st.caption(stored_caption(job))
    _finish_polling(polling)


def visual_panel(target: InspectTarget, polling: bool) -> None:
    result, job = panel_result("visual", target)
    if result is None:
        if not job.done:
            method = settings_of("visual")["method"].replace("_", " ")
            job_progress(job, f"Visual {method} over regions and crops")
            _wants_polling(polling)
            return
        job_failed(job, "Visual attribution")
    else:
        visual, faith = result
        if visual is None:
            st.info("No visual attribution: the model reads no image for this post.")
        else:
            try:
                image = scene_graph(target.url, target.pair_id)[2]
            except (OSError, ValueError):
                image = None  # the heat map is drawn on the grid without the photo under it
            st.plotly_chart(figures.visual_heatmap_figure(image, visual), key="inspect_visual_chart")
            left, right = st.columns(2)
            with left:
                faithfulness_numbers(faith, "Image")
            with right:
                rationale = target.rationale
                size = rationale.image_size if rationale is not None else None
                plausibility = map_plausibility(visual.heatmap(size), rationale) if size else None
                plausibility_numbers(plausibility, rationale, "Image")
            st.caption(stored_caption(job))
    _finish_polling(polling)


def convergence_caption(attribution) -> str:
    """The attribution method, its target and its convergence delta, written as the chart's title writes it
    ("-3.9e-05"; four decimals read "-0.0000")."""
    return (
        f"{attribution.method} for p({plain(attribution.target_label)}); convergence delta "
        f"{attribution.delta:.1e}"
    )


def reliance_caption(result) -> str:
    """The reliance test's numbers in words: p(label) with and without the image, and what the swaps predicted, or
    that no other post's image could be swapped in (never "0% of swaps" when none was tried). Markdown, every label
    escaped."""
    text = (
        f"p({plain(result.predicted_label)}) with the image {result.p_original:.3f}, without it "
        f"{result.p_no_image:.3f} (then predicting {plain(result.no_image_prediction)}); "
    )
    swapped = result.swapped_predictions
    if not swapped:
        return text + "no other post's image could be swapped in, so no swap was tried"
    labels = ", ".join(plain(label) for label in swapped)
    return text + f"{result.flip_rate:.0%} of {len(swapped)} swaps change the label: {labels}"


def reliance_panel(target: InspectTarget, polling: bool) -> None:
    st.subheader("Image reliance")
    c1, c2 = st.columns(2)
    k = c1.slider("Swapped images", 1, 10, RELIANCE_SETTINGS["k"][1], key="inspect_k")
    c2.number_input("Seed", 0, 10_000, RELIANCE_SETTINGS["seed"][1], key="inspect_seed")
    result, job = panel_result("reliance", target)
    if result is None:
        if not job.done:
            job_progress(job, f"Swapping in {k} other posts' images")
            _wants_polling(polling)
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
        st.caption(reliance_caption(result))
        st.plotly_chart(figures.reliance_figure(result), key="inspect_reliance_chart")
        st.caption(stored_caption(job))
    _finish_polling(polling)


def expensive_panels(target: InspectTarget) -> None:
    """The attribution settings, then the token, visual and reliance panels, each polling its own job."""
    attribution_settings()
    polled(tokens_panel, "tokens", target)
    polled(visual_panel, "visual", target)
    polled(reliance_panel, "reliance", target)
