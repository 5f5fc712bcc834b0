"""explain.plausibility: the ERASER token metrics and the image metrics on hand-made inputs whose answers are known,
then sanity checks on tiny trained models (a trained model's explanations beat a randomly initialised one's and a
random map's)."""

from __future__ import annotations

import numpy as np
import pytest

import explain
from explain import plausibility as pl

# ----------------------------------------------------------------------------------------------------------------
# Token level


def test_token_f1_takes_the_top_k_with_k_the_rationale_length():
    scores = [0.1, 0.9, 0.8, 0.2]
    gold = [False, True, False, True]  # k = 2: the top 2 are words 1 and 2, one of them marked
    assert pl.token_f1(scores, gold) == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})
    assert pl.token_f1([0.1, 0.9, 0.0, 0.8], gold)["f1"] == pytest.approx(1.0)


def test_excluded_words_are_never_picked_nor_scored():
    scores = [5.0, 0.9, 0.1, 0.2]  # word 0 (an entity) scores highest
    gold = [False, True, False, False]
    candidates = [False, True, True, True]
    assert pl.token_f1(scores, gold, candidates)["f1"] == pytest.approx(1.0)
    assert pl.token_f1(scores, gold)["f1"] == pytest.approx(0.0)  # with the entity as a candidate it wins
    assert pl.auprc(scores, gold, candidates) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not a candidate"):
        pl.token_f1(scores, [True, False, False, False], candidates)
    with pytest.raises(ValueError, match="marks no word"):
        pl.token_metrics(scores, [False] * 4)


def test_iou_f1_matches_spans_at_iou_one_half():
    gold = np.zeros(10, dtype=bool)
    gold[2:6] = True  # one gold span, words 2..5
    scores = np.zeros(10)
    scores[[2, 3, 4, 8]] = [4.0, 3.0, 2.0, 1.0]  # top 4: span (2, 5), IOU 3/4, and the stray span (8, 9)
    result = pl.iou_f1(scores, gold)
    assert result["precision"] == pytest.approx(0.5) and result["recall"] == pytest.approx(1.0)
    assert result["f1"] == pytest.approx(2 / 3)
    assert pl.token_f1(scores, gold)["f1"] == pytest.approx(0.75)
    # a predicted span (1, 3) meets the gold span at IOU 1/5: no match
    scores = np.zeros(10)
    scores[[1, 2, 8, 9]] = [4.0, 3.0, 2.0, 1.0]
    assert pl.iou_f1(scores, gold)["f1"] == pytest.approx(0.0)
    assert pl.span_iou((1, 3), (2, 6)) == pytest.approx(1 / 5)


def test_an_excluded_word_breaks_a_span():
    gold = np.array([False, True, True, False, True, True])
    candidates = np.array([True, True, True, False, True, True])  # word 3 is an entity
    assert pl.spans(gold, candidates) == [(1, 3), (4, 6)]
    assert pl.spans([True, True, True, True], [True, True, False, True]) == [(0, 2), (3, 4)]
    scores = np.array([0.0, 4.0, 3.0, 9.0, 2.0, 1.0])
    assert pl.iou_f1(scores, gold, candidates)["f1"] == pytest.approx(1.0)


def test_auprc_is_average_precision_of_the_soft_scores():
    # marked words ranked 2nd and 4th: AP = (1/2 + 2/4) / 2
    assert pl.auprc([0.9, 0.8, 0.7, 0.1], [False, True, False, True]) == pytest.approx(0.5)
    assert pl.auprc([0.1, 0.8, 0.7, 0.9], [False, True, False, True]) == pytest.approx(1.0)
    # negative (opposing) scores rank below every supporting one
    assert pl.auprc([-0.5, 0.2, -0.1], [True, False, False]) == pytest.approx(1 / 3)


def test_word_scores_sum_pieces_and_skip_markers():
    # [CLS] w0a w0b <s> w1 [SEP]; word 2 was cut by truncation
    scores, seen = pl.word_scores([9.0, 1.0, 2.0, 7.0, 3.0, 9.0], [-1, 0, 0, -1, 1, -1], 3)
    assert scores.tolist() == [3.0, 3.0, 0.0] and seen.tolist() == [True, True, False]
    assert pl.candidate_words(5, [(0, 1), (3, 4)]).tolist() == [False, True, True, False, True]
    assert pl.candidate_words(3, [(0, 1)], seen).tolist() == [False, True, False]


# ----------------------------------------------------------------------------------------------------------------
# Image level


def test_pointing_game_hits_when_the_maximum_is_inside_the_box():
    heat = np.zeros((10, 12))
    heat[2, 7] = 1.0  # row (y) 2, column (x) 7
    assert pl.pointing_game(heat, (6, 1, 9, 4))
    assert not pl.pointing_game(heat, (0, 0, 5, 5))
    assert not pl.pointing_game(heat, (8, 0, 12, 5))  # the box starts one pixel right of the maximum
    assert pl.pointing_game(heat, (8, 0, 12, 5), tolerance=1)
    assert not pl.pointing_game(heat, (0, 0, 7, 2))  # right and bottom edges are exclusive


def test_a_plateau_hits_when_most_of_it_lies_in_the_box():
    flat = np.ones((10, 10))
    assert not pl.pointing_game(flat, (0, 0, 5, 5))  # a quarter of the maximal pixels
    assert pl.pointing_game(flat, (0, 0, 10, 6))
    with pytest.raises(ValueError, match="empty"):
        pl.pointing_game(flat, (5, 5, 5, 9))


def test_mass_in_box_counts_positive_mass_only():
    heat = np.zeros((4, 4))
    heat[0, 0], heat[0, 1], heat[3, 3], heat[3, 0] = 2.0, 1.0, 1.0, -5.0
    assert pl.mass_in_box(heat, (0, 0, 2, 1)) == pytest.approx(0.75)
    assert pl.mass_in_box(-np.ones((4, 4)), (0, 0, 2, 2)) == 0.0
    assert pl.box_area_share((0, 0, 2, 2), (4, 4)) == pytest.approx(0.25)


def test_upsample_grid_draws_as_the_app_draws_attributions():
    grid = np.random.default_rng(0).normal(size=(7, 7))
    attribution = explain.VisualAttribution(np.zeros(1), grid, [True], "x", 1, 0.5, "occlusion")
    assert np.allclose(pl.upsample_grid(grid, (150, 90)), attribution.heatmap((150, 90)))
    corner = np.zeros((7, 7))
    corner[0, 6] = 1.0
    heat = pl.upsample_grid(corner, (224, 224))
    # the top right cell's maximum lands in the top right 32 x 32 pixels of a 224 x 224 image
    assert pl.pointing_game(heat, (192, 0, 224, 32))
