"""explain.figures: each builder returns a go.Figure with the traces its docstring promises."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from PIL import Image

import explain
from explain import figures


def _maps(layers: int = 2, t: int = 5, v: int = 52) -> explain.AttentionMaps:
    rng = np.random.default_rng(0)
    t2v = rng.random((layers, 4, t, v)) / v
    flow = rng.random((t, v))
    return explain.AttentionMaps(
        text_to_visual=t2v,
        visual_to_text=rng.random((max(layers - 1, 0), 4, v, t)),
        mean_text_to_visual=t2v.mean(1),
        rollout_text_to_visual=flow / flow.sum(1, keepdims=True),
        rollout_visual_share=np.full(t, 0.3),
        layers=list(range(layers)),
        vision_layers=list(range(max(layers - 1, 0))),
        tokens=["[CLS]", "<s>", "a", "a", "[SEP]"][:t],
        visual_labels=[f"grid r{i // 7}c{i % 7}" for i in range(49)] + ["crop 1", "crop 2", "crop 3"],
        entity_token_mask=np.array([False, True, True, False, False][:t]),
        crop_scores=t2v.mean(1)[:, :, 49:],
        grid=t2v.mean(1)[:, :, :49].reshape(layers, t, 7, 7),
        visual_present=[True] * 50 + [False, False],
    )


def test_attention_heatmap_views():
    maps = _maps()
    mean = figures.attention_heatmap(maps)
    assert isinstance(mean, go.Figure) and [type(tr).__name__ for tr in mean.data] == ["Heatmap"]
    assert np.asarray(mean.data[0].z).shape == (5, 52)
    # repeated tokens stay distinct rows; entity tokens are bold
    assert len(set(mean.data[0].y)) == 5 and mean.data[0].y[1].startswith("<b>")
    one = figures.attention_heatmap(maps, layer=1, head=2)
    assert np.allclose(one.data[0].z, maps.text_to_visual[1, 2])
    roll = figures.attention_heatmap(maps, rollout=True)
    assert np.allclose(np.asarray(roll.data[0].z).sum(1), 1.0)
    empty = figures.attention_heatmap(_maps(layers=0))
    assert len(empty.data) == 0 and "no visual tokens" in empty.layout.annotations[0].text


def _visual() -> explain.VisualAttribution:
    grid = np.zeros((7, 7))
    grid[3, 3] = 0.4
    return explain.VisualAttribution(
        np.array([0.2, 0.0, 0.0]), grid, [True, False, False], "/per/per/couple", 3, 0.9, "occlusion"
    )


def test_token_visual_and_probability_figures():
    attr = explain.TokenAttribution(
        np.array([0.0, 0.3, -0.1]),
        ["[CLS]", "x", "[SEP]"],
        "lab",
        1,
        1e-5,
        0.9,
        0.6,
        settings={"n_steps": 32, "baseline": "pad"},
    )
    fig = figures.token_attribution_figure(attr)
    assert [type(tr).__name__ for tr in fig.data] == ["Bar"] and fig.data[0].marker.color[
        2
    ] == figures.NEGATIVE
    image = Image.new("RGB", (800, 600), (10, 20, 30))
    vis = figures.visual_heatmap_figure(image, _visual())
    assert [type(tr).__name__ for tr in vis.data] == ["Image", "Heatmap", "Bar"]
    assert np.asarray(vis.data[1].z).shape == (336, 448)  # drawn at most 448 px wide, heat map at that size
    assert [type(tr).__name__ for tr in figures.visual_heatmap_figure(None, _visual()).data] == [
        "Heatmap",
        "Bar",
    ]
    assert len(figures.visual_heatmap_figure(image, None).data) == 0
    pred = explain.Prediction("b", 1, {"a": 0.1, "b": 0.7, "c": 0.2}, 0.5, 0.8)
    prob = figures.probability_figure(pred, top=2)
    assert list(prob.layout.yaxis.categoryarray) == ["c", "b"], "most probable on top (drawn last)"
    assert len(prob.data) == 1, "no gold trace without a gold label"


def test_gold_bar_keeps_its_colour_and_its_percentage_visible():
    """The gold label's bar is hatched over the probability colour: hatching that replaces the fill left a white
    bar with white text on it (the gold label is most often the model's top label, the bar a reader looks for)."""
    pred = explain.Prediction("b", 1, {"a": 0.1, "b": 0.7, "c": 0.2}, 0.5, 0.8)
    gold = figures.probability_figure(pred, gold="b").data[1]
    assert gold.name == "gold label (b)" and list(gold.text) == ["70.0%"]
    assert gold.marker.color == figures.PROBABILITY_COLOUR
    assert gold.marker.pattern.fillmode == "overlay", "the pattern must be drawn over the bar's colour"
    assert gold.marker.pattern.fgcolor != gold.marker.color


def test_reliance_and_table_figures():
    rel = explain.ImageReliance(
        0.9, 0.3, np.array([0.2, 0.8]), ["a", "b"], 0.6, predicted_label="b", no_image_prediction="a"
    )
    fig = figures.reliance_figure(rel)
    assert list(fig.data[0].x) == ["original", "no image", "swap 1", "swap 2"]
    assert np.allclose(fig.data[0].y, [0.9, 0.3, 0.2, 0.8])
    # the title writes the score as Inspect's "Reliance score" metric beside it does (three decimals)
    assert fig.layout.title.text.startswith("Image reliance 0.600"), fig.layout.title.text
    runs = [
        {
            "model": m,
            "architecture": "ifaformer",
            "variant": m,
            "setting": s,
            "accuracy": 0.9,
            "precision": f,
            "recall": f,
            "f1": f,
            "eval_split": "test",
        }
        for m, s, f in [
            ("objects", "standard", 0.8),
            ("objects", "shuffle_test", 0.3),
            ("vanilla", "standard", 0.7),
        ]
    ]
    shuffle = figures.shuffle_table_figure(explain.shuffle_table(runs))
    assert [tr.name for tr in shuffle.data] == ["standard", "shuffle_train", "shuffle_test"]
    assert shuffle.data[0].y[0] == 80 and shuffle.data[1].y[0] is None
    ablation = figures.ablation_figure(explain.ablation_table(runs))
    assert [type(tr).__name__ for tr in ablation.data] == ["Bar", "Scatter"]
    assert list(ablation.data[1].y) == [68.99, 81.67]


def _hostile_maps(t: int = 40) -> explain.AttentionMaps:
    maps = _maps(t=5)
    rng = np.random.default_rng(1)
    t2v = rng.random((2, 4, t, 52)) / 52
    tokens = ["[CLS]", "<s>", "Alex", "</s>", "&amp;", "<b>bold</b>", "<o>", "Sam", "</o>"]
    tokens += [f"w{i}" for i in range(t - len(tokens) - 1)] + ["[SEP]"]
    maps.text_to_visual, maps.mean_text_to_visual = t2v, t2v.mean(1)
    maps.rollout_text_to_visual = np.full((t, 52), 1 / 52)
    maps.tokens, maps.entity_token_mask = tokens, np.array([1 <= i <= 8 for i in range(t)])
    return maps


def test_token_labels_are_escaped_so_plotly_shows_markers_and_post_text_literally():
    """Plotly reads `<s>` as HTML: the tick label "1: <s>" was drawn as "1:" with the marker gone."""
    import html

    maps = _hostile_maps()
    fig = figures.attention_heatmap(maps)
    shown = [html.unescape(label.removeprefix("<b>").removesuffix("</b>")) for label in fig.data[0].y]
    assert shown == [f"{i}: {tok}" for i, tok in enumerate(maps.tokens)]
    raw = " ".join(fig.data[0].y)
    assert "&lt;s&gt;" in raw and "&lt;/s&gt;" in raw and "&amp;amp;" in raw and "&lt;b&gt;bold" in raw
    attr = explain.TokenAttribution(
        np.zeros(4), ["<s>", "&amp;", "<i>x</i>", "</o>"], "lab", 1, 0.0, 0.5, 0.4, settings={}
    )
    bars = figures.token_attribution_figure(attr)
    assert [html.unescape(x) for x in bars.data[0].x] == ["0: <s>", "1: &amp;", "2: <i>x</i>", "3: </o>"]
    assert "<s>" not in " ".join(bars.data[0].x)


def test_attention_heatmap_labels_every_token_and_hovers_with_it():
    maps = _hostile_maps(t=60)
    fig = figures.attention_heatmap(maps)
    assert fig.layout.yaxis.dtick == 1, "Plotly thins category ticks unless told one per row"
    assert fig.layout.height >= 14 * 60, "each row tall enough for its label"
    assert len(fig.data[0].y) == 60
    bars = figures.token_attribution_figure(
        explain.TokenAttribution(np.zeros(60), maps.tokens, "lab", 1, 0.0, 0.5, 0.4, settings={})
    )
    assert bars.layout.xaxis.dtick == 1


def test_occlusion_colour_bar_stays_clear_of_the_crops_axis():
    vis = figures.visual_heatmap_figure(Image.new("RGB", (300, 200)), _visual())
    bar = vis.data[1].colorbar
    regions, crops = vis.layout.xaxis.domain, vis.layout.xaxis2.domain
    if bar.orientation == "h":
        x = 0.5 if bar.x is None else bar.x
        half = (bar.len if bar.len is not None else 1) / 2
        assert regions[0] - 1e-9 <= x - half and x + half <= regions[1] + 1e-9
    else:
        assert bar.x is not None and bar.x >= crops[1], "a vertical bar must sit right of the crops panel"


def test_absent_crops_are_named_so_and_small_scores_read_without_si_prefixes():
    """The attention map names an absent crop as the occlusion chart does (its column is all zeros by masking, not
    by what the model read), and crop contributions of a few 1e-4 read as decimals, not '300μ'."""
    heat = figures.attention_heatmap(_maps())
    assert list(heat.data[0].x[-3:]) == ["49: crop 1", "50: crop 2 (absent)", "51: crop 3 (absent)"]
    vis = figures.visual_heatmap_figure(None, _visual())
    assert vis.layout.yaxis2.exponentformat == "none"
    assert vis.layout.yaxis2.title.text == "contribution to p(label)"
