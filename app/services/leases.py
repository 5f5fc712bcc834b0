"""Work assignment for a team of reviewers, as the pages need it (db.leases holds the rules and every write).

Review asks `next_pair` for the reviewer's next pair (a lease on it, in the queue's order, never one another reviewer
holds unless the dataset's overlap asks for more reviewers per pair) and `keep_lease` on every view (activity renews
the lease; it says who has the pair when the reviewer's lease lapsed). app.services.store.decide and undo release
the lease in the decision's own transaction (db.leases.release_for); the Loop page sets the overlap, assigns queue filters and shows each reviewer's progress.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy.orm import sessionmaker

from db.leases import (
    ASSIGNABLE_FILTER_FIELDS,
    MAX_LEASE_MINUTES,
    MAX_OVERLAP,
    TeamSettings,
    assign_filter,
    live_leases,
    renew,
    reviewer_progress,
    set_team_settings,
    take_next,
    team_settings,
)
from db.review_queue import QueueFilter
from db.roles import Actor

__all__ = [
    "ASSIGNABLE_FILTER_FIELDS",
    "MAX_LEASE_MINUTES",
    "MAX_OVERLAP",
    "TeamSettings",
    "assign_queue_filter",
    "assignment_choices",
    "keep_lease",
    "next_pair",
    "peek_next_pair",
    "progress_rows",
    "save_team_settings",
    "settings_of",
]


def next_pair(
    sessions: sessionmaker, reviewer: str, exclude: list[int], now: datetime | None = None
) -> int | None:
    """The pair id Review shows `reviewer` next, under a lease (db.leases.take_next), or None when nothing is left
    for them. `exclude`: the pairs already in their Review session."""
    with sessions.begin() as session:
        lease = take_next(session, reviewer, now=now, exclude=exclude)
    return lease.pair_id if lease is not None else None


def peek_next_pair(sessions: sessionmaker, reviewer: str, exclude: list[int]) -> int | None:
    """The pair id `next_pair` would hand `reviewer` now, without taking it: the same rule (db.leases.take_next) in a
    transaction that is rolled back, so no lease is taken or renewed. Review prepares that pair ahead; by the time
    the reviewer gets there another reviewer may have taken it, and next_pair hands out another one."""
    with sessions() as session:
        try:
            lease = take_next(session, reviewer, exclude=exclude)
        finally:
            session.rollback()
    return lease.pair_id if lease is not None else None


def keep_lease(
    sessions: sessionmaker, pair_id: int, reviewer: str, now: datetime | None = None
) -> str | None:
    """Renew `reviewer`'s lease on the pair they are looking at. None when all is well (renewed, or they hold none
    and nobody else does: a pair they decided, or one picked on the Queue); else a sentence for the page saying who
    holds the pair now."""
    with sessions.begin() as session:
        if renew(session, pair_id, reviewer, now=now) is not None:
            return None
        others = sorted({lease.reviewer for lease in live_leases(session, now, [pair_id])} - {reviewer})
    if not others:
        return None
    return (
        f"{', '.join(others)} {'is' if len(others) == 1 else 'are'} reviewing this pair now: a decision saved here "
        "would be made on top of theirs."
    )


def settings_of(sessions: sessionmaker, dataset: str) -> TeamSettings:
    with sessions() as session:
        return team_settings(session, dataset)


def save_team_settings(
    sessions: sessionmaker, dataset: str, overlap: int, lease_minutes: int, actor: Actor | None
) -> TeamSettings:
    """Admins only (db.roles: PermissionDeniedError, nothing written)."""
    with sessions.begin() as session:
        return set_team_settings(session, dataset, overlap, lease_minutes, actor=actor)


def assign_queue_filter(
    sessions: sessionmaker, reviewer: str, values: dict[str, object] | None, actor: Actor | None
) -> None:
    """Assign `reviewer` the queue filter made of `values` (ASSIGNABLE_FILTER_FIELDS; empty values dropped), or
    remove theirs (None). Admins only."""
    queue_filter = None
    if values is not None:
        queue_filter = QueueFilter(**{k: v for k, v in values.items() if v not in (None, "")})
    with sessions.begin() as session:
        assign_filter(session, reviewer, queue_filter, actor=actor)


@dataclass(frozen=True)
class ProgressRow:
    reviewer: str
    decided: int
    skipped: int
    leased_now: int
    assigned: str  # the assigned filter in words, "" when none


def describe_filter(queue_filter: QueueFilter | None) -> str:
    if queue_filter is None:
        return ""
    return ", ".join(
        f"{name} = {value}" for name, value in asdict(queue_filter).items() if value not in (None, "")
    )


def progress_rows(sessions: sessionmaker, dataset: str | None = None) -> list[ProgressRow]:
    """Each reviewer's decided, skipped and leased-now pairs (of `dataset`) and their assigned filter."""
    with sessions() as session:
        rows = reviewer_progress(session, dataset)
    return [
        ProgressRow(row.reviewer, row.decided, row.skipped, row.leased, describe_filter(row.assigned))
        for row in rows
    ]


def assignment_choices(sessions: sessionmaker) -> dict[str, list[str]]:
    """The splits and gold labels an assigned filter can name (app.services.store.filter_options)."""
    from app.services.store import filter_options

    with sessions() as session:
        return filter_options(session)
