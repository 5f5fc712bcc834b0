import math

import pytest

from db.agreement import (
    REJECTED,
    agreement,
    agreement_from_decisions,
    cohen_kappa,
    krippendorff_alpha_nominal,
)
from db.annotations import record_annotation, undo_last
from db.io import import_mnre


def test_cohen_kappa_hand_computed():
    # 50 items: both yes 20, A yes / B no 5, A no / B yes 10, both no 15.
    # p_o = 35/50 = 0.7; p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = (0.7 - 0.5) / 0.5 = 0.4
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(["x", "y"], ["x", "y"]) == 1
    assert math.isnan(cohen_kappa(["x", "x"], ["x", "x"]))  # one category: agreement by chance is certain
    with pytest.raises(ValueError):
        cohen_kappa(["x"], [])


def test_krippendorff_alpha_matches_the_published_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 coders, 12 units, missing values;
    # nominal alpha = 0.743
    n = None
    coder_a = [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n]
    coder_b = [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3]
    coder_c = [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n]
    coder_d = [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n]
    alpha = krippendorff_alpha_nominal(list(zip(coder_a, coder_b, coder_c, coder_d, strict=True)))
    assert alpha == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_alpha_small_hand_computed():
    # units (a, a), (a, b), (b, b): coincidences o_aa = 2, o_ab = o_ba = 1, o_bb = 2; n_a = n_b = 3, n = 6.
    # alpha = 1 - (n - 1) * (o_ab + o_ba) / (n_a n_b + n_b n_a) = 1 - 5 * 2 / 18 = 4/9
    assert krippendorff_alpha_nominal([["a", "a"], ["a", "b"], ["b", "b"]]) == pytest.approx(4 / 9)
    assert krippendorff_alpha_nominal([["a", None], ["b", "b", "b"], ["a", "a"]]) == 1
    assert math.isnan(krippendorff_alpha_nominal([["a", "a"], ["a", None]]))


def test_per_label_scores_are_label_versus_rest():
    by_pair = {
        1: {"ann": "x", "bob": "x"},
        2: {"ann": "x", "bob": "y"},
        3: {"ann": "y", "bob": "y"},
        4: {"ann": "z", "bob": "z"},
        5: {"ann": "y"},
    }
    report = agreement_from_decisions(by_pair)
    assert (report.annotators, report.items, report.kappa_items[("ann", "bob")]) == (["ann", "bob"], 4, 4)
    # overall: p_o = 3/4; p_e = (2*1 + 1*2 + 1*1) / 16 = 5/16; kappa = (12/16 - 5/16) / (11/16) = 7/11
    assert report.kappa[("ann", "bob")] == pytest.approx(7 / 11)
    # label z is agreed on its only item and absent elsewhere: perfect; label x: ann [T,T,F,F] bob [T,F,F,F]
    # p_o = 3/4, p_e = (2*1 + 2*3)/16 = 1/2 -> kappa 1/2
    assert report.kappa_per_label[("ann", "bob")]["z"] == 1
    assert report.kappa_per_label[("ann", "bob")]["x"] == pytest.approx(0.5)
    assert report.alpha_per_label["z"] == 1
    assert "Cohen's kappa ann vs bob: 0.636 on 4 pairs" in report.format()


def test_agreement_from_the_store_uses_each_annotators_decisions_in_effect(sessions, mini_mnre):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
        # pair 1: ann and bob agree; pair 2: they differ, then bob undoes his decision; pair 3: one rejects
        record_annotation(session, 1, status="accepted", annotator="ann", expected_revision=0)
        record_annotation(session, 1, status="accepted", annotator="bob", expected_revision=1)
        record_annotation(
            session, 2, status="corrected", label="/per/per/peer", annotator="ann", expected_revision=0
        )
        record_annotation(session, 2, status="corrected", label="None", annotator="bob", expected_revision=1)
        undo_last(session, 2, annotator="bob", expected_revision=2)
        record_annotation(session, 3, status="rejected", annotator="ann", expected_revision=0)
        record_annotation(session, 3, status="accepted", annotator="bob", expected_revision=1)
        record_annotation(session, 4, status="skipped", annotator="bob", expected_revision=0)
    with sessions() as session:
        report = agreement(session, dataset="mnre")
    assert report.items == 2 and report.kappa_items[("ann", "bob")] == 2
    assert report.alpha_per_label[REJECTED] < 1
    # items: (peer, peer), (<rejected>, member_of): p_o = 1/2, p_e = 1/4 -> kappa = 1/3
    assert report.kappa[("ann", "bob")] == pytest.approx(1 / 3)
