"""Plotly figures for the grounding / MEGA panel: the scene graph drawn on the image (Figure 1 of the paper) and
MEGA's token x object alignment matrices. Pure functions of plain data; nothing here runs a model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from model.mega_alignment import MegaAlignment
from model.scene_graph import SceneGraph

PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324")
MAX_DISPLAY_SIDE = 1024  # larger images are shown downscaled; boxes are scaled with them


def unique_names(names: Sequence[str]) -> list[str]:
    """Plotly merges equal category names on an axis; number repeats ('man', 'man #2') so each row stays distinct."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} #{seen[n]}")
    return out


def scene_graph_figure(
    image: Image.Image | None,
    scene_graph: SceneGraph,
    image_size: tuple[int, int] | None = None,
    show_edges: bool = True,
) -> go.Figure:
    """The image with one box trace per node (label and score on hover) and an arrow per spatial edge between box
    centres, labelled with its predicate. Without an image, boxes are drawn on an empty canvas of `image_size`.

    Traces: [Image (when given), one Scatter per node with a box, one Scatter 'predicates' (edge labels) if any].
    """
    fig = go.Figure()
    if image is not None:
        width, height = image.size
    elif image_size is not None:
        width, height = image_size
    else:
        boxes = [n.box for n in scene_graph.nodes if n.box is not None]
        width = int(max((b[2] for b in boxes), default=1))
        height = int(max((b[3] for b in boxes), default=1))
    scale = min(1.0, MAX_DISPLAY_SIDE / max(width, height))
    if image is not None:
        shown = image.convert("RGB")
        if scale < 1.0:
            shown = shown.resize((round(width * scale), round(height * scale)))
        fig.add_trace(go.Image(z=np.asarray(shown), name="image", hoverinfo="skip"))

    centres: dict[int, tuple[float, float]] = {}
    for node in scene_graph.nodes:
        if node.box is None:
            continue
        x0, y0, x1, y1 = (v * scale for v in node.box)
        centres[node.index] = ((x0 + x1) / 2, (y0 + y1) / 2)
        colour = PALETTE[node.index % len(PALETTE)]
        score = f"{node.score:.2f}" if node.score is not None else "n/a"
        fig.add_trace(
            go.Scatter(
                x=[x0, x1, x1, x0, x0],
                y=[y0, y0, y1, y1, y0],
                mode="lines+text",
                name=f"{node.index}: {node.label}",
                line={"color": colour, "width": 3},
                text=[node.label, "", "", "", ""],
                textposition="top right",
                textfont={"color": colour},
                hovertext=f"{node.label}<br>score {score}<br>source {node.source}",
                hoverinfo="text",
            )
        )

    edges = (
        [e for e in scene_graph.edges if e.subject in centres and e.object in centres] if show_edges else []
    )
    for e in edges:
        (sx, sy), (ox, oy) = centres[e.subject], centres[e.object]
        fig.add_annotation(
            x=ox,
            y=oy,
            ax=sx,
            ay=sy,
            xref="x",
            yref="y",
            axref="x",
            ayref="y",
            showarrow=True,
            arrowhead=2,
            arrowwidth=1.5,
            arrowcolor="rgba(255,255,255,0.8)",
            text="",
        )
    if edges:
        mids = [
            (
                (centres[e.subject][0] + centres[e.object][0]) / 2,
                (centres[e.subject][1] + centres[e.object][1]) / 2,
            )
            for e in edges
        ]
        names = [n.label for n in scene_graph.nodes]
        fig.add_trace(
            go.Scatter(
                x=[m[0] for m in mids],
                y=[m[1] for m in mids],
                mode="text",
                name="predicates",
                text=[e.predicate for e in edges],
                textfont={"color": "white", "size": 11},
                hovertext=[f"{names[e.subject]} {e.predicate} {names[e.object]}" for e in edges],
                hoverinfo="text",
            )
        )

    fig.update_xaxes(range=[0, width * scale], showgrid=False, visible=False)
    # image coordinates: y grows downwards
    fig.update_yaxes(range=[height * scale, 0], showgrid=False, visible=False, scaleanchor="x")
    fig.update_layout(margin={"l": 0, "r": 0, "t": 30, "b": 0}, showlegend=True, title="Scene graph")
    return fig


def alignment_matrix_figure(
    alignment: MegaAlignment, kinds: Sequence[str] = ("structural", "semantic", "combined")
) -> go.Figure:
    """One heatmap per kind of MEGA alignment, tokens (rows) x objects (columns), shared colour scale 0..1."""
    tokens, objects = unique_names(alignment.tokens), unique_names(alignment.object_labels)
    fig = make_subplots(
        rows=1, cols=len(kinds), shared_yaxes=True, subplot_titles=list(kinds), horizontal_spacing=0.03
    )
    for col, kind in enumerate(kinds, start=1):
        z = np.asarray(getattr(alignment, kind))  # (T, O)
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=objects,
                y=tokens,
                zmin=0.0,
                zmax=1.0,
                colorscale="Viridis",
                name=kind,
                showscale=col == len(kinds),
                hovertemplate="token %{y}<br>object %{x}<br>weight %{z:.3f}<extra>" + kind + "</extra>",
            ),
            row=1,
            col=col,
        )
    fig.update_yaxes(autorange="reversed")  # first token on top, as the post reads
    fig.update_layout(
        height=max(250, 18 * len(tokens) + 80),
        margin={"l": 0, "r": 0, "t": 40, "b": 0},
        title="MEGA alignment (token x object)",
    )
    return fig
