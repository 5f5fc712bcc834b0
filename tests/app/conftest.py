"""Fixtures for the app tests: an empty and a seeded label store (tiny synthetic dataset + a tiny registered
model with stored predictions and evaluation runs), and AppTest runners pointed at them through DATABASE_URL."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from db.schema import open_database

MAIN = str(Path(__file__).resolve().parents[2] / "app" / "main.py")
TINY_VISION = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}
REVIEWER = "tester"


@pytest.fixture(scope="session")
def app_feature_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("app_features")


@pytest.fixture(autouse=True)
def _isolated_app_files(monkeypatch, app_feature_cache, tmp_path):
    """The app writes features, exports, uploads and queued jobs under tmp folders, never the repository's var/."""
    monkeypatch.setenv("MRELENS_FEATURE_CACHE", str(app_feature_cache))
    monkeypatch.setenv("MRELENS_EXPORT_DIR", str(tmp_path / "exports"))
    monkeypatch.setenv("MRELENS_UPLOAD_DIR", str(tmp_path / "uploads"))
    monkeypatch.setenv("MRELENS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("MRELENS_JOBS_URL", f"sqlite:///{tmp_path / 'jobs.db'}")  # jobs the pages enqueue
    yield
    # Review's background warming of the next pairs must not outlive the test: left running, it reads a store the
    # test has removed and logs into the next test's monkeypatched loggers
    prefetch = sys.modules.get("app.ui.review_prefetch")
    if prefetch is not None:
        prefetch.prefetcher().wait()


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_text_encoder, tmp_path_factory) -> Path:
    """A tiny random IFAformer (objects variant, 23 MNRE labels) saved as a checkpoint folder."""
    import torch

    from model.encoders import build_model
    from model.synthetic import MNRE_LABELS

    torch.manual_seed(0)
    model, tokenizer = build_model("objects", MNRE_LABELS, tiny_text_encoder, vision_config=TINY_VISION)
    folder = tmp_path_factory.mktemp("tiny_ckpt")
    model.save_pretrained(folder, tokenizer)
    return folder


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory, tiny_checkpoint, app_feature_cache) -> Path:
    """A SQLite file with 24 synthetic pairs, the tiny model active, its predictions and two evaluation runs."""
    import os

    from app.services.inference import predict_and_store
    from db.io import import_mnre
    from db.provenance import register_checkpoint, save_evaluation_run, set_active
    from model.checkpoint import load_checkpoint
    from model.synthetic import generate

    root = tmp_path_factory.mktemp("app_seed")
    data = generate(root / "synthetic", {"train": 16, "val": 8}, images_per_label=1, seed=0)
    path = root / "seeded.db"
    engine, sessions = open_database(f"sqlite:///{path}")
    with sessions.begin() as session:
        import_mnre(session, data, dataset="synthetic")
        version = register_checkpoint(session, tiny_checkpoint)
        set_active(session, version.version_id)
        version_key, version_id = version.id, version.version_id
        for setting, f1 in (("standard", 0.8), ("shuffle-test", 0.3)):
            save_evaluation_run(
                session,
                "objects",
                setting,
                "val",
                {"accuracy": f1, "precision": f1, "recall": f1, "f1": f1},
                version_key,
            )
    previous = os.environ.get("MRELENS_FEATURE_CACHE")
    os.environ["MRELENS_FEATURE_CACHE"] = str(app_feature_cache)
    try:
        model, tokenizer = load_checkpoint(tiny_checkpoint)
        with sessions() as session:
            from sqlalchemy import select

            from db.models import EntityPair

            ids = list(session.scalars(select(EntityPair.id).order_by(EntityPair.id)))
        predict_and_store(sessions, model, tokenizer, version_key, ids)
    finally:
        if previous is None:
            os.environ.pop("MRELENS_FEATURE_CACHE", None)
        else:
            os.environ["MRELENS_FEATURE_CACHE"] = previous
    engine.dispose()
    assert version_id
    return path


@pytest.fixture
def seeded_url(seeded_template, tmp_path) -> str:
    path = tmp_path / "store.db"
    shutil.copy(seeded_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def empty_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture
def make_app(monkeypatch):
    """make_app(url, page=None, reviewer=REVIEWER) -> an AppTest that has run once on that page."""

    def make(url: str, page: str | None = None, reviewer: str | None = REVIEWER) -> AppTest:
        monkeypatch.setenv("DATABASE_URL", url)
        at = AppTest.from_file(MAIN, default_timeout=60)
        if reviewer:
            at.session_state["reviewer"] = reviewer
        at.run()
        if page:
            at.switch_page(page)
            at.run()
        return at

    return make


def no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def key_button_label(text: str) -> str:
    """The stored label a Review key button records, from its text "3 · held_on 12%" or "1 · None (no relation)"
    (the percentage only when a model scored the pair; MNRE's "None" shown with what it means; in a browser the
    shortcut badge follows on its own line)."""
    import re

    # a browser adds the key's shortcut badge on a line of its own
    shown = re.sub(r"\s+\d+%$", "", text.split("·", 1)[1].strip().splitlines()[0].strip())
    return shown.removesuffix(" (no relation)")
