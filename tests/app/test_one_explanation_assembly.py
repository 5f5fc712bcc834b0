"""One explanation assembly with one set of defaults: what Inspect and the worker compute for a pair
(app.services.stored_explanations.compute) is what explain_post (predict --explain, the benchmarks) computes for the same post."""

from __future__ import annotations

import numpy as np
import pytest

from db.schema import open_database


def test_the_app_and_explain_post_share_their_defaults():
    import inspect as python_inspect

    import app.services.stored_explanations
    from explain.bundle import DEFAULT_SETTINGS, explain_post

    assert app.services.stored_explanations.DEFAULT_SETTINGS is DEFAULT_SETTINGS
    defaults = {
        name: parameter.default
        for name, parameter in python_inspect.signature(explain_post).parameters.items()
    }
    assert DEFAULT_SETTINGS["tokens"] == {"baseline": defaults["baseline"], "n_steps": defaults["n_steps"]}
    assert DEFAULT_SETTINGS["visual"] == {"method": defaults["visual_method"], "n_steps": defaults["n_steps"]}
    assert DEFAULT_SETTINGS["reliance"] == {"k": defaults["k"], "seed": defaults["seed"]}


def test_inspects_result_is_explain_posts_result_for_the_same_pair(seeded_url, monkeypatch):
    from sqlalchemy import select

    from app.services.inference import pair_records
    from app.services.paths import feature_cache_dir
    from app.services.stored_explanations import DEFAULT_SETTINGS, compute, encode
    from db.models import ModelVersion
    from explain.bundle import explain_post
    from model.checkpoint import load_checkpoint

    engine, sessions = open_database(seeded_url)
    with sessions() as session:
        path = session.scalar(select(ModelVersion.path).where(ModelVersion.is_active))
    model, tokenizer = load_checkpoint(path)
    cache = str(feature_cache_dir())
    pair_id = 1
    inputs = encode(model, tokenizer, sessions, pair_id, cache)
    tokens, token_faith = compute(
        "tokens", model, tokenizer, inputs, sessions, pair_id, DEFAULT_SETTINGS["tokens"], cache
    )
    visual, visual_faith = compute(
        "visual", model, tokenizer, inputs, sessions, pair_id, DEFAULT_SETTINGS["visual"], cache
    )
    with sessions() as session:
        record = pair_records(session, [pair_id], model.config)[0]
    engine.dispose()
    bundle = explain_post(model, tokenizer, record, feature_cache=cache)
    assert bundle.token_attribution.settings == tokens.settings
    np.testing.assert_allclose(bundle.token_attribution.scores, tokens.scores, rtol=1e-5, atol=1e-7)
    assert bundle.faithfulness["tokens"].comprehensiveness == pytest.approx(token_faith.comprehensiveness)
    if visual is None:
        assert bundle.visual_attribution is None and visual_faith is None
    else:
        np.testing.assert_allclose(
            bundle.visual_attribution.crop_scores, visual.crop_scores, rtol=1e-5, atol=1e-7
        )
        assert bundle.faithfulness["visual"].sufficiency == pytest.approx(visual_faith.sufficiency)
