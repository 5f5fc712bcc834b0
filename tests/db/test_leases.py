"""Work assignment: leases hand each pair to at most `overlap` distinct reviewers, in the queue's order; a lapsed
lease hands the pair on; a race for the last slot has one winner (SQLite file and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select

from db.agreement import decisions as agreement_decisions
from db.annotations import current_state, pair_history, record_annotation, undo_last
from db.errors import ConcurrentEditError, LabelStoreError
from db.io import import_mnre
from db.leases import (
    Lease,
    assign_filter,
    assigned_filter,
    expire_leases,
    forget_decision,
    live_leases,
    record_decision,
    release,
    renew,
    reviewer_progress,
    set_team_settings,
    take_next,
    team_settings,
)
from db.models import EntityPair, ReviewLease
from db.review_queue import QueueFilter, review_queue
from db.roles import Actor, PermissionDeniedError
from tests.db.conftest import write_mini_mnre

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def imported(sessions, mini_mnre):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre, dataset="mini")
    with sessions() as session:
        order = [item.pair_id for item in review_queue(session, limit=100)]
    return sessions, order


def take(sessions, reviewer, now=T0, **kwargs) -> Lease | None:
    with sessions.begin() as session:
        return take_next(session, reviewer, now=now, **kwargs)


def decide(sessions, pair_id, reviewer, status="rejected"):
    """A decision through the store, as app.services.store.decide makes it: on the current revision, lease released."""
    with sessions.begin() as session:
        latest = session.scalars(select(EntityPair).where(EntityPair.id == pair_id)).one()
        revision = max((a.revision for a in latest.annotations), default=0)
        record_annotation(session, pair_id, status=status, annotator=reviewer, expected_revision=revision)
        release(session, pair_id, reviewer, decided=status != "skipped")


def set_overlap(sessions, overlap, minutes=10):
    with sessions.begin() as session:
        set_team_settings(session, "mini", overlap, minutes)


def test_two_reviewers_never_get_the_same_pair_with_overlap_one(imported):
    sessions, order = imported
    handed: list[tuple[str, int]] = []
    for turn in range(len(order) + 3):
        reviewer = ("ann", "bob")[turn % 2]
        lease = take(sessions, reviewer, exclude=[pair for who, pair in handed if who == reviewer])
        if lease is None:
            continue
        handed.append((reviewer, lease.pair_id))
        if turn % 3 == 0:  # some pairs decided, some still held while the other takes
            decide(sessions, lease.pair_id, reviewer)
    pairs = [pair for _, pair in handed]
    assert sorted(pairs) == sorted(order)  # every pair handed out once, none twice
    assert take(sessions, "cyd") is None  # every pair is held or decided


def test_the_queue_order_stays_the_order(imported):
    sessions, order = imported
    first = take(sessions, "ann")
    second = take(sessions, "bob")
    third = take(sessions, "ann", exclude=[first.pair_id])
    assert [first.pair_id, second.pair_id, third.pair_id] == order[:3]


def test_a_held_lease_comes_back_after_a_reload_and_is_renewed(imported):
    sessions, order = imported
    first = take(sessions, "ann")
    again = take(sessions, "ann", now=T0 + timedelta(minutes=5))  # a fresh browser session excludes nothing
    assert again.pair_id == first.pair_id and again.expires_at == T0 + timedelta(minutes=15)


def test_overlap_two_gives_each_pair_to_exactly_two_distinct_reviewers(imported):
    sessions, order = imported
    set_overlap(sessions, 2)
    got: dict[int, list[str]] = {}
    reviewers = ["ann", "bob", "cyd"]
    for _round in range(len(order) * 2):
        for reviewer in reviewers:
            lease = take(sessions, reviewer)  # each decides before taking again: nothing held to exclude
            if lease is not None:
                got.setdefault(lease.pair_id, []).append(reviewer)
                decide(sessions, lease.pair_id, reviewer, "accepted")
    assert set(got) == set(order)
    assert all(len(who) == 2 and len(set(who)) == 2 for who in got.values()), got
    assert all(take(sessions, reviewer) is None for reviewer in [*reviewers, "dan"])


def test_a_pair_decided_before_leases_counts_and_is_not_handed_to_its_decider(imported):
    sessions, order = imported
    decide(sessions, order[0], "ann", "accepted")  # outside any lease (Queue pick, import, older store)
    assert take(sessions, "bob").pair_id == order[1]  # overlap 1: decided by anyone is done
    set_overlap(sessions, 2)
    assert take(sessions, "cyd").pair_id == order[0]  # a second reviewer for agreement
    # never their own decision again: the second slot of bob's pair
    assert take(sessions, "ann").pair_id == order[1]


def test_expiry_hands_a_pair_on_and_the_late_owner_cannot_renew_it(imported):
    sessions, order = imported
    set_overlap(sessions, 1, minutes=10)
    held = take(sessions, "ann")
    assert take(sessions, "bob", now=T0 + timedelta(minutes=9)).pair_id != held.pair_id
    with sessions.begin() as session:  # activity keeps it
        assert renew(session, held.pair_id, "ann", now=T0 + timedelta(minutes=9)) is not None
    later = T0 + timedelta(minutes=19, seconds=1)  # 10 minutes after the renewal
    cyd = take(sessions, "cyd", now=later)
    assert cyd.pair_id == held.pair_id
    with sessions.begin() as session:
        assert renew(session, held.pair_id, "ann", now=later) is None
        assert [(lease.pair_id, lease.reviewer) for lease in live_leases(session, later, [held.pair_id])] == [
            (held.pair_id, "cyd")
        ]


def test_skip_frees_the_pair_for_others_but_not_for_the_skipper(imported):
    sessions, order = imported
    first = take(sessions, "ann")
    decide(sessions, first.pair_id, "ann", "skipped")
    assert take(sessions, "bob").pair_id == first.pair_id
    decide(sessions, first.pair_id, "bob", "skipped")
    assert take(sessions, "ann").pair_id != first.pair_id


def test_undo_frees_the_slot(imported):
    sessions, order = imported
    first = take(sessions, "ann")
    decide(sessions, first.pair_id, "ann", "accepted")
    assert take(sessions, "bob").pair_id != first.pair_id
    with sessions.begin() as session:
        undone = undo_last(session, first.pair_id, annotator="ann", expected_revision=1)
        forget_decision(session, first.pair_id, "ann")
    assert undone.status == "unreviewed"
    assert take(sessions, "cyd").pair_id == first.pair_id


def test_the_database_refuses_a_second_lease_on_a_taken_slot(imported):
    sessions, order = imported
    lease = take(sessions, "ann")
    with pytest.raises(Exception, match="(?i)unique|duplicate"), sessions.begin() as session:
        session.add(
            ReviewLease(
                pair_id=lease.pair_id,
                dataset_id=session.scalar(
                    select(EntityPair.dataset_id).where(EntityPair.id == lease.pair_id)
                ),
                slot=0,
                reviewer="bob",
                state="held",
                leased_at=T0,
                last_seen=T0,
                expires_at=T0 + timedelta(minutes=10),
            )
        )
        session.flush()


def test_a_lost_race_for_the_slot_moves_on_to_the_next_pair(imported):
    """bob commits a lease on the first pair between ann's read and her insert: her insert inserts nothing and she
    gets the next pair, in the same transaction."""
    sessions, order = imported
    engine = sessions.kw["bind"]
    fired: list[bool] = []

    def bob_first(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO REVIEW_LEASES") and not fired:
            fired.append(True)
            with sessions.begin() as bob:
                bob.add(
                    ReviewLease(
                        pair_id=order[0],
                        dataset_id=bob.scalar(select(EntityPair.dataset_id).where(EntityPair.id == order[0])),
                        slot=0,
                        reviewer="bob",
                        state="held",
                        leased_at=T0,
                        last_seen=T0,
                        expires_at=T0 + timedelta(minutes=10),
                    )
                )

    if engine.dialect.name == "sqlite":
        pytest.skip(
            "SQLite: ann holds the write lock from her first statement, so bob cannot commit in between"
        )
    event.listen(engine, "before_cursor_execute", bob_first)
    try:
        ann = take(sessions, "ann")
    finally:
        event.remove(engine, "before_cursor_execute", bob_first)
    assert fired and ann.pair_id == order[1]
    with sessions() as session:
        assert {(lease.pair_id, lease.reviewer) for lease in live_leases(session, T0)} == {
            (order[0], "bob"),
            (order[1], "ann"),
        }


@pytest.mark.parametrize("overlap", [1, 2])
def test_racing_takes_in_threads_hand_each_pair_to_at_most_overlap_reviewers(db_url, tmp_path, overlap):
    from db.schema import open_database

    engine, sessions = open_database(db_url)
    try:
        with sessions.begin() as session:
            import_mnre(session, write_mini_mnre(tmp_path / "race"), dataset="mini")
            set_team_settings(session, "mini", overlap, 10)
        reviewers = [f"r{i}" for i in range(6)]
        barrier = threading.Barrier(len(reviewers))
        got: dict[str, list[int]] = {reviewer: [] for reviewer in reviewers}
        errors: list[BaseException] = []

        def work(reviewer: str) -> None:
            try:
                barrier.wait()
                for _ in range(4):
                    lease = take(sessions, reviewer, exclude=got[reviewer])
                    if lease is not None:
                        got[reviewer].append(lease.pair_id)
            except BaseException as err:  # reported by the assertion below, with the reviewer
                errors.append(err)

        threads = [threading.Thread(target=work, args=(reviewer,)) for reviewer in reviewers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        per_pair: dict[int, list[str]] = {}
        for reviewer, pairs in got.items():
            for pair_id in pairs:
                per_pair.setdefault(pair_id, []).append(reviewer)
        assert all(len(who) <= overlap for who in per_pair.values()), per_pair
        assert sum(len(who) for who in per_pair.values()) == 7 * overlap  # 7 pairs, every slot handed out
    finally:
        engine.dispose()


def test_only_an_admin_sets_overlap_and_assigns_filters(imported):
    sessions, order = imported
    reviewer = Actor("bob@example.org", "reviewer")
    with pytest.raises(PermissionDeniedError, match="only an admin"), sessions.begin() as session:
        set_team_settings(session, "mini", 2, 10, actor=reviewer)
    with pytest.raises(PermissionDeniedError, match="only an admin"), sessions.begin() as session:
        assign_filter(session, "bob@example.org", QueueFilter(split="val"), actor=reviewer)
    with pytest.raises(LabelStoreError, match="overlap: 0"), sessions.begin() as session:
        set_team_settings(session, "mini", 0, 10)
    with pytest.raises(LabelStoreError, match="not status"), sessions.begin() as session:
        assign_filter(session, "bob", QueueFilter(status="accepted"))
    with pytest.raises(LabelStoreError, match="no dataset named 'nope'"), sessions.begin() as session:
        assign_filter(session, "bob", QueueFilter(dataset="nope"))
    with sessions() as session:
        assert team_settings(session, "mini").overlap == 1 and assigned_filter(session, "bob") is None


def test_an_assigned_filter_decides_which_pairs_a_reviewer_gets(imported):
    sessions, order = imported
    with sessions.begin() as session:
        assign_filter(session, "bob", QueueFilter(split="val"), actor=Actor("boss", "admin"))
        val_pairs = {p.id for p in session.scalars(select(EntityPair).where(EntityPair.split == "val"))}
    got = []
    while (lease := take(sessions, "bob")) is not None:
        got.append(lease.pair_id)
        decide(sessions, lease.pair_id, "bob")
    assert set(got) == val_pairs
    with sessions() as session:
        rows = {p.reviewer: p for p in reviewer_progress(session, "mini", now=T0)}
    assert rows["bob"].decided == 2 and rows["bob"].assigned == QueueFilter(split="val")


def test_progress_per_reviewer(imported):
    sessions, order = imported
    a = take(sessions, "ann")
    decide(sessions, a.pair_id, "ann", "accepted")
    b = take(sessions, "ann")
    decide(sessions, b.pair_id, "ann", "skipped")
    take(sessions, "ann")
    take(sessions, "bob")
    with sessions() as session:
        rows = {p.reviewer: (p.decided, p.skipped, p.leased) for p in reviewer_progress(session, now=T0)}
        lapsed = {p.reviewer: p.leased for p in reviewer_progress(session, now=T0 + timedelta(hours=1))}
    assert rows == {"ann": (1, 1, 1), "bob": (0, 0, 1)}
    assert lapsed == {"ann": 0}  # a lapsed lease is no one's: bob, with nothing else, drops out


# Random interleavings: take / decide / skip / undo / time passing, three reviewers, overlap 1 to 3. After every
# step, no pair is held or decided by more reviewers than the overlap, and no one is handed a pair they decided.
STEPS = st.lists(
    st.tuples(
        st.sampled_from(["take", "take", "decide", "skip", "undo", "wait"]),
        st.sampled_from(["ann", "bob", "cyd"]),
        st.integers(0, 12),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(overlap=st.integers(1, 3), steps=STEPS)
def test_random_interleavings_never_hand_a_pair_out_beyond_the_overlap(tmp_path_factory, overlap, steps):
    from db.schema import open_database

    url = f"sqlite:///{tmp_path_factory.mktemp('leases') / 'store.db'}"
    engine, sessions = open_database(url, intent="create")
    try:
        with sessions.begin() as session:
            import_mnre(session, write_mini_mnre(tmp_path_factory.mktemp("mnre")), dataset="mini")
            set_team_settings(session, "mini", overlap, 10)
        now = T0
        held: dict[str, list[int]] = {"ann": [], "bob": [], "cyd": []}
        decided: dict[int, set[str]] = {}
        last_decision: dict[str, int] = {}
        for action, reviewer, minutes in steps:
            if action == "wait":
                now += timedelta(minutes=minutes)
            elif action == "take":
                lease = take(sessions, reviewer, now=now, exclude=held[reviewer])
                if lease is not None:
                    assert reviewer not in decided.get(lease.pair_id, set())
                    held[reviewer].append(lease.pair_id)
            elif action in ("decide", "skip") and held[reviewer]:
                pair_id = held[reviewer].pop(0)
                with sessions.begin() as session:
                    mine = renew(session, pair_id, reviewer, now=now)
                if mine is None:
                    continue  # the lease lapsed: Review says so and does not save
                decide(sessions, pair_id, reviewer, "accepted" if action == "decide" else "skipped")
                if action == "decide":
                    decided.setdefault(pair_id, set()).add(reviewer)
                    last_decision[reviewer] = pair_id
            elif action == "undo" and reviewer in last_decision:
                pair_id = last_decision.pop(reviewer)
                with sessions.begin() as session:
                    history = session.get(EntityPair, pair_id).annotations
                    latest = max(history, key=lambda a: a.revision)
                    if latest.annotator != reviewer or latest.undoes_id is not None:
                        continue
                    undo_last(session, pair_id, annotator=reviewer, expected_revision=latest.revision)
                    forget_decision(session, pair_id, reviewer)
                decided[pair_id].discard(reviewer)
            with sessions() as session:
                holders: dict[int, set[str]] = {}
                for lease in live_leases(session, now):
                    holders.setdefault(lease.pair_id, set()).add(lease.reviewer)
                for pair_id in set(holders) | set(decided):
                    both = holders.get(pair_id, set()) | decided.get(pair_id, set())
                    assert len(both) <= overlap, (pair_id, both)
                    assert not holders.get(pair_id, set()) & decided.get(pair_id, set())
        with sessions.begin() as session:
            expire_leases(session, now + timedelta(days=1))
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------------------------------------
# Overlap >= 2: each slot holder's judgement is recorded, not refused as a concurrent edit


def save(sessions, pair_id, reviewer, seen_revision, status="accepted", label=None):
    """A save as app.services.store.decide makes it: on the revision the reviewer was shown."""
    with sessions.begin() as session:
        return record_decision(
            session, pair_id, status=status, annotator=reviewer, expected_revision=seen_revision, label=label
        ).revision


@pytest.mark.parametrize("first, second", [("ann", "bob"), ("bob", "ann")])
def test_overlap_two_records_both_slot_holders_judgements(imported, first, second):
    sessions, order = imported
    set_overlap(sessions, 2)
    ann, bob = take(sessions, "ann"), take(sessions, "bob")
    assert ann.pair_id == bob.pair_id == order[0] and {ann.slot, bob.slot} == {0, 1}
    labels = {"ann": "/per/per/peer", "bob": "/loc/loc/contain"}
    assert save(sessions, order[0], first, 0, "corrected", labels[first]) == 1
    # the second reviewer was shown revision 0 too: recorded on top of the first one's decision, no conflict
    assert save(sessions, order[0], second, 0, "corrected", labels[second]) == 2
    with sessions() as session:
        history = pair_history(session, order[0])
        assert [(a.revision, a.annotator, a.label) for a in history] == [
            (1, first, labels[first]),
            (2, second, labels[second]),
        ]
        assert current_state(history).label == labels[second]  # the newest decision is the label in effect
        assert agreement_decisions(session, "mini")[order[0]] == labels
        assert {lease.reviewer for lease in session.scalars(select(ReviewLease))} == {"ann", "bob"}
        assert {lease.state for lease in session.scalars(select(ReviewLease))} == {"decided"}


def test_overlap_one_a_late_save_after_the_pair_was_handed_on_is_a_conflict(imported):
    sessions, order = imported
    set_overlap(sessions, 1, minutes=10)
    assert take(sessions, "ann").pair_id == order[0]
    later = T0 + timedelta(minutes=11)  # ann's lease lapsed: the pair goes to bob
    assert take(sessions, "bob", now=later).pair_id == order[0]
    save(sessions, order[0], "bob", 0, "rejected")
    with pytest.raises(ConcurrentEditError, match="bob"):
        save(sessions, order[0], "ann", 0)
    with sessions() as session:
        assert [a.annotator for a in pair_history(session, order[0])] == ["bob"]


def test_overlap_two_a_reviewer_without_a_slot_still_conflicts(imported):
    sessions, order = imported
    set_overlap(sessions, 2)
    take(sessions, "ann")
    save(sessions, order[0], "ann", 0, "rejected")
    with pytest.raises(ConcurrentEditError, match="ann"):  # cyd opened the pair from the Queue: no lease
        save(sessions, order[0], "cyd", 0)
    take(sessions, "bob")
    with (
        sessions.begin() as session
    ):  # a decision by someone without a slot moves the pair: bob's save conflicts
        record_annotation(session, order[0], status="rejected", annotator="cyd", expected_revision=1)
    with pytest.raises(ConcurrentEditError, match="cyd"):
        save(sessions, order[0], "bob", 1)
    with sessions() as session:
        assert [a.annotator for a in pair_history(session, order[0])] == ["ann", "cyd"]


def test_overlap_two_the_same_reviewer_in_two_tabs_still_conflicts(imported):
    sessions, order = imported
    set_overlap(sessions, 2)
    take(sessions, "ann")
    take(sessions, "bob")
    save(sessions, order[0], "ann", 0, "rejected")  # first tab
    with pytest.raises(ConcurrentEditError, match="ann"):
        save(sessions, order[0], "ann", 0)  # second tab, shown revision 0
    save(sessions, order[0], "bob", 0, "skipped")  # a skip frees bob's slot ...
    take(sessions, "cyd")
    with pytest.raises(
        ConcurrentEditError, match="bob"
    ):  # ... so cyd's save on revision 1 is not on top of it
        save(sessions, order[0], "cyd", 1)


def test_a_save_that_loses_the_insert_race_to_another_slot_is_recorded_on_top(imported):
    """bob commits his decision between ann's read of the pair and her insert: her insert inserts nothing, and she
    is recorded on top of bob in the same transaction."""
    sessions, order = imported
    engine = sessions.kw["bind"]
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite: ann holds the write lock from her insert on, bob cannot commit in between")
    set_overlap(sessions, 2)
    take(sessions, "ann")
    take(sessions, "bob")
    fired: list[bool] = []

    def bob_first(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO ANNOTATIONS") and not fired:
            fired.append(True)
            save(sessions, order[0], "bob", 0, "rejected")

    event.listen(engine, "before_cursor_execute", bob_first)
    try:
        revision = save(sessions, order[0], "ann", 0, "accepted")
    finally:
        event.remove(engine, "before_cursor_execute", bob_first)
    assert fired and revision == 2
