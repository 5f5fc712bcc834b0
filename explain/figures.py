"""Plotly figures for the explanation panels. Pure functions of explain/'s plain data; nothing here runs a model.

Every builder returns a go.Figure; the docstrings list its traces so tests and the app can rely on them.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explain.attention import AttentionMaps
from explain.attribution import TokenAttribution, VisualAttribution
from explain.inputs import Prediction
from explain.reliance import ImageReliance
from explain.tables import SETTINGS

ROW_HEIGHT = 16  # px per token row: an 11 px label with room around it
MAX_IMAGE_SIDE = 448  # the image panel is drawn downscaled; the heat map is upsampled to the drawn size
POSITIVE, NEGATIVE = "#c0392b", "#2c7fb8"


def shown_text(text: str) -> str:
    """`text` as Plotly draws it literally: Plotly reads tags (`<s>` would vanish) and entities in every label,
    so `<`, `>` and `&` become entities (Plotly decodes &lt; &gt; &amp;, not &quot;, so quotes stay as they are)."""
    return html.escape(str(text), quote=False)


def _token_labels(tokens: list[str], entity_mask=None) -> list[str]:
    """Plotly merges equal category names, so each position is numbered; entity tokens are bold; every token is
    escaped (markers `<s>` and a post's own `<b>` or `&amp;` are shown as typed)."""
    out = []
    for i, tok in enumerate(tokens):
        label = f"{i}: {shown_text(tok)}"
        out.append(f"<b>{label}</b>" if entity_mask is not None and entity_mask[i] else label)
    return out


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(title=title, xaxis_visible=False, yaxis_visible=False)
    return fig


def attention_heatmap(
    maps: AttentionMaps, layer: int | None = None, head: int | None = None, rollout: bool = False
) -> go.Figure:
    """Text tokens (rows, entities in bold) x visual tokens (columns). rollout=True: the rollout flow (rows sum to 1);
    else `layer` (an index into maps.layers; None = mean over fused layers) and `head` (None = mean over heads).
    Traces: [Heatmap]; without visual tokens, an empty figure that says why."""
    if rollout:
        z, what = maps.rollout_text_to_visual, "attention rollout (share of the visual flow)"
    else:
        if not maps.layers:
            return _empty("Token-object attention", "no visual tokens: text-only model or post without image")
        per_layer = maps.mean_text_to_visual if head is None else maps.text_to_visual[:, head]  # (L, T, V)
        z = per_layer.mean(axis=0) if layer is None else per_layer[layer]
        where = "mean over fused layers" if layer is None else f"text layer {maps.layers[layer]}"
        what = f"{where}, {'mean over heads' if head is None else f'head {head}'}"
    fig = go.Figure(
        go.Heatmap(
            z=z,
            # an absent crop's column is zero by masking: named so, as on the occlusion chart
            x=[
                f"{j}: {shown_text(v)}" + ("" if present else " (absent)")
                for j, (v, present) in enumerate(zip(maps.visual_labels, maps.visual_present, strict=True))
            ],
            y=_token_labels(maps.tokens, maps.entity_token_mask),
            colorscale="Viridis",
            hovertemplate="%{y} -> %{x}<br>%{z:.3f}<extra></extra>",
        )
    )
    # one tick per token (Plotly thins category ticks to every other row unless told), each row tall enough to read
    fig.update_layout(
        title=f"Text -> visual attention ({what})",
        yaxis={"autorange": "reversed", "type": "category", "dtick": 1, "tickfont": {"size": 11}},
        height=max(320, ROW_HEIGHT * len(maps.tokens) + 160),
    )
    return fig


def token_attribution_figure(attr: TokenAttribution) -> go.Figure:
    """One bar per token, red for support of the target label, blue against. Traces: [Bar]."""
    colours = [POSITIVE if s >= 0 else NEGATIVE for s in attr.scores]
    fig = go.Figure(
        go.Bar(
            x=_token_labels(attr.tokens),
            y=attr.scores,
            marker_color=colours,
            hovertemplate="%{x}<br>%{y:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"{attr.method} for '{shown_text(attr.target_label)}' (n_steps {attr.settings.get('n_steps')}, "
        f"baseline {attr.settings.get('baseline')}, delta {attr.delta:.1e})",
        yaxis_title="contribution to p(label)",
        xaxis={"type": "category", "dtick": 1, "tickangle": -60, "tickfont": {"size": 11}},
    )
    return fig


def visual_heatmap_figure(image, visual_attr: VisualAttribution | None) -> go.Figure:
    """Left: the image (PIL, or None for a blank canvas) with the region heat map over it; right: one bar per crop.
    Traces: [Image (when given), Heatmap, Bar]; without a visual attribution, an empty figure that says why."""
    if visual_attr is None:
        return _empty("Visual attribution", "no image for this post (or a text-only model)")
    if image is not None:
        scale = min(1.0, MAX_IMAGE_SIDE / max(image.size))
        image = image.convert("RGB").resize(
            (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
        )
        size = image.size
    else:
        size = (224, 224)
    heat = visual_attr.heatmap(size)  # (H, W)
    bound = float(np.abs(heat).max()) or 1.0
    fig = make_subplots(rows=1, cols=2, column_widths=[0.75, 0.25], subplot_titles=("regions", "crops"))
    left, right = fig.layout.xaxis.domain
    if image is not None:
        fig.add_trace(go.Image(z=np.asarray(image)), row=1, col=1)
    fig.add_trace(
        go.Heatmap(
            z=heat,
            colorscale="RdBu_r",
            zmin=-bound,
            zmax=bound,
            opacity=0.5 if image is not None else 1.0,
            hovertemplate="%{z:.4f}<extra></extra>",
            # under the regions panel: a vertical bar beside it would cover the crops panel's axis
            colorbar={
                "orientation": "h",
                "x": (left + right) / 2,
                "xanchor": "center",
                "len": 0.9 * (right - left),
                "y": -0.08,
                "yanchor": "top",
                "thickness": 12,
                "title": {"text": "contribution", "side": "right"},
            },
        ),
        row=1,
        col=1,
    )
    names = [
        f"crop {c + 1}" + ("" if present else " (absent)")
        for c, present in enumerate(visual_attr.crop_present)
    ]
    fig.add_trace(
        go.Bar(
            x=names,
            y=visual_attr.crop_scores,
            marker_color=[POSITIVE if s >= 0 else NEGATIVE for s in visual_attr.crop_scores],
        ),
        row=1,
        col=2,
    )
    fig.update_yaxes(autorange="reversed", row=1, col=1)
    # plain decimals like the colour bar's (Plotly's default SI prefixes read "300μ" for 3e-4)
    fig.update_yaxes(exponentformat="none", title_text="contribution to p(label)", row=1, col=2)
    fig.update_layout(
        title=f"Visual {visual_attr.method} for '{shown_text(visual_attr.target_label)}'",
        showlegend=False,
        margin={"b": 80},
    )
    return fig


PROBABILITY_COLOUR = "#1f77b4"
# the gold label's bar: the same colour, outlined and hatched (red would read as "wrong")
GOLD_OUTLINE = "#222222"


def probability_figure(
    probabilities: Prediction | dict[str, float], top: int = 10, gold: str | None = None
) -> go.Figure:
    """Horizontal bars of the `top` most probable labels (of a Prediction or a label -> probability dict), most
    probable on top, plus the gold label's bar when it is not among them. The gold label's bar is marked neutrally
    (the same colour, outlined and hatched) and named in the legend. Review and Inspect both draw this chart.
    Traces: [Bar "model probability", Bar "gold label (<name>)"] (the second only when `gold` has a probability)."""
    if isinstance(probabilities, Prediction):
        probabilities = probabilities.probabilities
    ranked = sorted(probabilities.items(), key=lambda kv: kv[1], reverse=True)[:top]
    if gold in probabilities and gold not in dict(ranked):
        ranked.append((gold, probabilities[gold]))
    ranked = ranked[::-1]  # plotly draws the first category at the bottom
    names = [name for name, _ in ranked]

    def bars(rows: list[tuple[str, float]], name: str, **marker) -> go.Bar:
        return go.Bar(
            x=[probability for _, probability in rows],
            y=[label for label, _ in rows],
            orientation="h",
            name=shown_text(name),
            marker=dict(color=PROBABILITY_COLOUR, **marker),
            text=[f"{probability:.1%}" for _, probability in rows],
            textposition="auto",
        )

    traces = [bars([row for row in ranked if row[0] != gold], "model probability")]
    if gold in probabilities:
        traces.append(
            bars(
                [row for row in ranked if row[0] == gold],
                f"gold label ({gold})",
                line=dict(color=GOLD_OUTLINE, width=2),
                # overlay: the hatching is drawn over the bar's colour (the default replaces the colour, which
                # left a white bar with its white percentage on white)
                pattern=dict(shape="/", fgcolor="#ffffff", fgopacity=0.45, fillmode="overlay"),
            )
        )
    fig = go.Figure(traces)
    fig.update_layout(
        height=70 + 24 * len(ranked),
        margin=dict(l=10, r=10, t=10, b=10),
        xaxis=dict(range=[0, 1], tickformat=".0%"),
        yaxis=dict(categoryorder="array", categoryarray=names),
        barmode="overlay",
        showlegend=True,
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
    )
    return fig


def reliance_figure(reliance: ImageReliance) -> go.Figure:
    """p(predicted label) with the post's image, without it, and with each swapped-in image (hover: the label then
    predicted). Traces: [Bar]."""
    names = ["original", "no image"] + [f"swap {i + 1}" for i in range(len(reliance.p_swapped))]
    values = [reliance.p_original, reliance.p_no_image, *map(float, reliance.p_swapped)]
    labels = [reliance.predicted_label, reliance.no_image_prediction, *reliance.swapped_predictions]
    colours = ["#444444"] + [POSITIVE if lab != reliance.predicted_label else "#999999" for lab in labels[1:]]
    fig = go.Figure(
        go.Bar(
            x=names,
            y=values,
            customdata=labels,
            marker_color=colours,
            hovertemplate="%{x}: %{y:.3f}<br>predicts %{customdata}<extra></extra>",
        )
    )
    note = f" ({reliance.reason})" if reliance.reason else ""
    fig.update_layout(
        title=f"Image reliance {reliance.score:.3f}{note}: p('{reliance.predicted_label}')",
        yaxis_range=[0, 1],
    )
    return fig


def shuffle_table_figure(rows: list[dict]) -> go.Figure:
    """Paper Table 1 as grouped bars: F1 (%) per model, one trace per setting. Traces: [Bar] * 3."""
    fig = go.Figure()
    names = [r["model"] + (f" ({r['eval_split']})" if r.get("eval_split") else "") for r in rows]
    for setting in SETTINGS:
        values = [100 * r[f"{setting}_f1"] if r.get(f"{setting}_f1") is not None else None for r in rows]
        fig.add_trace(go.Bar(name=setting, x=names, y=values))
    fig.update_layout(barmode="group", title="Visual shuffle: micro-F1 (%)", yaxis_title="F1 (%)")
    return fig


def ablation_figure(rows: list[dict]) -> go.Figure:
    """Paper Table 2: our F1 (%) per variant as bars and the paper's F1 as markers. Traces: [Bar, Scatter]."""
    names = [r["model"] + (f" ({r['eval_split']})" if r.get("eval_split") else "") for r in rows]
    fig = go.Figure(go.Bar(name="this run", x=names, y=[100 * r["f1"] for r in rows]))
    fig.add_trace(
        go.Scatter(
            name="paper (bert-base + CLIP)",
            x=names,
            y=[r.get("paper_f1") for r in rows],
            mode="markers",
            marker={"symbol": "diamond", "size": 12},
            text=[r.get("paper_name", "") for r in rows],
        )
    )
    fig.update_layout(title="Ablation: micro-F1 (%)", yaxis_title="F1 (%)")
    return fig
