"""The load test, short: simulated reviewers in separate processes on one store lose and duplicate nothing; and
the load test's checker does catch lost rows and an undo that cancelled someone else's decision."""

from __future__ import annotations

import pytest

from app.services.store import decide
from benchmarks.bench_load import (
    LoadResult,
    check_handed,
    check_store,
    prepare_store,
    run_load,
    write_corpus,
)
from db.annotations import undo_last
from db.schema import open_database


@pytest.mark.slow
@pytest.mark.parametrize("overlap", [1, 2])
def test_four_reviewers_for_a_few_seconds_lose_and_duplicate_nothing(db_url, overlap):
    result = run_load(
        db_url, backend="test", reviewers=4, seconds=6, n_records=60, hot_pairs=2, overlap=overlap
    )
    assert result.consistent, result
    assert result.counts["save"] > 0 and result.counts["error"] == 0
    assert result.stored_rows == result.counts["save"] + result.counts["undo"]
    # the leased queue handed pairs out, never one to more reviewers at once than the overlap
    assert result.counts["take"] > 0 and result.pairs_handed > 0
    assert result.beyond_overlap == 0 and 1 <= result.most_at_once <= overlap


def test_the_checker_catches_a_pair_held_by_more_reviewers_than_the_overlap():
    def take(who, at):
        return {"kind": "take", "reviewer": who, "pair": 7, "t1": at}

    def save(who, at, status):
        return {"kind": "save", "reviewer": who, "pair": 7, "t0": at, "status": status}

    def checked(entries, overlap):
        result = LoadResult("test", 2, 1, 10, 1, overlap)
        check_handed(entries, result)
        return result.beyond_overlap, result.most_at_once

    # reviewer01 handed the pair while reviewer00 still held it (their skip started after)
    both = [take("reviewer00", 1.0), save("reviewer00", 3.0, "skipped"), take("reviewer01", 2.0)]
    assert checked(both, overlap=1) == (1, 2)
    assert checked(both, overlap=2) == (0, 2)
    # handed on after the skip gave it back: fine
    assert checked(
        [take("reviewer00", 1.0), save("reviewer00", 1.5, "skipped"), take("reviewer01", 2.0)], 1
    ) == (
        0,
        1,
    )
    # a decision keeps the slot; an undo of it gives it back
    decided = [take("reviewer00", 1.0), save("reviewer00", 1.5, "accepted")]
    assert checked([*decided, take("reviewer01", 2.0)], 1) == (1, 2)
    undone = {"kind": "undo", "reviewer": "reviewer00", "pair": 7, "t0": 1.8}
    assert checked([*decided, undone, take("reviewer01", 2.0)], 1) == (0, 1)


def test_the_checker_catches_lost_rows_and_an_undo_of_someone_elses_decision(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    pair_ids = prepare_store(url, write_corpus(tmp_path / "corpus", 5, seed=0))
    engine, sessions = open_database(url, intent="write")
    first = decide(sessions, pair_ids[0], "corrected", "reviewer00", 0, "/per/per/peer")
    second = decide(sessions, pair_ids[0], "corrected", "reviewer01", 1, "None")
    # what the old Review page did: undo against the pair's current revision, not the one reviewer00 saw
    with sessions.begin() as session:
        cancelled = undo_last(session, pair_ids[0], annotator="reviewer00", expected_revision=second.revision)
    engine.dispose()
    entries = [
        {
            "kind": "save",
            "reviewer": "reviewer00",
            "pair": pair_ids[0],
            "revision": 1,
            "status": "corrected",
            "label": first.label,
        },
        {
            "kind": "save",
            "reviewer": "reviewer01",
            "pair": pair_ids[0],
            "revision": 2,
            "status": "corrected",
            "label": second.label,
        },
        {
            "kind": "undo",
            "reviewer": "reviewer00",
            "pair": pair_ids[0],
            "revision": 3,
            "status": cancelled.status,
            "label": cancelled.label,
        },
    ]
    result = LoadResult("test", 2, 1, len(pair_ids), 1)
    check_store(url, entries, result)
    assert (result.lost, result.unacknowledged, result.bad_undos) == (0, 0, 1)
    result = LoadResult("test", 2, 1, len(pair_ids), 1)
    check_store(url, entries[:2], result)  # the undo row is stored but nobody was told: unacknowledged
    assert (result.lost, result.unacknowledged) == (0, 1)
    result = LoadResult("test", 2, 1, len(pair_ids), 1)
    check_store(url, [*entries, {**entries[0], "revision": 4}], result)  # acknowledged but not stored: lost
    assert result.lost == 1 and not result.consistent
