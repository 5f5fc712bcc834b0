"""Inspect tells the truth: a result it just computed is not captioned as read from the store, its probability
chart marks the gold label neutrally with a legend (the chart Review draws), the reviewer can look through any
registered version, and an image-using model shows token-object attention, visual attribution and image reliance."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db.models import ModelVersion
from db.schema import open_database
from tests.app.conftest import TINY_VISION, no_exceptions


def wait_for_panels(at, url: str, timeout: float = 180):
    """Let Inspect's background jobs for this store finish, then redraw the page."""
    from app.ui.explanation_panels import background

    for key, job in list(background().jobs.items()):
        if url in key:
            job.future.exception(timeout=timeout)
    at.run()
    return at


def test_a_result_computed_here_is_not_captioned_as_read_from_the_store(make_app, seeded_url):
    at = make_app(seeded_url, "views/inspect.py")  # nothing stored for pair 1: the panels compute it
    no_exceptions(at)
    wait_for_panels(at, seeded_url)
    no_exceptions(at)
    captions = [c.value for c in at.caption]
    assert not any("computed before" in c for c in captions), captions
    assert any("Computed here" in c for c in captions), captions


def test_the_probability_chart_marks_gold_neutrally_with_a_legend(make_app, seeded_url):
    at = make_app(seeded_url, "views/inspect.py")
    no_exceptions(at)
    charts = [c for c in at.get("plotly_chart") if "inspect_probs" in c.proto.id]
    assert charts, "Inspect shows the model's distribution"
    import json

    figure = json.loads(charts[0].proto.spec)
    names = [trace.get("name", "") for trace in figure["data"]]
    assert any(name.startswith("gold label (") for name in names), names
    assert figure["layout"]["showlegend"]
    colours = {trace["marker"]["color"] for trace in figure["data"]}
    assert len(colours) == 1 and "#c0392b" not in colours, "one colour: the gold bar is outlined, never red"


@pytest.fixture
def text_only_version(seeded_url, tiny_text_encoder, tmp_path) -> str:
    """A second registered version, text-only, not active."""
    import torch

    from db.provenance import register_checkpoint
    from model.encoders import build_model
    from model.synthetic import MNRE_LABELS

    torch.manual_seed(1)
    model, tokenizer = build_model("text_only", MNRE_LABELS, tiny_text_encoder, vision_config=TINY_VISION)
    folder = tmp_path / "text_only"
    model.save_pretrained(folder, tokenizer)
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        version_id = register_checkpoint(session, folder).version_id
    engine.dispose()
    return version_id


def test_inspect_looks_through_any_registered_version_the_active_one_first(
    make_app, seeded_url, text_only_version
):
    engine, sessions = open_database(seeded_url)
    with sessions() as session:
        active = session.scalar(select(ModelVersion.version_id).where(ModelVersion.is_active))
    engine.dispose()
    at = make_app(seeded_url, "views/inspect.py")
    no_exceptions(at)
    picker = at.selectbox(key="inspect_version")
    assert picker.value == active
    assert any(text_only_version in option for option in picker.options)
    picker.select(text_only_version).run()
    no_exceptions(at)
    assert any(f"**{text_only_version}** predicts" in m.value for m in at.markdown)
    assert any("no visual tokens" in i.value for i in at.info), "a text model has no token-object attention"


def test_an_image_model_shows_attention_visual_attribution_and_reliance(make_app, seeded_url):
    """What a fresh `make app` on the synthetic set trains (objects, app.services.model_jobs.default_recipe) explains the
    image: token-object attention, a visual heat map and a reliance that is not 0 by definition."""
    at = make_app(seeded_url, "views/inspect.py")
    wait_for_panels(at, seeded_url)
    no_exceptions(at)
    infos = [i.value for i in at.info]
    assert not any("no visual tokens" in i or "No visual attribution" in i for i in infos), infos
    assert not any("0 by definition" in i for i in infos), infos
    keys = {c.proto.id for c in at.get("plotly_chart")}
    for chart in ("inspect_attention_chart", "inspect_visual_chart", "inspect_reliance_chart"):
        assert any(chart in key for key in keys), (chart, keys)
    assert "Reliance score" in {m.label for m in at.metric}
