"""Entity spans as a reviewer fixes them: a head or tail span is word positions into the post's tokens, [start, end)
(end exclusive, as EntityPair and the MNRE `pos` field), and its text is always the post's words in that range.

A span edit is a decision (db.annotations.record_annotation(..., head=..., tail=...)): the annotation row carries the
spans in effect after it (NULL columns: the pair's own span), so the history keeps every span ever saved, undo
restores the previous ones and the pair row (the imported record) is never changed. Adding a pair to a post
(db.annotations.add_pair) checks the same rules. Every check names its field: 'head', 'tail'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from db.errors import LabelStoreError


@dataclass(frozen=True)
class Span:
    """Words start..end-1 of a post (end exclusive) and their text (the words joined by spaces)."""

    start: int
    end: int
    text: str

    @property
    def pos(self) -> tuple[int, int]:
        return self.start, self.end


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_span(value: Any, tokens: Sequence[str], field: str) -> Span:
    """`value` ((start, end) or a Span) as a Span of `tokens`, or LabelStoreError naming `field`."""
    if isinstance(value, Span):
        value = value.pos
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
        raise LabelStoreError(f"field {field!r}: {value!r:.80} is not (start, end) word positions")
    start, end = value
    if not (_is_int(start) and _is_int(end)):
        raise LabelStoreError(f"field {field!r}: {value!r:.80} holds something that is not a word position")
    if start >= end:
        raise LabelStoreError(
            f"field {field!r}: the span {start}..{end} is empty (end is exclusive: it must be after start)"
        )
    if start < 0 or end > len(tokens):
        raise LabelStoreError(
            f"field {field!r}: the span {start}..{end} is outside the post's {len(tokens)} words "
            f"(0..{len(tokens)}, end exclusive)"
        )
    return Span(start, end, " ".join(tokens[start:end]))


def check_spans(head: Any, tail: Any, tokens: Sequence[str]) -> tuple[Span, Span]:
    """Both spans checked against the post's words and against each other: the entity markers the model and the
    MNRE layout put around head and tail cannot hold entities that share a word, so overlapping spans are refused."""
    head_span, tail_span = check_span(head, tokens, "head"), check_span(tail, tokens, "tail")
    if head_span.start < tail_span.end and tail_span.start < head_span.end:
        shared = f"{max(head_span.start, tail_span.start)}..{min(head_span.end, tail_span.end)}"
        raise LabelStoreError(
            f"field 'tail': the span {tail_span.start}..{tail_span.end} overlaps the head "
            f"{head_span.start}..{head_span.end} (words {shared}, end exclusive); head and tail must not share a word"
        )
    return head_span, tail_span
