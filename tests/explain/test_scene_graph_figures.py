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
    assert len(fig.layout.annotations) == len(graph.edges) > 0
    labels = next(t for t in fig.data if t.name == "predicates")
    assert list(labels.text) == [e.predicate for e in graph.edges]
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
