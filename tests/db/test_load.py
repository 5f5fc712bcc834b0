"""The load test, short: simulated reviewers in separate processes on one store lose and duplicate nothing; and
the load test's checker does catch lost rows and an undo that cancelled someone else's decision."""

from __future__ import annotations

import pytest

from app.services.store import decide
from benchmarks.bench_load import LoadResult, check_store, prepare_store, run_load, write_corpus
from db.annotations import undo_last
from db.schema import open_database


@pytest.mark.slow
def test_four_reviewers_for_a_few_seconds_lose_and_duplicate_nothing(db_url):
    result = run_load(db_url, backend="test", reviewers=4, seconds=6, n_records=60, hot_pairs=2)
    assert result.consistent, result
    assert result.counts["save"] > 0 and result.counts["error"] == 0
    assert result.stored_rows == result.counts["save"] + result.counts["undo"]


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
