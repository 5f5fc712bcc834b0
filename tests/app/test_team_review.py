"""Working as a team: a decision or skip through the
store's decide releases the lease in its own transaction, an undo frees the slot; on the Loop page an admin sets
the overlap and assigns a queue filter, and everyone sees progress per reviewer."""

from __future__ import annotations

from sqlalchemy import delete

from db.leases import assigned_filter, live_leases, take_next, team_settings
from db.models import ReviewLease
from db.review_queue import QueueFilter
from db.schema import open_database
from tests.app.conftest import no_exceptions

LOOP = "views/loop.py"


def test_decide_and_undo_through_the_store_release_and_free_the_lease(seeded_url):
    from app.services.store import decide, undo

    engine, sessions = open_database(seeded_url)
    try:
        with sessions.begin() as session:
            first = take_next(session, "ann")
        decide(sessions, first.pair_id, "accepted", "ann", 0)
        with sessions.begin() as session:
            assert take_next(session, "bob").pair_id != first.pair_id  # overlap 1: decided is done
            assert not live_leases(session, pair_ids=[first.pair_id])
        undo(sessions, first.pair_id, "ann", 1)
        with sessions.begin() as session:
            assert take_next(session, "cyd").pair_id == first.pair_id  # the undo freed the slot
        decide(sessions, first.pair_id, "skipped", "cyd", 2)
        with sessions.begin() as session:
            assert take_next(session, "dan").pair_id == first.pair_id  # a skip hands it on
    finally:
        engine.dispose()


def test_an_admin_sets_the_overlap_and_assigns_a_filter_and_progress_shows(make_app, seeded_url):
    at = make_app(seeded_url, LOOP)
    at.number_input(key="loop_overlap").set_value(2)
    at.number_input(key="loop_lease").set_value(5)
    next(b for b in at.button if b.label == "Save how pairs are shared").click().run()
    no_exceptions(at)
    assert any("goes to 2 reviewer(s)" in s.value for s in at.success)
    at.text_input(key="loop_assignee").set_value("bob")
    at.selectbox(key="loop_assign_split").set_value("val")
    next(b for b in at.button if b.label == "Assign this filter").click().run()
    no_exceptions(at)
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        assert (
            team_settings(session, "synthetic").overlap,
            team_settings(session, "synthetic").lease_minutes,
        ) == (2, 5)
        assert assigned_filter(session, "bob") == QueueFilter(dataset="synthetic", split="val")
        take_next(session, "bob")
    engine.dispose()
    at.run()
    table = next(frame.value for frame in at.dataframe if "leased now" in frame.value.columns)
    row = table[table["reviewer"] == "bob"].iloc[0]
    assert row["leased now"] == 1 and row["assigned filter"] == "dataset = synthetic, split = val"


def test_review_warns_when_a_pair_picked_on_the_queue_is_held_by_someone_else(make_app, seeded_url):
    """A Queue pick or a shared link opens a pair without a lease: Review says who holds it; a pair nobody holds
    shows no warning."""
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        held = take_next(session, "ann").pair_id
        free = take_next(session, "bob").pair_id
        bob = next(lease for lease in live_leases(session) if lease.reviewer == "bob")
        session.execute(delete(ReviewLease).where(ReviewLease.pair_id == bob.pair_id))  # bob let it go
    engine.dispose()
    at = make_app(seeded_url)
    at.session_state["review"].open(held)
    at.switch_page("views/review.py").run()
    no_exceptions(at)
    assert [w.value for w in at.warning if "reviewing this pair now" in w.value] == [
        "ann is reviewing this pair now: a decision saved here would be made on top of theirs."
    ]
    at = make_app(seeded_url)
    at.session_state["review"].open(free)
    at.switch_page("views/review.py").run()
    no_exceptions(at)
    assert not [w.value for w in at.warning if "reviewing this pair now" in w.value]
