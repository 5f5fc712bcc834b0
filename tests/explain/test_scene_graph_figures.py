"""Plotly builders for the scene graph on the image and MEGA's alignment matrices."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from explain.scene_graph_figures import alignment_matrix_figure, scene_graph_figure, unique_names
from model.grounding import GroundedObject
from model.mega_alignment import MegaAlignment
from model.scene_graph import build_scene_graph


def scene():
    objects = [
        GroundedObject((10, 10, 60, 90), "man", "a man", 0.9, "groundingdino"),
        GroundedObject((20, 30, 50, 60), "shirt", "shirt", 0.5, "groundingdino"),
        GroundedObject((70, 10, 90, 30), "ball", None, 0.4, "groundingdino"),
    ]
    return build_scene_graph(objects)


def test_scene_graph_figure_draws_image_boxes_and_edges():
    graph = scene()
    fig = scene_graph_figure(Image.new("RGB", (100, 100), (50, 50, 50)), graph)
    assert isinstance(fig.data[0], go.Image) and fig.data[0].z.shape == (100, 100, 3)
    boxes = [t for t in fig.data if isinstance(t, go.Scatter) and t.name != "predicates"]
    assert len(boxes) == 3
    man = next(t for t in boxes if t.name.endswith("man"))
    assert list(man.x) == [10, 60, 60, 10, 10] and list(man.y) == [10, 10, 90, 90, 10]
    pairs = list(dict.fromkeys((e.subject, e.object) for e in graph.edges))
    assert len(fig.layout.annotations) == len(pairs) > 0, "one arrow per related pair"
    labels = next(t for t in fig.data if t.name == "predicates")
    written = [t for t in labels.text if t]
    assert written and all(set(t.split(", ")) <= {e.predicate for e in graph.edges} for t in written), (
        "each written label lists its pair's predicates"
    )
    assert fig.layout.yaxis.range == (100, 0)  # image coordinates, y down


def test_scene_graph_figure_scales_large_images_and_works_without_one():
    graph = scene()
    big = scene_graph_figure(Image.new("RGB", (2048, 1024)), graph)
    assert big.data[0].z.shape == (512, 1024, 3)
    man = next(t for t in big.data if t.name == "0: man")
    assert list(man.x) == [5, 30, 30, 5, 5]  # boxes follow the downscaled image
    bare = scene_graph_figure(None, graph, image_size=(100, 100))
    assert not any(isinstance(t, go.Image) for t in bare.data)


def test_alignment_matrix_figure_has_one_heatmap_per_kind():
    tokens = ["the", "man", "and", "the", "man"]  # repeated tokens must stay separate rows
    z = np.full((5, 2), 0.5)
    fig = alignment_matrix_figure(MegaAlignment(tokens, ["man", "man"], z, z * 0.4 + 0.3, z))
    heatmaps = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert [h.name for h in heatmaps] == ["structural", "semantic", "combined"]
    assert np.asarray(heatmaps[1].z).shape == (5, 2) and np.allclose(heatmaps[1].z, 0.5)
    assert list(heatmaps[0].y) == ["the", "man", "and", "the #2", "man #2"]
    assert list(heatmaps[0].x) == ["man", "man #2"]
    assert unique_names(["a", "a", "a"]) == ["a", "a #2", "a #3"]


def crowded_scene():
    """Nine overlapping boxes: 36 pairs, many with two or three predicates each (the pile-up on real posts)."""
    objects = [
        GroundedObject(
            (10 + 6 * i, 10 + 5 * i, 60 + 6 * i, 70 + 5 * i), f"thing{i}", None, 0.9 - i / 20, "cam-fallback"
        )
        for i in range(9)
    ]
    return build_scene_graph(objects)


def test_predicate_labels_do_not_pile_up_but_every_edge_keeps_its_hover():
    graph = crowded_scene()
    fig = scene_graph_figure(Image.new("RGB", (200, 200)), graph)
    labels = next(t for t in fig.data if t.name == "predicates")
    shown = [(x, y) for x, y, text in zip(labels.x, labels.y, labels.text, strict=True) if text]
    assert shown, "some predicates are still written on the image"
    gaps = [np.hypot(a[0] - b[0], a[1] - b[1]) for i, a in enumerate(shown) for b in shown[i + 1 :]]
    assert not gaps or min(gaps) >= 12, "two written labels sit on top of each other"
    pairs = {(e.subject, e.object) for e in graph.edges}
    assert len(labels.x) == len(pairs), "one point per related pair, not one per predicate"
    hover = " | ".join(labels.hovertext)
    assert all(e.predicate in hover for e in graph.edges), "every predicate stays readable on hover"


def test_object_labels_from_the_imagenet_fallback_read_as_guesses_and_are_escaped():
    objects = [
        GroundedObject((10, 10, 60, 90), "comic book", None, 0.3, "cam-fallback"),
        GroundedObject((60, 10, 90, 40), "<b>cat</b>", "cat", 0.8, "groundingdino"),
    ]
    fig = scene_graph_figure(Image.new("RGB", (100, 100)), build_scene_graph(objects))
    names = {t.name: t for t in fig.data if isinstance(t, go.Scatter) and t.name != "predicates"}
    fallback = next(t for n, t in names.items() if "comic book" in n)
    assert "?" in fallback.text[0] and "guess" in fallback.hovertext
    detected = next(t for n, t in names.items() if "cat" in n)
    assert "&lt;b&gt;cat" in detected.text[0] and "<b>cat" not in detected.text[0]
    assert "GroundingDINO" in detected.hovertext


def test_a_flat_structural_alignment_says_it_has_nothing_to_show():
    tokens = ["a", "man", "with", "a", "dog"]
    flat = np.full((5, 2), 0.5)
    varied = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.6, 0.4], [0.3, 0.7]])
    fig = alignment_matrix_figure(MegaAlignment(tokens, ["man", "dog"], flat, varied, (flat + varied) / 2))
    notes = " ".join(a.text for a in fig.layout.annotations)
    assert "nothing to show" in notes
    fig = alignment_matrix_figure(MegaAlignment(tokens, ["man", "dog"], varied, varied, varied))
    assert "nothing to show" not in " ".join(a.text for a in fig.layout.annotations)
