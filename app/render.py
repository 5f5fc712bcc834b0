"""Small pure functions that turn stored data into what a page shows (HTML with escaped text, images, figures)."""

from __future__ import annotations

import html
import re
import string
from collections.abc import Sequence

import plotly.graph_objects as go
from PIL import Image, ImageDraw

from explain.figures import probability_figure  # noqa: F401  (Review's and Inspect's one probability chart)

HEAD_COLOUR, TAIL_COLOUR = "#cfe3ff", "#ffe0b8"
BOX_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4"]
MISSING = "\u2014"  # an em dash: a value that is not there (never the string "None", one of MNRE's relations)
_MARKDOWN_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")


def plain(text: object) -> str:
    """`text` shown as typed wherever Streamlit reads Markdown (st.markdown, captions, messages, widget labels and
    options): every ASCII punctuation character is backslash-escaped (CommonMark allows it for each of them), so a
    name with `[link](http://...)`, `**`, `&amp;`, `<b>` or `:red[...]` is never a link, emphasis, an entity, HTML
    or a colour. Every piece of user or dataset text a page puts into Markdown goes through here."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", str(text))


def count(n: int, singular: str, plural: str | None = None) -> str:
    """ "1 decision", "2 decisions", "1,204 pairs": a number with its unit in the right number."""
    return f"{n:,} {singular if n == 1 else plural or singular + 's'}"


def percent(fraction: float | None, digits: int = 2) -> str:
    """An F1, precision or share as a percent with `digits` decimals (0.50859 -> "50.86 %"); the em dash if none."""
    return MISSING if fraction is None else f"{100 * fraction:.{digits}f} %"


def highlighted_text(tokens: Sequence[str], head: tuple[int, int], tail: tuple[int, int]) -> str:
    """The post as HTML with the head and tail spans marked; every token is escaped (posts are untrusted)."""
    parts = []
    for i, token in enumerate(tokens):
        word = html.escape(token)
        if head[0] <= i < head[1]:
            word = f'<mark style="background:{HEAD_COLOUR}" title="head">{word}</mark>'
        elif tail[0] <= i < tail[1]:
            word = f'<mark style="background:{TAIL_COLOUR}" title="tail">{word}</mark>'
        parts.append(word)
    return '<div class="mre-post" style="font-size:1.15rem;line-height:1.9">' + " ".join(parts) + "</div>"


def entity_legend(head_name: str, tail_name: str) -> str:
    return (
        f'<span style="background:{HEAD_COLOUR};padding:0 .3em">head: {html.escape(head_name)}</span> '
        f'<span style="background:{TAIL_COLOUR};padding:0 .3em">tail: {html.escape(tail_name)}</span>'
    )


def draw_boxes(image: Image.Image, boxes: Sequence[tuple[Sequence[float], str]]) -> Image.Image:
    """A copy of `image` with each (box, caption) drawn in its own colour."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 200))
    for k, (box, caption) in enumerate(boxes):
        colour = BOX_COLOURS[k % len(BOX_COLOURS)]
        x0, y0, x1, y1 = (float(coordinate) for coordinate in box)
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=width)
        draw.text((x0 + width + 1, y0 + width), f"{k + 1} {caption}", fill=colour)
    return out


def ranked_labels(probabilities: dict[str, float] | None, labels: Sequence[str]) -> list[str]:
    """Labels by predicted probability (most likely first); label order when there is no prediction."""
    if not probabilities:
        return list(labels)
    return sorted(labels, key=lambda name: -probabilities.get(name, 0.0))


def progress_figure(counts: dict[str, int]) -> go.Figure:
    """One stacked bar of pairs per review status."""
    order = ["accepted", "corrected", "rejected", "skipped", "unreviewed"]
    colours = ["#2ca02c", "#ff7f0e", "#d62728", "#9467bd", "#c7c7c7"]
    fig = go.Figure(
        [
            go.Bar(x=[counts.get(status, 0)], y=["pairs"], name=status, orientation="h", marker_color=colour)
            for status, colour in zip(order, colours, strict=True)
        ]
    )
    fig.update_layout(
        barmode="stack",
        height=120,
        margin=dict(l=10, r=10, t=30, b=10),
        legend=dict(orientation="h", y=1.3, x=0),
    )
    return fig
