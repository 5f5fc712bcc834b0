"""Scene graph predicates and deduplication, the dependency text graph, and MEGA's structural and semantic
alignment (xNetMF signatures, REGAL embeddings)."""

from __future__ import annotations

import numpy as np
import pytest

from model.grounding import GroundedObject
from model.mega_alignment import (
    mega_alignment,
    node_similarity,
    regal_embeddings,
    semantic_alignment,
    structural_alignment,
    xnetmf_signatures,
)
from model.scene_graph import build_scene_graph, spatial_predicates
from model.text_graph import TextGraph, noun_phrases, parse_dependencies

A = (0.0, 0.0, 10.0, 10.0)


def obj(label: str, box, score: float = 0.5) -> GroundedObject:
    return GroundedObject(box=box, label=label, phrase=None, score=score, source="groundingdino")


# ----------------------------------------------------------------------------------------------------------------
# Scene graph


@pytest.mark.parametrize(
    ("b", "expected"),
    [
        ((13, 0, 23, 10), {"left of", "near"}),  # gap 3 <= 0.5 * side 10
        ((30, 0, 40, 10), {"left of"}),  # gap 20: too far to be near
        ((0, 30, 10, 40), {"above"}),
        ((0, -12, 10, -3), {"below", "near"}),  # gap 3
        ((-30, -30, -20, -20), {"right of", "below"}),
        ((2, 2, 5, 5), {"contains"}),
        ((-5, -5, 20, 20), {"inside"}),
        ((5, 5, 15, 15), {"overlaps"}),
    ],
)
def test_spatial_predicates_on_hand_built_boxes(b, expected):
    assert set(spatial_predicates(A, b)) == expected


def test_duplicates_are_merged_and_each_pair_is_described_once():
    objects = [
        obj("man", (0, 0, 100, 200), 0.6),
        obj("Man", (2, 2, 100, 200), 0.9),  # same object found twice (Figure 1's duplicated "man")
        obj("shirt", (0, 0, 100, 200), 0.7),  # same box, other label: a different node
        obj("dog", (150, 150, 200, 200), 0.8),
    ]
    graph = build_scene_graph(objects)
    assert graph.labels == ["Man", "dog", "shirt"]  # best score first; the merged node keeps its best box
    assert graph.nodes[0].merged == [1, 0] and graph.nodes[0].box == (2, 2, 100, 200)
    facts = [(e.subject, e.predicate, e.object) for e in graph.edges]
    assert len(facts) == len(set(facts))
    pairs = {}
    for s, p, o in facts:
        assert s < o  # one direction per unordered pair: never "a left of b" and also "b right of a"
        pairs.setdefault((s, o), []).append(p)
    assert sorted(pairs[(0, 1)]) == ["left of"] and "inside" in pairs[(0, 2)]
    adj = graph.adjacency()
    assert adj[0, 2] == adj[2, 0] == 1 and adj[0, 1] == 0  # "left of" is no contact edge


def test_objects_without_boxes_are_nodes_without_edges():
    crops = [GroundedObject(None, f"crop {k}", None, None, "dataset") for k in (1, 2)]
    graph = build_scene_graph(crops)
    assert len(graph.nodes) == 2 and graph.edges == []
    assert graph.to_dict()["nodes"][0]["source"] == "dataset"


# ----------------------------------------------------------------------------------------------------------------
# Text graph


def test_dependency_tree_of_pre_split_tokens():
    tokens = ["Barack", "Obama", "meets", "Angela", "Merkel", "in", "Washington"]
    graph = parse_dependencies(tokens)
    assert graph.tokens == tokens and len(graph.heads) == len(graph.deprels) == len(graph.pos) == 7
    assert graph.heads.count(-1) == 1 and graph.heads[2] == -1  # "meets" is the root
    assert graph.heads[1] == 2 and graph.deprels[1] == "nsubj"  # Obama -> meets
    adj = graph.adjacency()
    assert (adj == adj.T).all() and adj.sum() == 2 * (len(tokens) - 1)  # a tree
    assert noun_phrases(tokens) == ["Barack Obama", "Angela Merkel", "Washington"]


def test_odd_tokens_keep_their_indices():
    tokens = ["RT", "@user", ":", "", "http://t.co/x", "Obama"]
    assert len(parse_dependencies(tokens).heads) == len(tokens)


# ----------------------------------------------------------------------------------------------------------------
# MEGA structural alignment


def star(n_leaves: int) -> np.ndarray:
    adj = np.zeros((n_leaves + 1, n_leaves + 1))
    adj[0, 1:] = adj[1:, 0] = 1
    return adj


def test_xnetmf_signatures_are_identical_for_isomorphic_nodes():
    sig = xnetmf_signatures(star(3), max_hops=2, delta=0.1)
    assert np.allclose(sig[1], sig[2]) and np.allclose(sig[2], sig[3])
    assert not np.allclose(sig[0], sig[1])
    # the same graph with nodes renamed: each node keeps its signature
    perm = np.array([2, 0, 3, 1])
    permuted = xnetmf_signatures(star(3)[np.ix_(perm, perm)], max_hops=2, delta=0.1)
    assert np.allclose(permuted, sig[perm])
    # hand-computed: centre sees 3 leaves of degree 1 (bin 0); a leaf sees the centre (degree 3, bin 1) at 1 hop and
    # 2 leaves at 2 hops, weighted by delta
    assert np.allclose(sig[0], [3, 0]) and np.allclose(sig[1], [0.2, 1])


def test_regal_embeddings_reproduce_the_similarity_with_all_landmarks():
    sig = xnetmf_signatures(star(4))
    y = regal_embeddings(sig, num_landmarks=len(sig))
    assert np.allclose(y @ y.T, node_similarity(sig, sig), atol=1e-6)


def test_structural_alignment_rows_sum_to_one_and_follow_structure():
    text = TextGraph(["a", "b", "c"], [1, -1, 1], ["x", "ROOT", "x"], ["NOUN", "NOUN", "NOUN"])  # path a-b-c
    # near-chain p-q-r
    objects = [
        obj("p", (0, 0, 10, 10)),
        obj("q", (12, 0, 22, 10)),
        obj("r", (24, 0, 34, 10)),
    ]
    scene = build_scene_graph(objects)
    assert scene.adjacency().sum() == 4
    weights = structural_alignment(text, scene)
    assert weights.shape == (3, 3) and np.allclose(weights.sum(1), 1)
    centre = scene.labels.index("q")
    ends = [i for i in range(3) if i != centre]
    assert weights[1, centre] > weights[1, ends[0]]  # the middle token prefers the middle object
    assert weights[0, ends[0]] > weights[0, centre]  # an end token prefers an end object
    assert np.isclose(weights[0, ends[0]], weights[0, ends[1]])  # the two ends are symmetric


def test_semantic_alignment_attends_to_the_matching_object():
    rng = np.random.default_rng(0)
    objects = rng.normal(size=(4, 16))
    tokens = objects[[2, 0]] + 0.01 * rng.normal(size=(2, 16))
    weights = semantic_alignment(tokens, objects)
    assert np.allclose(weights.sum(1), 1) and list(weights.argmax(1)) == [2, 0]


def test_mega_alignment_with_given_features_and_with_offline_minilm():
    tokens = ["a", "dog", "chases", "a", "red", "car"]
    scene = build_scene_graph([obj("dog", (0, 0, 50, 50), 0.9), obj("car", (60, 0, 160, 50), 0.8)])
    rng = np.random.default_rng(0)
    given = mega_alignment(
        tokens, scene, token_features=rng.normal(size=(6, 8)), object_features=rng.normal(size=(2, 8))
    )
    assert given.structural.shape == given.semantic.shape == given.combined.shape == (6, 2)
    assert np.allclose(given.combined.sum(1), 1)
    assert given.to_dict()["object_labels"] == ["dog", "car"]

    minilm = mega_alignment(tokens, scene)  # MiniLM features of the tokens and the labels
    assert minilm.semantic[1].argmax() == 0 and minilm.semantic[5].argmax() == 1  # dog -> dog, car -> car
    empty = mega_alignment(tokens, build_scene_graph([]))
    assert empty.combined.shape == (6, 0)
