"""Small pure functions that turn stored data into what a page shows (HTML with escaped text, images, figures)."""

from __future__ import annotations

import html
import re
import string
from collections.abc import Sequence

import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont

HEAD_COLOUR, TAIL_COLOUR = "#cfe3ff", "#ffe0b8"
BOX_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4"]
MISSING = "\u2014"  # an em dash: a value that is not there (never the string "None", one of MNRE's relations)
_MARKDOWN_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
WORD_JOINER = "\u2060"  # invisible, zero width: between "http" and "://" no link is recognised
# where Streamlit's Markdown (remark-gfm) would make a link of text after parsing, escapes or not: "http://",
# "https://", "www." and the "@" of an e-mail address
_AUTOLINK_STARTS = re.compile(r"(https?(?=:)|www(?=\.)|(?=@))", re.IGNORECASE)


def plain(text: object) -> str:
    """`text` shown as typed wherever Streamlit reads Markdown (st.markdown, captions, messages, widget labels and
    options): every ASCII punctuation character is backslash-escaped (CommonMark allows it for each of them), so a
    name with `[link](http://...)`, `**`, `&amp;`, `<b>` or `:red[...]` is never a link, emphasis, an entity, HTML
    or a colour. A URL or an e-mail address gets an invisible word joiner (after "http", "https" or "www", before
    "@"), as Streamlit links them in the parsed text, where escapes are gone. Every piece of user or dataset text a
    page puts into Markdown goes through here."""
    return _MARKDOWN_PUNCTUATION.sub(
        r"\\\1", _AUTOLINK_STARTS.sub(lambda m: m.group(1) + WORD_JOINER, str(text))
    )


# MNRE's relation for "no relation between the two entities": a label, though the word reads like an empty value
NO_RELATION = "None"


def label_text(label: str) -> str:
    """A relation label as a button, a choice or a line shows it: escaped like any dataset text, and MNRE's "None"
    said to be the no-relation label ("Take None" read as taking nothing)."""
    return f"{plain(label)} (no relation)" if label == NO_RELATION else plain(label)


def label_choice(label: str) -> str:
    """A relation label as a selectbox lists it: verbatim (a selectbox does not read Markdown: label_text's escapes
    showed as '\\/org\\/org\\/subsidiary'), MNRE's "None" said to be the no-relation label."""
    return f"{label} (no relation)" if label == NO_RELATION else label


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


def _dotted_rectangle(draw: ImageDraw.ImageDraw, box, colour: str, width: int) -> None:
    """A rectangle of dashes (on 2 x width, off 2 x width)."""
    x0, y0, x1, y1 = box
    step = 4 * width
    for a, b, fixed, horizontal in (
        (x0, x1, y0, True),
        (x0, x1, y1, True),
        (y0, y1, x0, False),
        (y0, y1, x1, False),
    ):
        position = a
        while position < b:
            end = min(position + 2 * width, b)
            line = [(position, fixed), (end, fixed)] if horizontal else [(fixed, position), (fixed, end)]
            draw.line(line, fill=colour, width=width)
            position += step


def draw_boxes(image: Image.Image, boxes: Sequence[tuple]) -> Image.Image:
    """A copy of `image` with each (box, caption) or (box, caption, guessed) drawn in its own colour: a guessed box
    (the CAM fallback's) dotted, others solid; "k caption" in white on a band of the box's colour, its height
    ~1/20 of the image (at least 14 px), so it reads at any size."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 200))
    font = ImageFont.load_default(size=max(12, round(max(out.size) / 24)))
    for k, (box, caption, *guessed) in enumerate(boxes):
        colour = BOX_COLOURS[k % len(BOX_COLOURS)]
        x0, y0, x1, y1 = (float(coordinate) for coordinate in box)
        if guessed and guessed[0]:
            _dotted_rectangle(draw, (x0, y0, x1, y1), colour, width)
        else:
            draw.rectangle([x0, y0, x1, y1], outline=colour, width=width)
        text = f"{k + 1} {caption}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        pad = max(2, width)
        band_height = max(14, bottom + 2 * pad)
        band_y = y0 - band_height if y0 - band_height >= 0 else y0  # above the box, else inside its top
        draw.rectangle([x0, band_y, x0 + right + 2 * pad, band_y + band_height], fill=colour)
        draw.text((x0 + pad, band_y + pad), text, fill="#ffffff", font=font)
    return out


def image_caption(sources: Sequence[str]) -> str:
    """What Review's image shows, by the sources of the boxes drawn on it (never "grounded" when none is)."""
    if not sources:
        return "the post's image (no object boxes to draw)"
    guessed = sum(source == "cam-fallback" for source in sources)
    parts = []
    if len(sources) - guessed:
        n = len(sources) - guessed
        parts.append(f"{n} grounded box{'es' if n != 1 else ''}")
    if guessed:
        parts.append(f"{guessed} guessed box{'es' if guessed != 1 else ''} (dotted)")
    return "the post's image with " + " and ".join(parts)


def ranked_labels(probabilities: dict[str, float] | None, labels: Sequence[str]) -> list[str]:
    """Labels by predicted probability (most likely first); label order when there is no prediction."""
    if not probabilities:
        return list(labels)
    return sorted(labels, key=lambda name: -probabilities.get(name, 0.0))


def probability_figure(probabilities: dict[str, float], top: int = 10, gold: str | None = None) -> go.Figure:
    """Review's and Inspect's one probability chart, explain.figures.probability_figure (imported when drawn:
    explain/ brings torch, which the Queue page must not load)."""
    from explain.figures import probability_figure as figure

    return figure(probabilities, top, gold)


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
