"""The simulated annotation loop: each strategy picks what its definition says (checked against small-text's
implementations on hand-made probability tables), never a pair already labelled, and a whole simulation runs the
real selection, label store and training path on a tiny text-decided set."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from small_text.query_strategies import BreakingTies, PredictionEntropy

from app.services.annotation_loop import (
    LOOP_DATASET,
    QUERY_STRATEGIES,
    LoopCurve,
    LoopSettings,
    RoundResult,
    area_under_curve,
    expected_gain,
    labels_to_reach,
    load_loop_data,
    pick_batch,
    reveal,
    simulate,
    summarize_curves,
    unlabelled_pairs,
    winning_strategy,
)
from db.io import import_mnre
from db.provenance import register_model_version, save_predictions
from db.schema import open_database
from model.query_strategies import kmeans_positions
from tests.model.test_crossfit import tiny_recipe
from tests.text_decided_data import LABELS, write_text_decided


@pytest.fixture
def store(tmp_path):
    data = write_text_decided(tmp_path / "data", n_train=40, n_val=10, seed=3)
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'store.db'}")
    with sessions.begin() as session:
        import_mnre(session, data, splits=["train"], dataset=LOOP_DATASET)
    with sessions() as session:
        pairs = unlabelled_pairs(session, LOOP_DATASET)
    yield sessions, pairs
    engine.dispose()


def hand_made_table(n: int, seed: int) -> np.ndarray:
    """Distinct probability rows over the 5 labels (no ties in margin or entropy)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, len(LABELS))) * rng.uniform(0.2, 4.0, size=(n, 1))
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)


def store_table(sessions, pairs, table) -> int:
    with sessions.begin() as session:
        key = register_model_version(session, "loop-test", "/models/loop-test", "ifaformer").id
        save_predictions(
            session,
            key,
            [
                {"pair_id": pair_id, "probabilities": dict(zip(LABELS, row.tolist(), strict=True))}
                for pair_id, row in zip(pairs, table, strict=True)
            ],
        )
    return key


class TableClassifier:
    """small-text's classifier interface over a fixed probability table (the dataset is an index array)."""

    def __init__(self, table):
        self.table = table

    def predict_proba(self, rows):
        return self.table[rows]


@pytest.mark.parametrize("strategy, reference", [("margin", BreakingTies), ("entropy", PredictionEntropy)])
def test_uncertainty_strategies_pick_what_small_text_picks(store, strategy, reference):
    sessions, pairs = store
    table = hand_made_table(len(pairs), seed=7)
    key = store_table(sessions, pairs, table)
    with sessions() as session:
        picked = pick_batch(strategy, session, LOOP_DATASET, 6, seed=0, version_key=key, scored_pairs=pairs)
    rows = np.arange(len(pairs))
    expected = reference().query(TableClassifier(table), rows, rows, np.zeros(0, int), np.zeros(0, int), n=6)
    assert sorted(picked) == sorted(pairs[i] for i in expected)
    # and by the definition itself, in order
    top2 = np.sort(table, 1)[:, -2:]
    by_definition = (
        np.argsort(top2[:, 1] - top2[:, 0])
        if strategy == "margin"
        else np.argsort((table * np.log(table)).sum(1))  # highest entropy first
    )
    assert picked == [pairs[i] for i in by_definition[:6]]


def test_scored_strategies_never_pick_an_unscored_pair(store):
    """The Queue sorts pairs without a prediction last; the loop must not take them as if they had been ranked."""
    sessions, pairs = store
    key = store_table(sessions, pairs[:3], hand_made_table(3, seed=1))
    with sessions() as session:
        picked = pick_batch(
            "margin", session, LOOP_DATASET, 10, seed=0, version_key=key, scored_pairs=pairs[:3]
        )
    assert sorted(picked) == sorted(pairs[:3])


def test_kmeans_takes_one_pair_from_each_cluster():
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:4] * 10
    embeddings = np.concatenate([c + rng.normal(scale=0.05, size=(25, 8)) for c in centres])
    picked = kmeans_positions(embeddings, 4, seed=3)
    assert sorted(i // 25 for i in picked) == [0, 1, 2, 3]
    assert kmeans_positions(embeddings, 4, seed=3) == picked  # seeded


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    strategy=st.sampled_from(list(QUERY_STRATEGIES)),
    labelled=st.sets(st.integers(0, 39), max_size=35),
    n=st.integers(1, 12),
    seed=st.integers(0, 5),
)
def test_no_strategy_picks_a_labelled_pair(store, strategy, labelled, n, seed):
    sessions, pairs = store
    with sessions() as session:
        before = set(unlabelled_pairs(session, LOOP_DATASET))
    newly = [pairs[i] for i in sorted(labelled) if pairs[i] in before]
    reveal(sessions, newly)
    with sessions() as session:
        pool = unlabelled_pairs(session, LOOP_DATASET)
    assert set(pool) == before - set(newly)
    table = hand_made_table(len(pool), seed)
    key = store_table(sessions, pool, table) if pool else None
    embeddings = table if strategy == "kmeans" else None
    with sessions() as session:
        picked = pick_batch(strategy, session, LOOP_DATASET, n, seed, key, pool, embeddings)
    assert len(picked) == min(n, len(pool)) and len(set(picked)) == len(picked)
    assert set(picked) <= set(pool)


def test_random_order_is_the_continuation_of_the_seed_set(store):
    sessions, pairs = store
    with sessions() as session:
        first_ten = pick_batch("random", session, LOOP_DATASET, 10, seed=4)
    reveal(sessions, first_ten[:4])
    with sessions() as session:
        assert pick_batch("random", session, LOOP_DATASET, 6, seed=4) == first_ten[4:]


def curve(strategy, seed, f1):
    labels = [100 + 50 * i for i in range(len(f1))]
    return LoopCurve(
        strategy,
        LoopSettings(seed=seed, seed_size=100, batch=50, rounds=len(f1) - 1),
        [RoundResult(i, labels[i], v, v, v) for i, v in enumerate(f1)],
    )


def test_curve_figures_and_the_winner_rule():
    assert area_under_curve([100, 200, 300], [0.2, 0.4, 0.4]) == pytest.approx((0.3 + 0.4) / 2)
    assert labels_to_reach([100, 200, 300], [0.2, 0.4, 0.5], 0.45) == 300
    assert labels_to_reach([100, 200], [0.2, 0.4], 0.45) is None
    assert expected_gain([100, 200, 300], [0.2, 0.4, 0.5], 150, 250) == pytest.approx(0.45 - 0.3)
    assert expected_gain([100, 200, 300], [0.2, 0.4, 0.5], 150, 400) is None

    curves = [
        curve("random", 1, [0.1, 0.2, 0.3]),
        curve("random", 2, [0.1, 0.25, 0.3]),
        curve("margin", 1, [0.1, 0.3, 0.4]),
        curve("margin", 2, [0.1, 0.3, 0.4]),
        # a higher mean AUC but below random on seed 2: not a winner
        curve("entropy", 1, [0.1, 0.6, 0.6]),
        curve("entropy", 2, [0.1, 0.2, 0.25]),
    ]
    summaries = summarize_curves(curves)
    assert summaries["margin"].labels_to_random_final == 150
    assert summaries["margin"].beats_random_on_every_seed
    assert not summaries["entropy"].beats_random_on_every_seed
    assert summaries["entropy"].mean_auc > summaries["margin"].mean_auc
    assert winning_strategy(summaries) == "margin"
    # nothing beats random on every seed: random
    assert winning_strategy(summarize_curves([c for c in curves if c.strategy != "margin"])) == "random"
    # a strategy that ran only some of random's seeds is no contender, however well it did there
    fewer = [*[c for c in curves if c.strategy == "random"], curve("kmeans", 1, [0.1, 0.9, 0.9])]
    assert not summarize_curves(fewer)["kmeans"].beats_random_on_every_seed
    assert winning_strategy(summarize_curves(fewer)) == "random"


def test_the_queue_default_is_the_measured_winner():
    """benchmarks/loop.json is what bench_loop's report measured; the Queue starts in its winner's order."""
    from pathlib import Path

    from db.review_queue import DEFAULT_QUEUE_SORT

    measured = json.loads((Path(__file__).resolve().parents[2] / "benchmarks" / "loop.json").read_text())
    assert measured["mnre"]["queue_sort"] == DEFAULT_QUEUE_SORT


@pytest.mark.slow
def test_a_simulation_runs_selection_store_and_training(tmp_path, tiny_text_encoder):
    folder = write_text_decided(tmp_path / "data", n_train=60, n_val=20, seed=5)
    data = load_loop_data(folder)
    # the tiny text model the cross-fit tests train (output_dir is set per round by the loop)
    cfg = tiny_recipe(tiny_text_encoder, folder, tmp_path / "unused", epochs=1)
    loop = LoopSettings(seed_size=10, batch=5, rounds=2, seed=1, seed_epochs=2, pool_sample=20)
    curves = {
        s: simulate(s, cfg, data, loop, tmp_path / "work", log=lambda m: None) for s in QUERY_STRATEGIES
    }
    for strategy, result in curves.items():
        assert result.labels == [10, 15, 20], strategy
        # the seed set (round 0) and each round's picks: 20 different pairs
        picked = [line for r in result.rounds for line in r.picked_lines]
        assert len(set(picked)) == 20, strategy
        # round 0 is shared: every strategy starts from the same seed model
        assert result.rounds[0].val_f1 == curves["random"].rounds[0].val_f1
        store_lines = json.loads((tmp_path / "work" / f"{strategy}-s1" / "curve.json").read_text())
        assert LoopCurve.from_json(store_lines).labels == result.labels
    # the dataset order picks the first unlabelled lines
    order = curves["source_order"].rounds[1].picked_lines
    assert order == sorted(order)
    # a finished run is read back, not repeated
    again = simulate("margin", cfg, data, loop, tmp_path / "work", log=lambda m: None)
    assert again.to_json() == curves["margin"].to_json()
    # other settings start over
    assert simulate(
        "random", cfg, data, replace(loop, rounds=1), tmp_path / "work", log=lambda m: None
    ).labels == [
        10,
        15,
    ]
