"""Tiny IFAformers trained once per session on the synthetic image-decided data, shared by the explain tests."""

from __future__ import annotations

import pytest

from model.train import TrainConfig

TINY_VISION = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}


def tiny_train_config(synthetic_root, text_encoder, cache, out, **kw) -> TrainConfig:
    """tests/model/test_train.py's tiny_config with a shorter schedule: 4 epochs already reach ~100% val accuracy."""
    base = {
        "data": str(synthetic_root),
        "output_dir": str(out),
        "text_encoder": text_encoder,
        "epochs": 4,
        "batch_size": 32,
        "lr": 2e-3,
        "max_length": 24,
        "seed": 0,
        "feature_cache": str(cache),
        "progress": False,
        "limit_val": 64,
        "vision_config": TINY_VISION,
    }
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="session")
def explain_models(synthetic_root, tiny_text_encoder, feature_cache_dir, tmp_path_factory):
    """{"objects": (model, tokenizer), "text_only": (model, tokenizer)} loaded from saved checkpoints."""
    from model.checkpoint import load_checkpoint
    from model.train import train

    out = tmp_path_factory.mktemp("explain_runs")
    objects = train(
        tiny_train_config(
            synthetic_root, tiny_text_encoder, feature_cache_dir, out / "objects", variant="objects"
        )
    )
    # the text-only model is at chance on this data however long it trains; one short epoch is enough
    text_only = train(
        tiny_train_config(
            synthetic_root,
            tiny_text_encoder,
            feature_cache_dir,
            out / "text_only",
            variant="text_only",
            epochs=1,
            limit_train=128,
            limit_val=32,
        )
    )
    assert objects.best_metrics["accuracy"] >= 0.9, objects.best_metrics["accuracy"]
    return {"objects": load_checkpoint(objects.best_dir), "text_only": load_checkpoint(text_only.best_dir)}


@pytest.fixture(scope="session")
def synthetic_test_records(synthetic_root):
    from model.data import load_split

    records, _, _ = load_split(synthetic_root, "test")
    return records


@pytest.fixture(scope="session")
def explain_feature_cache(feature_cache_dir):
    from model.visual_features import FeatureCache

    return FeatureCache(feature_cache_dir)
