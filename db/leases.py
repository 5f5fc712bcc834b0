"""Work assignment for a team of reviewers: who is handed which pair next.

Review hands out pairs one at a time under a lease. Each pair has `overlap` slots (a per-dataset setting, 1 by
default; 2 or more when a pair should be decided by several people, for agreement); a reviewer's lease takes one
slot, and the database's unique (pair, slot) key decides a race for the last free slot: the losing insert inserts
nothing and the loser moves on to the next pair. A pair goes to a reviewer only when

- the reviewer has not decided or skipped it already (a decision or skip of theirs that no undo took back), and
- fewer than `overlap` distinct reviewers hold it or decided it (any decision still in effect counts, also one made
  before leases existed or outside the Review flow).

A lease lapses after the dataset's `lease_minutes` without activity (renew on every view), is released by a skip
(the slot is free for someone else), and a decision keeps its slot for good (state "decided"; an undo frees it).

With overlap >= 2 several reviewers hold one pair at once, and each judgement is recorded independently
(record_decision): a save on top of a revision that only other slot holders' decisions have moved past is recorded
on the current revision instead of being refused as a concurrent edit, so the pair keeps one revision history, the
newest decision is the label in effect (db.annotations.CurrentState) and db.agreement sees every reviewer's label.
The order is the review queue's (db.review_queue.review_queue: its sort and filters; an admin may assign a
reviewer a queue filter): leases only decide who gets which pair next.

Every function takes a `now` (timezone-aware) so tests move a clock instead of sleeping, and leaves committing to
the caller like every db/ function.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from db.annotations import record_annotation
from db.datasets import require_dataset
from db.errors import ConcurrentEditError, LabelStoreError
from db.loop import LABEL_DECISIONS
from db.models import (
    Annotation,
    EntityPair,
    ReviewAssignment,
    ReviewLease,
    ReviewSettings,
)
from db.review_queue import DEFAULT_QUEUE_SORT, QUEUE_SORTS, QueueFilter, review_queue
from db.roles import Actor, require_admin

DEFAULT_OVERLAP = 1
DEFAULT_LEASE_MINUTES = 10
MAX_OVERLAP = 20
MAX_LEASE_MINUTES = 24 * 60
# the filter fields an admin may assign: status and annotator are the lease rules' business, not a filter's
ASSIGNABLE_FILTER_FIELDS = ("dataset", "split", "predicted_label", "gold_label", "text", "suspects")


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("naive datetime: pass a timezone-aware `now`")
    return now


@dataclass(frozen=True)
class TeamSettings:
    """How a dataset is shared out: `overlap` reviewers decide each pair; a lease lapses after `lease_minutes`."""

    dataset: str
    overlap: int = DEFAULT_OVERLAP
    lease_minutes: int = DEFAULT_LEASE_MINUTES
    set_by: str | None = None  # None: never set (the defaults)


def _whole_number(value, name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise LabelStoreError(f"{name}: {value!r} is not a whole number from {low} to {high}")
    return value


def team_settings(session: Session, dataset: str) -> TeamSettings:
    dataset_row = require_dataset(session, dataset)
    row = session.scalar(select(ReviewSettings).where(ReviewSettings.dataset_id == dataset_row.id))
    if row is None:
        return TeamSettings(dataset)
    return TeamSettings(dataset, row.overlap, row.lease_minutes, row.set_by)


def set_team_settings(
    session: Session, dataset: str, overlap: int, lease_minutes: int, actor: Actor | None = None
) -> TeamSettings:
    """Set a dataset's overlap (reviewers per pair) and lease length; admin only (PermissionDeniedError). Lowering
    the overlap never takes a pair back from whoever holds or decided it: it only stops handing it out further."""
    admin = require_admin(actor, "set how a dataset is shared among reviewers")
    overlap = _whole_number(overlap, "overlap", 1, MAX_OVERLAP)
    lease_minutes = _whole_number(lease_minutes, "lease minutes", 1, MAX_LEASE_MINUTES)
    dataset_row = require_dataset(session, dataset)
    row = session.scalar(select(ReviewSettings).where(ReviewSettings.dataset_id == dataset_row.id))
    if row is None:
        row = ReviewSettings(dataset_id=dataset_row.id)
        session.add(row)
    row.overlap, row.lease_minutes, row.set_by = overlap, lease_minutes, admin.identity
    row.updated_at = datetime.now(UTC)
    session.flush()
    return team_settings(session, dataset)


def _filter_json(queue_filter: QueueFilter) -> dict:
    values = {name: value for name, value in asdict(queue_filter).items() if value not in (None, "")}
    extra = sorted(set(values) - set(ASSIGNABLE_FILTER_FIELDS))
    if extra:
        raise LabelStoreError(
            f"an assigned queue filter may set {', '.join(ASSIGNABLE_FILTER_FIELDS)}; not {', '.join(extra)}"
        )
    return values


def assign_filter(
    session: Session, reviewer: str, queue_filter: QueueFilter | None, actor: Actor | None = None
) -> None:
    """Give `reviewer` a queue filter (the pairs their Review hands out); None removes it. Admin only. The dataset it
    names must exist (a typo must not pass as an empty queue)."""
    admin = require_admin(actor, "assign a queue filter to a reviewer")
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise LabelStoreError("assign a queue filter: the reviewer's identity is empty")
    row = session.scalar(select(ReviewAssignment).where(ReviewAssignment.reviewer == reviewer))
    if queue_filter is None:
        if row is not None:
            session.delete(row)
            session.flush()
        return
    values = _filter_json(queue_filter)
    if queue_filter.dataset:
        require_dataset(session, queue_filter.dataset)
    if row is None:
        row = ReviewAssignment(reviewer=reviewer, queue_filter=values)
        session.add(row)
    row.queue_filter, row.set_by, row.updated_at = values, admin.identity, datetime.now(UTC)
    session.flush()


def _as_filter(values: dict) -> QueueFilter:
    known = {f.name for f in fields(QueueFilter)}
    return QueueFilter(**{name: value for name, value in values.items() if name in known})


def assigned_filter(session: Session, reviewer: str) -> QueueFilter | None:
    row = session.scalar(select(ReviewAssignment).where(ReviewAssignment.reviewer == reviewer.strip()))
    return _as_filter(row.queue_filter) if row is not None else None


def assignments(session: Session) -> dict[str, QueueFilter]:
    """Every reviewer's assigned queue filter, by reviewer."""
    rows = session.scalars(select(ReviewAssignment).order_by(ReviewAssignment.reviewer))
    return {row.reviewer: _as_filter(row.queue_filter) for row in rows}


@dataclass(frozen=True)
class Lease:
    pair_id: int
    reviewer: str
    slot: int
    state: str  # "held" or "decided"
    leased_at: datetime
    expires_at: datetime


def _lease(row: ReviewLease) -> Lease:
    return Lease(row.pair_id, row.reviewer, row.slot, row.state, row.leased_at, row.expires_at)


def expire_leases(session: Session, now: datetime | None = None) -> int:
    """Delete every held lease whose time ran out (their slots are free again); the number deleted."""
    result = session.execute(
        delete(ReviewLease).where(ReviewLease.state == "held", ReviewLease.expires_at <= _now(now))
    )
    return result.rowcount or 0


def _overlaps(session: Session) -> dict[int, tuple[int, int]]:
    """dataset id -> (overlap, lease minutes) for datasets with settings; the others use the defaults."""
    rows = session.execute(
        select(ReviewSettings.dataset_id, ReviewSettings.overlap, ReviewSettings.lease_minutes)
    )
    return {dataset_id: (overlap, minutes) for dataset_id, overlap, minutes in rows}


def _in_effect(session: Session, pair_ids: list[int], statuses: Iterable[str]) -> dict[int, set[str]]:
    """pair id -> annotators with a row of `statuses` on it that is neither an undo nor undone."""
    undone = select(Annotation.undoes_id).where(
        Annotation.undoes_id.is_not(None), Annotation.pair_id.in_(pair_ids)
    )
    rows = session.execute(
        select(Annotation.pair_id, Annotation.annotator)
        .where(
            Annotation.pair_id.in_(pair_ids),
            Annotation.status.in_(tuple(statuses)),
            Annotation.undoes_id.is_(None),
            Annotation.id.not_in(undone),
        )
        .distinct()
    )
    result: dict[int, set[str]] = defaultdict(set)
    for pair_id, annotator in rows:
        result[pair_id].add(annotator)
    return result


def _insert(session: Session):
    return {"postgresql": postgresql_insert, "sqlite": sqlite_insert}[session.get_bind().dialect.name]


def _try_take(
    session: Session, pair_id: int, dataset_id: int, slot: int, reviewer: str, now: datetime, minutes: int
) -> Lease | None:
    """INSERT ... ON CONFLICT DO NOTHING: a slot (or this reviewer's place on the pair) someone took since the read
    inserts nothing and raises nothing, so the caller's transaction stays usable (no savepoint, see
    db.annotations.append_annotation)."""
    expires = now + timedelta(minutes=minutes)
    new_id = session.scalar(
        _insert(session)(ReviewLease)
        .values(
            pair_id=pair_id,
            dataset_id=dataset_id,
            slot=slot,
            reviewer=reviewer,
            state="held",
            leased_at=now,
            last_seen=now,
            expires_at=expires,
        )
        .on_conflict_do_nothing()
        .returning(ReviewLease.id)
    )
    if new_id is None:
        return None
    return Lease(pair_id, reviewer, slot, "held", now, expires)


def take_next(
    session: Session,
    reviewer: str,
    now: datetime | None = None,
    exclude: Iterable[int] = (),
    sort: str = DEFAULT_QUEUE_SORT,
    queue_filter: QueueFilter | None = None,
    page: int = 200,
) -> Lease | None:
    """The next pair for `reviewer` under a lease, or None when nothing is left for them.

    First a lease they still hold on a pair not in `exclude` (a reload picks up where they were), renewed; else the
    first pair in the queue's order (`sort`; `queue_filter`, by default the filter an admin assigned them, else the
    whole store) that the lease rules allow (see the module docstring). Lapsed leases are deleted first.
    """
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise LabelStoreError("take a pair: the reviewer's identity is empty")
    if sort not in QUEUE_SORTS:
        raise LabelStoreError(f"unknown sort {sort!r}; expected one of {', '.join(QUEUE_SORTS)}")
    now = _now(now)
    # a write first: on SQLite it takes the write lock before anything is read, so two takers queue up instead of
    # one of them failing on a stale snapshot
    expire_leases(session, now)
    excluded = set(exclude)
    settings = _overlaps(session)
    own = session.scalars(
        select(ReviewLease)
        .where(ReviewLease.reviewer == reviewer, ReviewLease.state == "held")
        .order_by(ReviewLease.leased_at, ReviewLease.id)
    ).all()
    for row in own:
        if row.pair_id not in excluded:
            minutes = settings.get(row.dataset_id, (DEFAULT_OVERLAP, DEFAULT_LEASE_MINUTES))[1]
            row.last_seen, row.expires_at = now, now + timedelta(minutes=minutes)
            session.flush()
            return _lease(row)
    if queue_filter is None:
        queue_filter = assigned_filter(session, reviewer) or QueueFilter()
    queue_filter = QueueFilter(**{**asdict(queue_filter), "status": None, "annotator": None})
    offset = 0
    while True:
        items = review_queue(session, queue_filter, sort=sort, limit=page, offset=offset)
        if not items:
            return None
        offset += len(items)
        pair_ids = [item.pair_id for item in items if item.pair_id not in excluded]
        if not pair_ids:
            continue
        dataset_of = dict(
            session.execute(
                select(EntityPair.id, EntityPair.dataset_id).where(EntityPair.id.in_(pair_ids))
            ).all()
        )
        holders: dict[int, set[str]] = defaultdict(set)
        slots: dict[int, set[int]] = defaultdict(set)
        for pair_id, slot, holder in session.execute(
            select(ReviewLease.pair_id, ReviewLease.slot, ReviewLease.reviewer).where(
                ReviewLease.pair_id.in_(pair_ids)
            )
        ):
            holders[pair_id].add(holder)
            slots[pair_id].add(slot)
        deciders = _in_effect(session, pair_ids, LABEL_DECISIONS)
        touched = _in_effect(session, pair_ids, (*LABEL_DECISIONS, "skipped"))
        for pair_id in pair_ids:
            if reviewer in holders[pair_id] or reviewer in touched.get(pair_id, ()):
                continue
            overlap, minutes = settings.get(dataset_of[pair_id], (DEFAULT_OVERLAP, DEFAULT_LEASE_MINUTES))
            if len(holders[pair_id] | deciders.get(pair_id, set())) >= overlap:
                continue
            free = [slot for slot in range(overlap) if slot not in slots[pair_id]]
            if not free:
                continue
            lease = _try_take(session, pair_id, dataset_of[pair_id], free[0], reviewer, now, minutes)
            if lease is not None:
                return lease


def renew(session: Session, pair_id: int, reviewer: str, now: datetime | None = None) -> Lease | None:
    """Push back the expiry of `reviewer`'s held lease on the pair (activity); None when they hold none there (it
    lapsed and was taken or deleted, or they never had it)."""
    now = _now(now)
    row = session.scalar(
        select(ReviewLease).where(
            ReviewLease.pair_id == pair_id,
            ReviewLease.reviewer == reviewer.strip(),
            ReviewLease.state == "held",
            ReviewLease.expires_at > now,
        )
    )
    if row is None:
        return None
    minutes = session.scalar(
        select(ReviewSettings.lease_minutes).where(ReviewSettings.dataset_id == row.dataset_id)
    )
    row.last_seen, row.expires_at = now, now + timedelta(minutes=minutes or DEFAULT_LEASE_MINUTES)
    session.flush()
    return _lease(row)


def release(session: Session, pair_id: int, reviewer: str, decided: bool) -> None:
    """After the reviewer's decision (`decided`: their held lease keeps its slot as "decided") or skip (the lease is
    deleted: the slot is free for someone else). Nothing to do when they hold no lease on the pair."""
    reviewer = reviewer.strip()
    mine = (ReviewLease.pair_id == pair_id, ReviewLease.reviewer == reviewer, ReviewLease.state == "held")
    if decided:
        session.execute(update(ReviewLease).where(*mine).values(state="decided"))
    else:
        session.execute(delete(ReviewLease).where(*mine))


def forget_decision(session: Session, pair_id: int, reviewer: str) -> None:
    """An undo took back `reviewer`'s decision on the pair: its slot is free again."""
    session.execute(
        delete(ReviewLease).where(
            ReviewLease.pair_id == pair_id,
            ReviewLease.reviewer == reviewer.strip(),
            ReviewLease.state == "decided",
        )
    )


def release_for(session: Session, annotation: Annotation) -> None:
    """After a review row was written (in its transaction): a decision keeps its reviewer's slot on the pair, a skip
    frees it, an undo frees the slot of the decision it took back."""
    if annotation.undoes_id is not None:
        undone = session.get(Annotation, annotation.undoes_id)
        if undone is not None:
            forget_decision(session, undone.pair_id, undone.annotator)
        return
    release(session, annotation.pair_id, annotation.annotator, decided=annotation.status != "skipped")


def independent_base(session: Session, pair_id: int, reviewer: str, seen_revision: int) -> int:
    """The revision `reviewer`'s save on the pair goes on top of, when they were shown `seen_revision`.

    The pair's current revision when the reviewer holds a slot on the pair (a lease held or decided) and every row
    after `seen_revision` is a decision (accepted, corrected or rejected; no undo) by another reviewer who holds or
    decided another slot of it: with overlap >= 2 those are independent judgements of the same pair, not edits of
    one another's. Otherwise `seen_revision`, so the save is refused as a concurrent edit (ConcurrentEditError):
    the same reviewer saving from two tabs, a reviewer without a slot, a skip or undo in between, or a decision by
    someone without a slot (a bulk accept, a Queue pick beside the leases).
    """
    reviewer = reviewer.strip()
    later = session.execute(
        select(Annotation.revision, Annotation.annotator, Annotation.status, Annotation.undoes_id)
        .where(Annotation.pair_id == pair_id, Annotation.revision > seen_revision)
        .order_by(Annotation.revision)
    ).all()
    if not later:
        return seen_revision
    slot_holders = set(session.scalars(select(ReviewLease.reviewer).where(ReviewLease.pair_id == pair_id)))
    if reviewer not in slot_holders:
        return seen_revision
    for _revision, annotator, status, undoes_id in later:
        if annotator == reviewer or annotator not in slot_holders:
            return seen_revision
        if status not in LABEL_DECISIONS or undoes_id is not None:
            return seen_revision
    return later[-1].revision


def record_decision(
    session: Session, pair_id: int, *, status: str, annotator: str, expected_revision: int, **values
) -> Annotation:
    """A reviewer's decision or skip under the leases, in the caller's transaction: db.annotations.record_annotation
    on top of independent_base (the revision they saw, or the current one when only other slot holders decided
    since), then release_for (a decision keeps the reviewer's slot, a skip frees it). `values`: record_annotation's
    other keywords (label, note, origin, rationale). A save that loses the insert race to another slot holder's
    decision is recorded on top of it; any other change since `expected_revision` raises ConcurrentEditError."""
    base = independent_base(session, pair_id, annotator, expected_revision)
    for _attempt in range(MAX_OVERLAP):
        try:
            annotation = record_annotation(
                session, pair_id, status=status, annotator=annotator, expected_revision=base, **values
            )
        except ConcurrentEditError:
            moved_to = independent_base(session, pair_id, annotator, expected_revision)
            if moved_to == base:  # not only other slots' decisions: the conflict stands
                raise
            base = moved_to
            continue
        release_for(session, annotation)
        return annotation
    raise ConcurrentEditError(pair_id, "other reviewers", base, None)


def live_leases(
    session: Session, now: datetime | None = None, pair_ids: Iterable[int] | None = None
) -> list[Lease]:
    """Held leases that have not lapsed (of `pair_ids` when given)."""
    stmt = select(ReviewLease).where(ReviewLease.state == "held", ReviewLease.expires_at > _now(now))
    if pair_ids is not None:
        stmt = stmt.where(ReviewLease.pair_id.in_(list(pair_ids)))
    return [_lease(row) for row in session.scalars(stmt.order_by(ReviewLease.pair_id, ReviewLease.slot))]


@dataclass(frozen=True)
class ReviewerProgress:
    reviewer: str
    decided: int  # pairs with a decision of theirs in effect (accepted, corrected or rejected)
    skipped: int  # pairs with a skip of theirs in effect
    leased: int  # pairs they hold a live lease on now
    assigned: QueueFilter | None  # the queue filter an admin assigned them


def reviewer_progress(
    session: Session, dataset: str | None = None, now: datetime | None = None
) -> list[ReviewerProgress]:
    """Per reviewer (everyone who decided, skipped, holds a lease or has an assigned filter), of `dataset` or of
    the whole store."""
    now = _now(now)
    dataset_id = require_dataset(session, dataset).id if dataset else None
    undone = select(Annotation.undoes_id).where(Annotation.undoes_id.is_not(None))
    stmt = (
        select(Annotation.annotator, Annotation.pair_id, Annotation.status)
        .where(
            Annotation.status.in_((*LABEL_DECISIONS, "skipped")),
            Annotation.undoes_id.is_(None),
            Annotation.id.not_in(undone),
        )
        .distinct()
    )
    leases = (
        select(ReviewLease.reviewer, func.count())
        .where(ReviewLease.state == "held", ReviewLease.expires_at > now)
        .group_by(ReviewLease.reviewer)
    )
    if dataset_id is not None:
        stmt = stmt.join(EntityPair, EntityPair.id == Annotation.pair_id).where(
            EntityPair.dataset_id == dataset_id
        )
        leases = leases.where(ReviewLease.dataset_id == dataset_id)
    decided: dict[str, set[int]] = defaultdict(set)
    skipped: dict[str, set[int]] = defaultdict(set)
    for annotator, pair_id, status in session.execute(stmt):
        (skipped if status == "skipped" else decided)[annotator].add(pair_id)
    leased = dict(session.execute(leases).all())
    assigned = assignments(session)
    if dataset:
        assigned = {who: f for who, f in assigned.items() if f.dataset in (None, dataset)}
    people = sorted(set(decided) | set(skipped) | set(leased) | set(assigned))
    return [
        ReviewerProgress(
            who, len(decided[who]), len(skipped[who] - decided[who]), leased.get(who, 0), assigned.get(who)
        )
        for who in people
    ]
