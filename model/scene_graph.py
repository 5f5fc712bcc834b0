"""Scene graph of an image from its grounded objects: nodes = objects, edges = spatial predicates from the boxes.

MEGA took its scene graphs from an external generator; here the graph is built from the grounding boxes so that the
objects IFAformer looks at and the objects MEGA aligns to are the same, and the predicates are exact geometry rather
than a learned guess. Plain data throughout (the app draws it, MEGA's alignment reads its adjacency).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from model.grounding import Box, GroundedObject, box_iou

PREDICATES = ("left of", "right of", "above", "below", "inside", "contains", "overlaps", "near")
# Directional predicates hold between almost every pair of boxes, so a graph built from them is nearly complete and
# every node looks alike structurally; contact predicates carry the structure that graph matching can use.
CONTACT_PREDICATES = frozenset({"inside", "contains", "overlaps", "near"})


@dataclass
class SceneNode:
    index: int
    label: str
    box: Box | None
    score: float | None
    source: str
    merged: list[int] = field(default_factory=list)  # indices of the input objects this node stands for


@dataclass
class SceneEdge:
    subject: int  # node index
    predicate: str  # one of PREDICATES: "subject <predicate> object"
    object: int


@dataclass
class SceneGraph:
    nodes: list[SceneNode]
    edges: list[SceneEdge]

    @property
    def labels(self) -> list[str]:
        return [n.label for n in self.nodes]

    def adjacency(self, predicates: Sequence[str] | frozenset[str] = CONTACT_PREDICATES) -> np.ndarray:
        """Undirected 0/1 adjacency (N, N) over the edges whose predicate is in `predicates`."""
        n = len(self.nodes)
        adj = np.zeros((n, n), dtype=np.float32)
        for e in self.edges:
            if e.predicate in predicates:
                adj[e.subject, e.object] = adj[e.object, e.subject] = 1.0
        return adj

    def to_dict(self) -> dict:
        return {"nodes": [asdict(n) for n in self.nodes], "edges": [asdict(e) for e in self.edges]}


def spatial_predicates(a: Box, b: Box, contain_ratio: float = 0.9, near_ratio: float = 0.5) -> list[str]:
    """Predicates of box a relative to box b ("a <predicate> b").

    inside / contains: at least `contain_ratio` of the smaller box's area lies in the other one.
    overlaps: the boxes intersect and neither contains the other.
    left of / right of / above / below: the boxes' projections on that axis do not overlap (a strict, readable
        reading of "left of"; two boxes side by side but overlapping are "overlaps", not "left of").
    near: disjoint, with a gap at most `near_ratio` times the smaller box's mean side.
    """
    ax0, ay0, ax1, ay1 = a
    bx0, by0, bx1, by1 = b
    area_a, area_b = (ax1 - ax0) * (ay1 - ay0), (bx1 - bx0) * (by1 - by0)
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    preds: list[str] = []
    if area_a > 0 and inter / area_a >= contain_ratio and area_a <= area_b:
        preds.append("inside")
    elif area_b > 0 and inter / area_b >= contain_ratio and area_b < area_a:
        preds.append("contains")
    elif inter > 0:
        preds.append("overlaps")
    if ax1 <= bx0:
        preds.append("left of")
    elif ax0 >= bx1:
        preds.append("right of")
    if ay1 <= by0:
        preds.append("above")
    elif ay0 >= by1:
        preds.append("below")
    if inter == 0:
        gap = math.hypot(max(0.0, bx0 - ax1, ax0 - bx1), max(0.0, by0 - ay1, ay0 - by1))
        side = min((ax1 - ax0 + ay1 - ay0) / 2, (bx1 - bx0 + by1 - by0) / 2)
        if gap <= near_ratio * side:
            preds.append("near")
    return preds


def build_scene_graph(
    objects: Sequence[GroundedObject],
    merge_iou: float = 0.7,
    contain_ratio: float = 0.9,
    near_ratio: float = 0.5,
) -> SceneGraph:
    """Nodes from objects (duplicates merged), edges from box geometry (one per unordered pair and predicate).

    Deduplication: objects with the same label (case-insensitive) whose boxes overlap by IoU > merge_iou are one
    node (the best-scoring box is kept): Figure 1's repeated "man" boxes. Each unordered pair {i, j} is described once,
    from the lower index (i left of j, never also j right of i). Objects without a box (dataset crops) are nodes with
    no spatial edges.
    """
    order = sorted(
        range(len(objects)), key=lambda i: -(objects[i].score if objects[i].score is not None else -1)
    )
    nodes: list[SceneNode] = []
    for i in order:
        obj = objects[i]
        for node in nodes:
            if (
                node.box is not None
                and obj.box is not None
                and node.label.lower() == obj.label.lower()
                and box_iou(np.array(node.box), np.array(obj.box))[0, 0] > merge_iou
            ):
                node.merged.append(i)
                break
        else:
            nodes.append(SceneNode(len(nodes), obj.label, obj.box, obj.score, obj.source, [i]))
    edges: list[SceneEdge] = []
    for i, subject in enumerate(nodes):
        for j in range(i + 1, len(nodes)):
            other = nodes[j]
            if subject.box is None or other.box is None:
                continue
            for predicate in dict.fromkeys(
                spatial_predicates(subject.box, other.box, contain_ratio, near_ratio)
            ):
                edges.append(SceneEdge(i, predicate, j))
    return SceneGraph(nodes, edges)
