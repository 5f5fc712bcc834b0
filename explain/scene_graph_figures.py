"""Plotly figures for the grounding / MEGA panel: the scene graph drawn on the image (Figure 1 of the paper) and
MEGA's token x object alignment matrices. Pure functions of plain data; nothing here runs a model."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from model.mega_alignment import MegaAlignment
from model.scene_graph import SceneGraph

PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324")
MAX_DISPLAY_SIDE = 1024  # larger images are shown downscaled; boxes are scaled with them
LABEL_GAP = 0.08  # predicate labels closer than this share of the image side are shown on hover only
SOURCE_NAMES = {
    "groundingdino": "GroundingDINO detection",
    "dataset": "the dataset's crop",
    "cam-fallback": "ImageNet CAM fallback: a guess, not a detection",
}
FLAT_TOLERANCE = 1e-6  # a row whose weights differ by less than this spreads evenly over the objects


def shown_text(text: str) -> str:
    """`text` as Plotly draws it literally (Plotly reads tags and &lt; &gt; &amp; in every label)."""
    return html.escape(str(text), quote=False)


def object_caption(label: str, source: str) -> str:
    """How an object's label is shown: the ImageNet fallback's class names are guesses and carry a '?'."""
    return f"{label}?" if source == "cam-fallback" else label


def source_name(source: str) -> str:
    """GroundingDINO, the ImageNet fallback, or else a dataset's own crops (MNRE's are stored as 'mnre_vg')."""
    return SOURCE_NAMES.get(source, f"the dataset's crop ({source})")


def objects_provenance(sources: Sequence[str]) -> str:
    """One sentence saying where a post's objects came from, e.g. 'Objects: 3 from the ImageNet CAM fallback
    (class names are guesses, marked ?).'"""
    counts: dict[str, int] = {}
    for source in sources:
        counts[source] = counts.get(source, 0) + 1
    if not counts:
        return "Objects: none found."
    origins = {
        "groundingdino": "GroundingDINO detections",
        "dataset": "the dataset's crops",
        "cam-fallback": "the ImageNet CAM fallback (no detector weights here; class names are guesses, marked ?)",
    }
    return (
        "Objects: "
        + ", ".join(f"{n} from {origins.get(s, f'the dataset crops ({s})')}" for s, n in counts.items())
        + "."
    )


def is_flat(z: np.ndarray) -> bool:
    """True when every token spreads its weight evenly over the objects (nothing to tell objects apart)."""
    z = np.asarray(z, dtype=np.float64)
    return z.size > 0 and float(np.ptp(z, axis=1).max()) < FLAT_TOLERANCE


def unique_names(names: Sequence[str]) -> list[str]:
    """Plotly merges equal category names on an axis; number repeats ('man', 'man #2') so each row stays distinct.
    Names are escaped so Plotly shows them as typed."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(shown_text(n if seen[n] == 1 else f"{n} #{seen[n]}"))
    return out


def scene_graph_figure(
    image: Image.Image | None,
    scene_graph: SceneGraph,
    image_size: tuple[int, int] | None = None,
    show_edges: bool = True,
) -> go.Figure:
    """The image with one box trace per node (label, score and where it came from on hover; the ImageNet fallback's
    labels end in '?') and an arrow per related pair of boxes. Each pair's predicates are one label at the middle of
    its arrow; a label that would sit on top of another one is left to the hover, so the image stays readable.
    Without an image, boxes are drawn on an empty canvas of `image_size`.

    Traces: [Image (when given), one Scatter per node with a box, one Scatter 'predicates' (a point per related
    pair: text where there is room, hover always) if any].
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
        caption = shown_text(object_caption(node.label, node.source))
        fig.add_trace(
            go.Scatter(
                x=[x0, x1, x1, x0, x0],
                y=[y0, y0, y1, y1, y0],
                mode="lines+text",
                name=f"{node.index}: {caption}",
                line={
                    "color": colour,
                    "width": 3,
                    "dash": "dot" if node.source == "cam-fallback" else "solid",
                },
                text=[caption, "", "", "", ""],
                textposition="top right",
                textfont={"color": colour},
                hovertext=f"{caption}<br>score {score}<br>{shown_text(source_name(node.source))}",
                hoverinfo="text",
            )
        )

    edges = (
        [e for e in scene_graph.edges if e.subject in centres and e.object in centres] if show_edges else []
    )
    # one arrow and one label per related pair: a pair with three predicates piled three labels on one spot
    pairs: dict[tuple[int, int], list[str]] = {}
    for e in edges:
        pairs.setdefault((e.subject, e.object), []).append(e.predicate)
    for subject, obj in pairs:
        (sx, sy), (ox, oy) = centres[subject], centres[obj]
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
    if pairs:
        names = [shown_text(object_caption(n.label, n.source)) for n in scene_graph.nodes]
        gap = LABEL_GAP * max(width, height) * scale
        mids, texts, placed = [], [], []
        for subject, obj in pairs:
            mid = (
                (centres[subject][0] + centres[obj][0]) / 2,
                (centres[subject][1] + centres[obj][1]) / 2,
            )
            room = all(np.hypot(mid[0] - p[0], mid[1] - p[1]) >= gap for p in placed)
            if room:
                placed.append(mid)
            mids.append(mid)
            texts.append(", ".join(pairs[subject, obj]) if room else "")
        fig.add_trace(
            go.Scatter(
                x=[m[0] for m in mids],
                y=[m[1] for m in mids],
                mode="markers+text",
                name="predicates",
                text=texts,
                marker={"size": 6, "color": "rgba(255,255,255,0.8)"},
                textfont={"color": "white", "size": 11},
                textposition="middle center",
                hovertext=[f"{names[s_]} {', '.join(pairs[s_, o_])} {names[o_]}" for s_, o_ in pairs],
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
    """One heatmap per kind of MEGA alignment, tokens (rows) x objects (columns), shared colour scale 0..1.

    A kind whose every row is even (the structural one when every object sits alike in the scene graph, e.g. no two
    boxes touch, so graph matching cannot tell objects apart) is drawn and labelled "nothing to show" in its panel."""
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
        if is_flat(z):
            fig.add_annotation(
                text="nothing to show:<br>every token spreads<br>evenly over the objects",
                xref=f"x{'' if col == 1 else col} domain",
                yref="y domain",
                x=0.5,
                y=0.5,
                showarrow=False,
                bgcolor="rgba(255,255,255,0.85)",
                font={"size": 11},
            )
    fig.update_yaxes(autorange="reversed", type="category", dtick=1)  # first token on top, as the post reads
    fig.update_layout(
        height=max(250, 18 * len(tokens) + 80),
        margin={"l": 0, "r": 0, "t": 40, "b": 0},
        title="MEGA alignment (token x object)",
    )
    return fig
