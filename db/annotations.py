"""Review decisions: an append-only history per pair whose highest revision is the pair's current state.

Like every db/ function these take a Session and leave committing to the caller. A lost optimistic-lock race in
record_annotation or undo_last raises ConcurrentEditError with the caller's transaction still usable (the losing insert
inserts nothing, see append_annotation). join_current_annotation is the one place the "current annotation" join is
written; the queue, progress, current states, exports and curation all read the current state through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from db.datasets import require_pair
from db.errors import ConcurrentEditError, LabelStoreError
from db.models import Annotation, Dataset, EntityPair, Post, utcnow
from db.models import Rationale as RationaleRow
from db.rationales import (
    Rationale,
    add_decision_rationale,
    check_pair_rationale,
    decision_rationale,
    from_row,
    in_chunks,
)
from db.spans import Span, check_spans
from db.validate import MAX_IDENTITY

REVIEW_STATUSES = ("accepted", "corrected", "rejected", "skipped")  # what a reviewer can choose
ADDED_ORIGIN = "added"  # the origin of the first decision on a pair a reviewer added (add_pair)


@dataclass(frozen=True)
class CurrentState:
    status: str  # one of ANNOTATION_STATUSES; "unreviewed" when there is no annotation
    label: str | None  # the reviewer's label (None: no decision on the label, the gold label stands)
    revision: int  # 0 when there is no annotation
    annotator: str | None
    # the spans in effect when a decision fixed them (db.spans); None: the pair's own span
    head: Span | None = None
    tail: Span | None = None

    def spans(self, pair: EntityPair | Any) -> tuple[Span, Span]:
        """(head, tail) in effect: the fixed ones, else the pair's own. The one rule the exports
        (db.export_rows.curated_rows), training (db.curation) and Review follow; `pair` is an EntityPair or a row
        with its head_/tail_ start, end and name columns."""
        return (
            self.head or Span(pair.head_start, pair.head_end, pair.head_name),
            self.tail or Span(pair.tail_start, pair.tail_end, pair.tail_name),
        )

    def curated_label(self, gold_label: str | None) -> str | None:
        """The label to train on / export: None means the pair is dropped (rejected, or no label at all)."""
        if self.status == "rejected":
            return None
        return self.label if self.label is not None else gold_label


UNREVIEWED = CurrentState(status="unreviewed", label=None, revision=0, annotator=None)


def current_state(history: Sequence[Annotation]) -> CurrentState:
    """The state a history leads to: its last revision (rows are never edited, so this is the whole derivation)."""
    if not history:
        return UNREVIEWED
    last = max(history, key=lambda annotation: annotation.revision)
    return CurrentState(
        status=last.status,
        label=last.label,
        revision=last.revision,
        annotator=last.annotator,
        head=row_span(last.head_start, last.head_end, last.head_name),
        tail=row_span(last.tail_start, last.tail_end, last.tail_name),
    )


SPAN_COLUMNS = ("head_start", "head_end", "head_name", "tail_start", "tail_end", "tail_name")


def row_span(start: int | None, end: int | None, name: str | None) -> Span | None:
    return None if start is None else Span(start, end, name)


def span_values(pair: EntityPair, head: Span | None, tail: Span | None) -> dict[str, Any]:
    """The span columns of a decision: NULL where the span is the pair's own."""
    if head is not None and head.pos == (pair.head_start, pair.head_end):
        head = None
    if tail is not None and tail.pos == (pair.tail_start, pair.tail_end):
        tail = None
    return {
        "head_start": head and head.start,
        "head_end": head and head.end,
        "head_name": head and head.text,
        "tail_start": tail and tail.start,
        "tail_end": tail and tail.end,
        "tail_name": tail and tail.text,
    }


def pair_history(session: Session, pair_id: int) -> list[Annotation]:
    return list(
        session.scalars(select(Annotation).where(Annotation.pair_id == pair_id).order_by(Annotation.revision))
    )


def check_label(session: Session, pair: EntityPair, label: str) -> None:
    label_map = session.scalar(select(Dataset.label_map).where(Dataset.id == pair.dataset_id))
    if label_map and label not in label_map:
        raise LabelStoreError(
            f"unknown label {label!r}; expected one of the dataset's {len(label_map)} labels"
        )


def append_annotation(
    session: Session, pair: EntityPair, expected_revision: int, **values: Any
) -> Annotation:
    latest = session.scalars(
        select(Annotation).where(Annotation.pair_id == pair.id).order_by(Annotation.revision.desc()).limit(1)
    ).first()
    current_revision = latest.revision if latest else 0
    for column in SPAN_COLUMNS:  # a decision that fixes no span keeps the spans in effect
        values.setdefault(column, getattr(latest, column) if latest is not None else None)
    if current_revision != expected_revision:
        if latest is None:
            raise LabelStoreError(f"pair {pair.id} has no revision {expected_revision}; reload it")
        raise ConcurrentEditError(pair.id, latest.annotator, latest.revision, latest.created_at)
    # INSERT ... ON CONFLICT DO NOTHING on the (pair, revision) key: a save that loses the race between the check
    # above and this insert inserts nothing and raises no database error, so the caller's transaction stays usable
    # (no rollback inside its `sessions.begin()`) and no savepoint is needed (pysqlite would commit at its release).
    dialect_insert = {"postgresql": postgresql_insert, "sqlite": sqlite_insert}[
        session.get_bind().dialect.name
    ]
    new_id = session.scalar(
        dialect_insert(Annotation)
        .values(pair_id=pair.id, revision=expected_revision + 1, **values)
        .on_conflict_do_nothing(index_elements=["pair_id", "revision"])
        .returning(Annotation.id)
    )
    if new_id is None:
        winner = session.scalars(
            select(Annotation)
            .where(Annotation.pair_id == pair.id, Annotation.revision > expected_revision)
            .order_by(Annotation.revision.desc())
            .limit(1)
        ).first()
        if winner is None:  # not visible to this transaction's snapshot: still a conflict, who is unknown
            raise ConcurrentEditError(pair.id, "another reviewer", expected_revision + 1, None)
        raise ConcurrentEditError(pair.id, winner.annotator, winner.revision, winner.created_at)
    return session.get_one(Annotation, new_id)


def record_annotation(
    session: Session,
    pair_id: int,
    *,
    status: str,
    annotator: str,
    expected_revision: int,
    label: str | None = None,
    note: str | None = None,
    origin: str | None = None,
    rationale: Rationale | None = None,
    head: tuple[int, int] | Span | None = None,
    tail: tuple[int, int] | Span | None = None,
) -> Annotation:
    """Append a review decision made on top of `expected_revision` (the revision the reviewer saw).

    accepted: the label shown is right (label defaults to the gold label); corrected: `label` replaces it (a
    correction to the gold label is recorded as accepted: the gold label was right); rejected: the pair itself is
    wrong and leaves the curated data; skipped: no decision, the previous label stays.
    Raises ConcurrentEditError when someone saved the pair after `expected_revision`: never a silent overwrite.
    origin says where the decision was made when not in the plain review flow ("audit": the label-error audit).
    rationale (db.rationales.Rationale, source "reviewer"): why the label holds, stored with this decision and
    checked first (word indices of the post, not the entities'; a box inside the image): a bad one is a
    LabelStoreError naming the field and nothing is stored. A skip without one keeps the previous decision's, as it
    keeps its label.
    head / tail (word positions (start, end), end exclusive): the pair's entity spans fixed with this decision
    (db.spans: inside the post, not empty, head and tail sharing no word); the pair row is never changed, the
    decision carries the spans in effect and later decisions keep them until an undo takes this one back.
    """
    if status not in REVIEW_STATUSES:
        raise LabelStoreError(f"unknown status {status!r}; expected one of {', '.join(REVIEW_STATUSES)}")
    if not annotator or not annotator.strip():
        raise LabelStoreError("an annotation needs the annotator's name")
    pair = require_pair(session, pair_id)
    spans: dict[str, Any] = {}
    in_effect = None
    if head is not None or tail is not None or rationale is not None:
        in_effect = current_state(pair_history(session, pair_id)).spans(pair)
    if head is not None or tail is not None:
        tokens = session.scalar(select(Post.tokens).where(Post.id == pair.post_id))
        in_effect = check_spans(
            head if head is not None else in_effect[0], tail if tail is not None else in_effect[1], tokens
        )
        spans = span_values(pair, *in_effect)
    if rationale is not None:
        if rationale.source != "reviewer":
            raise LabelStoreError("field 'rationale.source': a decision's rationale comes from a 'reviewer'")
        rationale = check_pair_rationale(session, pair, rationale, [s.pos for s in in_effect])
    if status == "accepted" and label is None:
        label = pair.gold_label
    if status == "corrected" and label is not None and label == pair.gold_label:
        status = "accepted"
    if status in ("accepted", "corrected"):
        if label is None:
            raise LabelStoreError(f"status {status!r} needs a label")
        check_label(session, pair, label)
    elif status == "skipped":
        history = pair_history(session, pair_id)
        label = current_state(history).label  # carry the previous decision forward
        if rationale is None and history:
            rationale = decision_rationale(session, history[-1].id)
    else:
        label = None
    annotation = append_annotation(
        session,
        pair,
        expected_revision,
        label=label,
        status=status,
        annotator=annotator.strip(),
        note=note,
        origin=origin,
        **spans,
    )
    if rationale is not None:
        add_decision_rationale(session, annotation, rationale)
    return annotation


def undo_last(
    session: Session,
    pair_id: int,
    *,
    annotator: str,
    expected_revision: int,
    note: str | None = None,
    actor=None,
) -> Annotation:
    """Restore the state before the latest decision that is still in effect, by appending a new row.

    Repeated undos walk further back; an undo is itself never undone by undo (record a new decision instead).
    `actor` (db.roles.Actor): a reviewer undoes only a decision of their own, an admin anyone's
    (PermissionDeniedError otherwise, nothing written); None is the local single user, an admin.
    """
    pair = require_pair(session, pair_id)
    history = pair_history(session, pair_id)
    undone = {annotation.undoes_id for annotation in history if annotation.undoes_id is not None}
    in_effect = [
        annotation for annotation in history if annotation.undoes_id is None and annotation.id not in undone
    ]
    if not in_effect:
        raise LabelStoreError(f"pair {pair_id} has nothing to undo")
    target = in_effect[-1]
    _check_undo_allowed(actor, target)
    before = [annotation for annotation in history if annotation.revision < target.revision]
    restored = current_state(before)
    annotation = append_annotation(
        session,
        pair,
        expected_revision,
        label=restored.label,
        status=restored.status,
        annotator=annotator.strip(),
        note=note or f"undo revision {target.revision}",
        undoes_id=target.id,
        **span_values(pair, restored.head, restored.tail),  # the spans in effect before it, too
    )
    # the restored decision's rationale comes back with its label (a copy on the undo row: rows are never edited)
    restored_rationale = decision_rationale(session, before[-1].id) if before else None
    if restored_rationale is not None:
        add_decision_rationale(session, annotation, restored_rationale)
    return annotation


def _check_undo_allowed(actor, target: Annotation) -> None:
    """A reviewer may undo only a decision they made themselves (the one the undo would take back)."""
    from db.roles import PermissionDeniedError

    if actor is None or actor.is_admin or target.annotator == actor.identity:
        return
    raise PermissionDeniedError(
        f"{actor.identity} is a {actor.role}: the latest decision on pair {target.pair_id} (revision "
        f"{target.revision}) is {target.annotator}'s; only they or an admin may undo it"
    )


def latest_annotation_subquery():
    """(pair_id, revision) of every pair's current annotation."""
    return (
        select(Annotation.pair_id, func.max(Annotation.revision).label("revision"))
        .group_by(Annotation.pair_id)
        .subquery("latest_revision")
    )


def current_annotation_alias():
    """The Annotation alias ("cur") that join_current_annotation fills with each pair's current annotation."""
    return aliased(Annotation, name="cur")


def join_current_annotation(stmt, current, pair_id_column=EntityPair.id):
    """`stmt` outer-joined to each pair's current annotation (highest revision) as `current`.

    The one place the "current annotation" join is written: the queue, progress, current states, exports and
    curation read the current state through it. `current` columns are NULL for pairs never annotated (unreviewed).
    """
    latest = latest_annotation_subquery()
    return stmt.outerjoin(latest, latest.c.pair_id == pair_id_column).outerjoin(
        current, and_(current.pair_id == pair_id_column, current.revision == latest.c.revision)
    )


def current_states(session: Session, pair_ids: Iterable[int] | None = None) -> dict[int, CurrentState]:
    """Current state of many pairs in one query (pairs without annotations are absent: they are UNREVIEWED)."""
    current = current_annotation_alias()
    stmt = join_current_annotation(
        select(
            current.pair_id,
            current.status,
            current.label,
            current.revision,
            current.annotator,
            *(getattr(current, column) for column in SPAN_COLUMNS),
        ).select_from(EntityPair),
        current,
    ).where(current.revision.is_not(None))
    if pair_ids is not None:
        stmt = stmt.where(EntityPair.id.in_(list(pair_ids)))
    return {
        row.pair_id: CurrentState(
            row.status,
            row.label,
            row.revision,
            row.annotator,
            row_span(row.head_start, row.head_end, row.head_name),
            row_span(row.tail_start, row.tail_end, row.tail_name),
        )
        for row in session.execute(stmt)
    }


def current_rationales(session: Session, pair_ids: Iterable[int] | None = None) -> dict[int, Rationale]:
    """pair id -> the rationale of the pair's current decision (absent where the current decision has none)."""
    current = current_annotation_alias()
    stmt = join_current_annotation(select(EntityPair.id, RationaleRow).select_from(EntityPair), current).join(
        RationaleRow, RationaleRow.annotation_id == current.id
    )
    return {pair_id: from_row(row) for pair_id, row in in_chunks(session, stmt, EntityPair.id, pair_ids)}


@dataclass(frozen=True)
class OwnDecision:
    """A decision of one reviewer that is still in effect on its pair: what their next undo takes back."""

    pair_id: int
    annotation_id: int
    revision: int  # the decision's own revision
    current_revision: int  # the pair's current revision (an undo is checked against it)
    status: str
    label: str | None


def own_decisions_in_effect(
    session: Session, annotator: str, limit: int = 20, exclude_origin_prefix: str | None = "bulk:"
) -> list[OwnDecision]:
    """The reviewer's undo stack, from the store's history (so it survives a reload): their decisions that are
    still in effect, most recent first.

    A pair's decision in effect is the one undo_last would take back: its latest decision that no undo has taken
    back. It counts here only when `annotator` made it, so a pair someone else decided after them is not theirs to
    undo any more; after an undo their earlier decision on the pair is in effect again and comes back into the
    stack at its own time. Decisions whose origin starts with `exclude_origin_prefix` (a bulk accept, undone as one
    batch by db.bulk_review.undo_bulk_accept) are left out.
    """
    name = annotator.strip()
    undone = select(Annotation.undoes_id).where(Annotation.undoes_id.is_not(None))
    touched = select(Annotation.pair_id).where(Annotation.annotator == name).distinct()
    in_effect = (
        select(Annotation.pair_id, func.max(Annotation.revision).label("revision"))
        .where(Annotation.undoes_id.is_(None), Annotation.id.not_in(undone), Annotation.pair_id.in_(touched))
        .group_by(Annotation.pair_id)
        .subquery("in_effect")
    )
    current = current_annotation_alias()
    stmt = (
        join_current_annotation(
            select(Annotation, current.revision).join(
                in_effect,
                and_(Annotation.pair_id == in_effect.c.pair_id, Annotation.revision == in_effect.c.revision),
            ),
            current,
            pair_id_column=Annotation.pair_id,
        )
        .where(Annotation.annotator == name)
        .order_by(Annotation.id.desc())
        .limit(limit)
    )
    if exclude_origin_prefix:
        stmt = stmt.where(
            Annotation.origin.is_(None) | Annotation.origin.not_like(f"{exclude_origin_prefix}%")
        )
    return [
        OwnDecision(row.pair_id, row.id, row.revision, current, row.status, row.label)
        for row, current in session.execute(stmt)
    ]


def add_pair(
    session: Session,
    post_id: int,
    *,
    dataset: str,
    head: tuple[int, int] | Span,
    tail: tuple[int, int] | Span,
    label: str,
    annotator: str,
    split: str | None = None,
    note: str | None = None,
) -> tuple[EntityPair, Annotation]:
    """Add a (head, tail) pair to a stored post of `dataset`, labelled `label` by `annotator`.

    The pair records who added it and when (added_by, added_at) and has no gold label: its label is a decision
    (status "corrected", revision 1, origin "added"), so it is in the queue, the history and every export like any
    reviewed pair, and undo takes the label back (the pair stays, unreviewed). `split`: where it goes (default: the
    split of the post's other pairs). Refused with a LabelStoreError naming the field: a post of another dataset
    ('post'), spans out of the post, empty or overlapping ('head' / 'tail'), a pair the post already has with these
    spans in effect ('head'), an unknown label ('label').
    """
    if not annotator or not annotator.strip():
        raise LabelStoreError("field 'annotator': adding a pair needs the reviewer's name")
    if len(annotator.strip()) > MAX_IDENTITY:
        raise LabelStoreError(f"field 'annotator': longer than {MAX_IDENTITY} characters")
    post = session.get(Post, post_id)
    if post is None:
        raise LabelStoreError(f"field 'post': no post with id {post_id}")
    dataset_row = session.scalar(select(Dataset).where(Dataset.name == dataset))
    if dataset_row is None:
        raise LabelStoreError(f"field 'dataset': no dataset named {dataset!r} in the label store")
    if post.dataset_id != dataset_row.id:
        raise LabelStoreError(f"field 'post': post {post_id} belongs to another dataset than {dataset!r}")
    head_span, tail_span = check_spans(head, tail, post.tokens)
    if not isinstance(label, str) or not label:
        raise LabelStoreError("field 'label': a pair is added with its label")
    if dataset_row.label_map and label not in dataset_row.label_map:
        raise LabelStoreError(
            f"field 'label': unknown label {label!r}; expected one of the dataset's {len(dataset_row.label_map)} labels"
        )
    others = list(
        session.scalars(select(EntityPair).where(EntityPair.post_id == post_id).order_by(EntityPair.id))
    )
    states = current_states(session, [pair.id for pair in others])
    for other in others:
        other_head, other_tail = states.get(other.id, UNREVIEWED).spans(other)
        if (other_head.pos, other_tail.pos) == (head_span.pos, tail_span.pos):
            raise LabelStoreError(
                f"field 'head': post {post_id} already has the pair {head_span.text!r} -> {tail_span.text!r} "
                f"(pair {other.id}); review that one instead"
            )
    if split is None:
        if not others:
            raise LabelStoreError(f"field 'split': post {post_id} has no pair to take a split from; name one")
        split = others[0].split
    now = utcnow()
    pair = EntityPair(
        post_id=post_id,
        dataset_id=dataset_row.id,
        split=split,
        source_key=f"added:{post_id}:{head_span.start}-{head_span.end}:{tail_span.start}-{tail_span.end}:"
        f"{now.strftime('%Y%m%dT%H%M%S%f')}",
        source_line=None,
        head_name=head_span.text,
        head_start=head_span.start,
        head_end=head_span.end,
        tail_name=tail_span.text,
        tail_start=tail_span.start,
        tail_end=tail_span.end,
        gold_label=None,
        raw_line=None,
        added_by=annotator.strip(),
        added_at=now,
    )
    session.add(pair)
    session.flush()
    annotation = record_annotation(
        session,
        pair.id,
        status="corrected",
        label=label,
        annotator=annotator,
        expected_revision=0,
        note=note,
        origin=ADDED_ORIGIN,
    )
    return pair, annotation
