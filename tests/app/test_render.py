"""app.ui.render's pure helpers: user text shown as typed inside Markdown, numbers with their unit, and the probability
chart's neutral, legended gold label."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from app.ui.render import MISSING, WORD_JOINER, count, percent, plain, probability_figure

MD = MarkdownIt("commonmark")


@given(st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=40))
def test_plain_text_reads_back_as_typed_through_markdown(text):
    text = text.strip()
    if not text:
        return
    rendered = MD.renderInline(plain(text))
    assert "<a " not in rendered and "<em>" not in rendered and "<strong>" not in rendered
    assert html.unescape(rendered).replace(WORD_JOINER, "") == text  # the joiner is invisible


# Streamlit's Markdown (remark-gfm) turns URLs and e-mail addresses into links after parsing, in the text itself
# (mdast-util-gfm-autolink-literal's patterns), so backslash escapes cannot stop it
GFM_URL = re.compile(r"(https?://|www(?=\.))([-.\w]+)([^ \t\r\n]*)", re.IGNORECASE | re.ASCII)
GFM_EMAIL = re.compile(r"([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)", re.ASCII)


@pytest.mark.parametrize(
    "text",
    [
        "unsure: see http://e.example",
        "[x](https://evil.example/a?b=c)",
        "www.example.org is where",
        "HTTP://SHOUT.EXAMPLE",
        "mail ann@example.org",
        "mailto:ann@example.org",
    ],
)
def test_urls_and_addresses_in_user_text_are_not_made_links(text):
    """A reviewer's note "see http://e.example" was drawn as a clickable link on Review, through plain()."""
    shown = html.unescape(MD.renderInline(plain(text)))  # the text node GFM's autolinking reads
    assert not GFM_URL.search(shown) and not GFM_EMAIL.search(shown), shown
    assert shown.replace(WORD_JOINER, "") == text


def test_the_reported_names_are_neither_links_nor_entities():
    shown = MD.renderInline(plain("[link](http://evil.example)"))
    assert shown.replace(WORD_JOINER, "") == "[link](http://evil.example)" and "<a " not in shown
    assert html.unescape(MD.renderInline(plain("Tom &amp; Jerry"))) == "Tom &amp; Jerry"
    assert "\\:red\\[" in plain(":red[x]"), "Streamlit's colour directive is escaped too"


def test_numbers_carry_their_unit_and_rounding():
    assert count(1, "decision") == "1 decision" and count(2, "decision") == "2 decisions"
    assert count(0, "pair") == "0 pairs" and count(1204, "pair") == "1,204 pairs"
    assert percent(0.508591) == "50.86 %" and percent(None) == MISSING


def test_the_gold_label_is_marked_neutrally_with_a_legend():
    probabilities = {"a": 0.5, "b": 0.3, "c": 0.15, "gold": 0.05}
    fig = probability_figure(probabilities, top=2, gold="gold")
    model, gold = fig.data
    assert gold.name == "gold label (gold)" and list(gold.y) == ["gold"], "gold is shown even outside the top"
    assert list(model.y) == ["b", "a"] and fig.layout.showlegend
    colours = {model.marker.color, gold.marker.color}
    assert colours == {model.marker.color} and "#d62728" not in colours, "the same colour, never red"
    assert gold.marker.line.width and gold.marker.pattern.shape == "/"
    assert list(fig.layout.yaxis.categoryarray) == ["gold", "b", "a"], "most probable on top"
    assert len(probability_figure(probabilities, top=2).data) == 1, "no gold trace without a gold label"
