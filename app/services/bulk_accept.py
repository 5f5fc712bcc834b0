"""Bulk accept for the Queue page: how many pairs of the current filter an admin would accept, accepting them in one
transaction, and taking that batch back (db.bulk_review does the writes).

    bulk_preview(sessions, queue_filter) -> BulkPreview              the filter's pairs and what an accept would do
    accept_filtered(sessions, queue_filter, annotator, actor)         BulkAccepted (db.bulk_review), its batch id
    undo_bulk(sessions, batch, annotator, actor)                      BulkUndone: undone, and kept (decided after)
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from db.bulk_review import DECIDED_STATUSES, BulkAccepted, BulkUndone, bulk_accept, undo_bulk_accept
from db.errors import LabelStoreError
from db.review_queue import QueueFilter, review_queue
from db.roles import Actor, require_admin

__all__ = ["BulkAccepted", "BulkPreview", "BulkUndone", "accept_filtered", "bulk_preview", "undo_bulk"]

# one bulk accept takes at most this many pairs (one transaction, one IN list): a larger filter must be narrowed
BULK_LIMIT = 10_000


@dataclass(frozen=True)
class BulkPreview:
    pair_ids: list[int]  # every pair the filter matches
    to_accept: int  # have a label in effect and are not decided yet
    no_label: int  # would be skipped: no label in effect
    decided: int  # would be skipped: already accepted, corrected or rejected


def _matching(session: Session, queue_filter: QueueFilter) -> list:
    items = review_queue(session, queue_filter, sort="source_order", limit=BULK_LIMIT + 1)
    if len(items) > BULK_LIMIT:
        raise LabelStoreError(
            f"the filter matches more than {BULK_LIMIT:,} pairs; narrow it (dataset, split, label) to bulk accept"
        )
    return items


def bulk_preview(sessions: sessionmaker, queue_filter: QueueFilter) -> BulkPreview:
    """What accepting the filter's pairs would do, counted from their current states (LabelStoreError when the
    filter matches more than BULK_LIMIT pairs)."""
    with sessions() as session:
        items = _matching(session, queue_filter)
    decided = sum(item.status in DECIDED_STATUSES for item in items)
    no_label = sum(item.status not in DECIDED_STATUSES and item.label_in_effect is None for item in items)
    return BulkPreview([item.pair_id for item in items], len(items) - decided - no_label, no_label, decided)


def accept_filtered(
    sessions: sessionmaker, queue_filter: QueueFilter, annotator: str, actor: Actor | None
) -> BulkAccepted:
    """Accept every pair the filter matches now (read again inside the transaction, so a pair decided since the
    preview is skipped as decided), one decision per pair under one batch id. Admin only."""
    require_admin(actor, "accept a filtered set of pairs at once")
    with sessions.begin() as session:
        pair_ids = [item.pair_id for item in _matching(session, queue_filter)]
        return bulk_accept(session, pair_ids, annotator=annotator, actor=actor)


def undo_bulk(sessions: sessionmaker, batch: str, annotator: str, actor: Actor | None) -> BulkUndone:
    """Take back one bulk accept; a pair someone decided after it keeps their decision. Admin only."""
    with sessions.begin() as session:
        return undo_bulk_accept(session, batch, annotator=annotator, actor=actor)
