"""Texts the thin pages draw, built by plain functions (app.services.*, app.ui.*): numbers carry their unit and
dataset text is never Markdown."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from app.services.label_errors import run_summary
from app.services.model_catalog import VersionComparison, comparison_note
from app.ui.inspect_panels import reliance_caption
from app.ui.render import plain


def test_the_fold_models_f1_range_says_it_is_a_percent():
    run = SimpleNamespace(
        id=3,
        created_at=dt.datetime(2026, 12, 1, 9, 30),
        folds=5,
        method="self_confidence",
        settings={"fold_models": [{"val_f1": 0.512}, {"val_f1": 0.634}, {"val_f1": None}]},
    )
    text = run_summary(run, SimpleNamespace(in_audit=7))
    assert "val micro-F1 51.2-63.4 %" in text, text
    assert "self confidence" in text and "7 pairs decided" in text


def test_the_reliance_caption_escapes_every_label():
    label = "**bold** [link](http://x)"
    result = SimpleNamespace(
        predicted_label=label,
        p_original=0.9,
        p_no_image=0.4,
        no_image_prediction=label,
        flip_rate=0.5,
        swapped_predictions=[label, "/per/per/peer"],
    )
    text = reliance_caption(result)
    assert label not in text and text.count(plain(label)) == 3, text
    assert "50% of swaps" in text


def test_no_pair_to_compare_is_not_read_as_agreement():
    kind, text = comparison_note(VersionComparison(0, [], ["v-new"], []))
    assert kind == "info" and "changed on 0" not in text and "v-new has not scored val yet" in text
    kind, text = comparison_note(VersionComparison(8, [{"pair": 1}], [], []))
    assert kind == "caption" and text == "8 val pairs scored by both; the prediction changed on 1."
