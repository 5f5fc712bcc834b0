"""Bulk accept: an admin accepts every pair of a filtered set in one transaction, and takes exactly that batch back.

Each accepted pair gets its own decision row (the history stays one row per decision, as db.annotations writes it),
tagged with the batch in `Annotation.origin` as "bulk:<batch id>". Undoing the batch appends an undo row
(db.annotations.undo_last) for each of its pairs whose current decision is still the batch's: a pair someone
decided after the bulk accept keeps their decision.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.annotations import append_annotation, current_states, undo_last
from db.errors import LabelStoreError
from db.models import Annotation, EntityPair
from db.roles import Actor, require_admin

BULK_ORIGIN_PREFIX = "bulk:"
# a decision on the label: such a pair is "already decided" and a bulk accept leaves it alone (a skip is not one)
DECIDED_STATUSES = ("accepted", "corrected", "rejected")


def bulk_origin(batch: str) -> str:
    """The `Annotation.origin` of a bulk accept's decisions."""
    return f"{BULK_ORIGIN_PREFIX}{batch}"


@dataclass(frozen=True)
class BulkAccepted:
    batch: str  # the batch id: what undo_bulk_accept takes
    accepted: list[int]  # pair ids accepted, in the order given
    skipped_no_label: list[int]  # no label in effect (rejected before, or a post nobody labelled)
    skipped_decided: list[int]  # already accepted, corrected or rejected


@dataclass(frozen=True)
class BulkUndone:
    batch: str
    undone: list[int]  # pairs put back to their state before the bulk accept
    kept: list[int]  # pairs someone decided after the bulk accept: their decision stands


def bulk_accept(
    session: Session, pair_ids: Iterable[int], *, annotator: str, actor: Actor | None
) -> BulkAccepted:
    """Accept the label in effect of every pair in `pair_ids` that has one and is not decided yet (unreviewed, or
    skipped), one decision per pair tagged with a new batch id. Admin only (PermissionDeniedError before anything is
    read). A pair id that is not in the store is a LabelStoreError naming it, and nothing is written (the caller's
    transaction)."""
    require_admin(actor, "accept a filtered set of pairs at once")
    if not annotator or not annotator.strip():
        raise LabelStoreError("a bulk accept needs the annotator's name")
    ids = list(dict.fromkeys(pair_ids))
    pairs = {pair.id: pair for pair in session.scalars(select(EntityPair).where(EntityPair.id.in_(ids)))}
    missing = [pair_id for pair_id in ids if pair_id not in pairs]
    if missing:
        raise LabelStoreError(f"no entity pair with id {missing[0]} ({len(missing)} of {len(ids)} missing)")
    states = current_states(session, ids)
    batch = uuid.uuid4().hex[:16]
    accepted, no_label, decided = [], [], []
    for pair_id in ids:
        pair, state = pairs[pair_id], states.get(pair_id)
        if state is not None and state.status in DECIDED_STATUSES:
            decided.append(pair_id)
            continue
        label = state.curated_label(pair.gold_label) if state is not None else pair.gold_label
        if label is None:
            no_label.append(pair_id)
            continue
        append_annotation(
            session,
            pair,
            state.revision if state is not None else 0,
            label=label,
            status="accepted",
            annotator=annotator.strip(),
            note=None,
            origin=bulk_origin(batch),
        )
        accepted.append(pair_id)
    return BulkAccepted(batch, accepted, no_label, decided)


def undo_bulk_accept(session: Session, batch: str, *, annotator: str, actor: Actor | None) -> BulkUndone:
    """Take back the decisions of one bulk accept: each pair whose current decision is still the batch's gets an
    undo row; a pair decided after it keeps that decision (counted in `kept`). Admin only, and once per batch: an unknown
    batch, or one already undone, is a LabelStoreError and nothing is written."""
    require_admin(actor, "undo a bulk accept")
    rows = list(
        session.scalars(
            select(Annotation).where(Annotation.origin == bulk_origin(batch)).order_by(Annotation.pair_id)
        )
    )
    if not rows:
        raise LabelStoreError(f"no bulk accept with batch id {batch!r}")
    already = set(
        session.scalars(
            select(Annotation.undoes_id).where(Annotation.undoes_id.in_([row.id for row in rows]))
        )
    )
    if already:  # one undo per batch: a pair kept then stays kept, and nothing is taken back twice
        raise LabelStoreError(f"the bulk accept {batch} is already undone")
    states = current_states(session, [row.pair_id for row in rows])
    undone, kept = [], []
    for row in rows:
        if states[row.pair_id].revision != row.revision:
            kept.append(row.pair_id)
            continue
        undo_last(
            session,
            row.pair_id,
            annotator=annotator,
            expected_revision=row.revision,
            note=f"undo bulk accept {batch}",
            actor=actor,
        )
        undone.append(row.pair_id)
    return BulkUndone(batch, undone, kept)
