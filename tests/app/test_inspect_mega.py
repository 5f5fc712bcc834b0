"""Inspect with a MEGA model active: the page reads MEGA through the explanation interface (model.explainable) and
draws every panel, as it does for IFAformer (tests/app/test_other_pages.py)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from db.models import Explanation
from db.schema import open_database

from .conftest import no_exceptions


@pytest.fixture(scope="module")
def tiny_mega_checkpoint(tiny_text_encoder, tmp_path_factory):
    """A tiny random MEGA (23 MNRE labels) saved as a checkpoint folder."""
    import torch

    from model.mega import build_mega
    from model.synthetic import MNRE_LABELS
    from model.train import TrainConfig

    torch.manual_seed(0)
    model, tokenizer = build_mega(MNRE_LABELS, TrainConfig(text_encoder=tiny_text_encoder, pretrained=False))
    folder = tmp_path_factory.mktemp("tiny_mega")
    model.save_pretrained(folder, tokenizer)
    return folder


@pytest.fixture
def mega_url(seeded_url, tiny_mega_checkpoint) -> str:
    """The seeded store with the tiny MEGA registered and active instead of the IFAformer."""
    from db.provenance import register_checkpoint, set_active

    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        version = register_checkpoint(session, tiny_mega_checkpoint)
        set_active(session, version.version_id)
    engine.dispose()
    return seeded_url


def _filled(at) -> bool:
    return {"Reliance score", "Tokens comprehensiveness"} <= {m.label for m in at.metric}


def test_inspect_explains_a_mega_prediction(make_app, mega_url):
    at = make_app(mega_url, "views/inspect.py")
    no_exceptions(at)
    assert any("predicts" in m.value and "mega-" in m.value for m in at.markdown)
    assert not any("No text-to-image attention" in i.value for i in at.info), "MEGA's alignment is drawn"
    deadline = time.time() + 120
    while not _filled(at) and time.time() < deadline:
        time.sleep(0.3)
        at.run()
        no_exceptions(at)
    assert _filled(at), [m.label for m in at.metric]
    no_exceptions(at)
    keys = {chart.proto.id for chart in at.get("plotly_chart")}
    assert len(keys) >= 4, "attention, tokens, visual and reliance charts"
    engine, sessions = open_database(mega_url)
    with sessions() as s:
        stored = s.scalars(select(Explanation).where(Explanation.method == "inspect:tokens")).all()
    engine.dispose()
    assert stored and all(e.model_version_id for e in stored)
