"""Cross-fitting and label-issue scores: folds partition the records and never leak, and on data with known flips
the out-of-sample ranking finds them where a model scoring its own training data does not."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.crossfit import FoldModel, FoldPrediction, assign_folds, crossfit, merge_folds, train_fold
from model.label_quality import average_precision, find_label_issues, loss_scores, precision_at
from model.mnre_format import labels_by_id, load_split
from model.noise import make_noisy_copy, read_flips
from tests.text_decided_data import write_text_decided


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.sampled_from(["None", "a", "b", "c", "rare"]), min_size=5, max_size=200),
    k=st.integers(2, 5),
    seed=st.integers(0, 10),
)
def test_folds_partition_the_records_and_balance_every_label(labels, k, seed):
    folds = assign_folds(labels, k, seed)
    assert len(folds) == len(labels) and set(folds) <= set(range(k))
    for label in set(labels):
        per_fold = Counter(f for f, x in zip(folds, labels, strict=True) if x == label)
        counts = [per_fold.get(f, 0) for f in range(k)]
        assert max(counts) - min(counts) <= 1, (label, counts)
    assert assign_folds(labels, k, seed) == folds  # the seed fixes the plan


def test_folds_refuse_too_few_records():
    with pytest.raises(ValueError, match="at least"):
        assign_folds(["a", "b"], 3)
    with pytest.raises(ValueError, match="at least 2"):
        assign_folds(["a", "b", "c"], 1)


def test_a_fold_model_never_trains_on_the_records_it_predicts(tmp_path, monkeypatch):
    """train_fold hands model.train.train exactly the other folds' records and predicts exactly its own."""
    import model.train
    from model import crossfit as crossfit_module

    records = [f"record{i}" for i in range(23)]
    fold_of = assign_folds([str(i % 3) for i in range(23)], 4, seed=2)
    seen: dict[str, list] = {}

    class FakeResult:
        best_dir = tmp_path / "best"
        best_metrics = {"f1": 0.5}
        version_id = "v-fake"

    def fake_train(cfg, train_records, val_records, label_names, progress_callback=None):
        seen["train"] = list(train_records)
        return FakeResult()

    def fake_probabilities(model, tokenizer, held, feature_cache, batch_size=64):
        seen["predicted"] = list(held)
        return np.full((len(held), 2), 0.5)

    monkeypatch.setattr(model.train, "train", fake_train)
    monkeypatch.setattr("model.checkpoint.load_checkpoint", lambda path: (None, None))
    monkeypatch.setattr(crossfit_module, "record_probabilities", fake_probabilities)

    for fold in range(4):
        part = train_fold(StubConfig(str(tmp_path)), records, fold_of, fold, [], ["None", "x"])
        held = {records[i] for i in part.indices}
        assert held == set(seen["predicted"])
        assert held.isdisjoint(seen["train"])
        assert len(held) + len(seen["train"]) == len(records)


@dataclass
class StubConfig:
    """The TrainConfig fields train_fold reads (it passes a copy on to model.train.train)."""

    output_dir: str
    feature_cache: str | None = None
    limit_train: int | None = None


def test_merge_puts_folds_back_in_order_and_refuses_gaps_and_overlaps():
    def part(fold, indices):
        probabilities = np.array([[1.0 - i / 10, i / 10] for i in indices])
        return FoldPrediction(FoldModel(fold, 2, "", "v", 0, len(indices), None), indices, probabilities)

    merged = merge_folds([part(1, [1, 3]), part(0, [0, 2])], 4, ["None", "x"])
    assert merged.fold_of == [0, 1, 0, 1]
    np.testing.assert_allclose(merged.probabilities[:, 1], [0.0, 0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="no out-of-sample prediction"):
        merge_folds([part(0, [0, 2])], 4, ["None", "x"])
    with pytest.raises(ValueError, match="held out by folds"):
        merge_folds([part(0, [0, 1]), part(1, [1, 2, 3])], 4, ["None", "x"])


def test_label_issues_rank_the_given_label_by_its_out_of_sample_probability():
    probabilities = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.05, 0.05, 0.9], [0.6, 0.3, 0.1]])
    labels = np.array([0, 1, 0, 1])  # pair 2 is labelled 0 where the model is sure of 2: the likely error
    issues = find_label_issues(labels, probabilities)
    assert issues.ranking()[0] == 2
    assert issues.suggested[2] == 2 and issues.suggested_probability[2] == pytest.approx(0.9)
    np.testing.assert_allclose(issues.scores["loss"], -np.log([0.9, 0.8, 0.05, 0.3]))
    # labels no pair carries are allowed
    padded = np.hstack([probabilities, np.zeros((4, 2))])
    assert find_label_issues(labels, padded).ranking()[0] == 2
    with pytest.raises(ValueError, match="NaN"):
        find_label_issues(labels, np.full((4, 3), np.nan))
    with pytest.raises(ValueError, match="method"):
        find_label_issues(labels, probabilities, method="guess")


def test_noisy_copy_flips_exactly_the_listed_lines(tmp_path):
    source = write_text_decided(tmp_path / "clean", n_train=100, n_val=20)
    for kind in ("uniform", "confusable"):
        flips = make_noisy_copy(source, tmp_path / kind, 0.1, kind, seed=3)
        assert flips == read_flips(tmp_path / kind) and len(flips) == 10
        clean, _, _ = load_split(source, "train")
        noisy, _, _ = load_split(tmp_path / kind, "train")
        changed = {r.line for r, c in zip(noisy, clean, strict=True) if r.relation != c.relation}
        assert changed == {flip.line for flip in flips}
        assert all(flip.original != flip.noisy for flip in flips)
        val_before = (source / "txt" / "ours_val.txt").read_bytes()
        assert (tmp_path / kind / "txt" / "ours_val.txt").read_bytes() == val_before
    with pytest.raises(FileExistsError):
        make_noisy_copy(source, tmp_path / "uniform", 0.1)


@pytest.fixture(scope="module")
def flipped_data(tmp_path_factory):
    """200 text-decided train posts with 10 % of their labels flipped at random."""
    folder = tmp_path_factory.mktemp("label_errors")
    clean = write_text_decided(folder / "clean", n_train=200, n_val=60, seed=1)
    make_noisy_copy(clean, folder / "noisy", 0.1, "uniform", seed=1)
    return folder / "noisy"


def tiny_recipe(tiny_text_encoder, data, out, epochs):
    from model.train import TrainConfig

    return TrainConfig(
        data=str(data),
        output_dir=str(out),
        variant="text_only",
        text_encoder=tiny_text_encoder,
        pretrained=False,
        epochs=epochs,
        batch_size=8,
        lr=3e-3,
        max_length=16,
        seed=0,
        feature_cache=None,
        progress=False,
        tune_none_bias=False,
    )


@pytest.mark.slow
def test_out_of_sample_scores_find_the_flips_that_in_sample_scores_miss(
    flipped_data, tiny_text_encoder, tmp_path
):
    """The reason cross-fitting exists: a model that trained on a flipped label has fitted it and finds it no
    more than a model that never saw the pair would."""
    from model.checkpoint import load_checkpoint
    from model.crossfit import record_probabilities
    from model.train import train

    records, rel2id, _ = load_split(flipped_data, "train")
    val_records, _, _ = load_split(flipped_data, "val")
    label_names = labels_by_id(rel2id)
    flipped_lines = {flip.line for flip in read_flips(flipped_data)}
    is_flip = np.array([r.line in flipped_lines for r in records])
    given = np.array([label_names.index(r.relation) for r in records])

    cfg = tiny_recipe(tiny_text_encoder, flipped_data, tmp_path / "crossfit", epochs=10)
    out_of_sample = crossfit(cfg, records, val_records, label_names, k=3, seed=0)
    oos = find_label_issues(given, out_of_sample.probabilities)
    oos_ap = average_precision(is_flip, -oos.quality)

    # the same recipe trained long enough to fit its training labels (its last epoch), scoring them
    fitted = train(replace(cfg, output_dir=str(tmp_path / "in_sample"), epochs=30))
    model, tokenizer = load_checkpoint(fitted.best_dir.parent / "last")
    in_sample = record_probabilities(model, tokenizer, records, None)
    in_ap = average_precision(is_flip, loss_scores(given, in_sample))

    k = int(is_flip.sum())
    assert oos_ap >= 0.8, oos_ap
    assert precision_at(is_flip, oos.ranking(), k) >= 0.7
    assert in_ap < oos_ap - 0.2, (in_ap, oos_ap)


@settings(max_examples=150, deadline=None)
@given(
    tokens=st.lists(st.text(min_size=1, max_size=8), min_size=2, max_size=6),
    old=st.sampled_from(["None", "/per/per/parent", "/org/loc/locate_at"]),
    new=st.sampled_from(["None", "/per/per/peer", 'it\'s "odd"']),
    json_style=st.booleans(),
)
def test_relabelling_a_line_changes_the_relation_and_nothing_else(tokens, old, new, json_style):
    """Any record line: the noisy copy's line parses to the same record with only the relation replaced."""
    import ast
    import json

    from model.noise import relabel_line

    record = {
        "token": tokens,
        "h": {"name": tokens[0], "pos": [0, 1]},
        "t": {"name": tokens[1], "pos": [1, 2]},
    }
    record["relation"] = old
    line = json.dumps(record, ensure_ascii=False) if json_style else repr(record)
    changed = relabel_line(line, old, new, "<line>")
    assert ast.literal_eval(changed) == {**record, "relation": new}
    # the other fields' text is untouched
    assert changed.startswith(line[: line.rfind("relation")])
