"""The image as a first-class path: the default recipe is chosen by the data (objects when most posts have an
image, text_only otherwise), and the Models page trains any variant (text_only, vanilla, objects, MEGA) as a job."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from app.services.model_jobs import (
    VARIANTS,
    default_recipe,
    queue_default_jobs,
    training_config,
    variant_overrides,
)
from db.io import import_mnre
from db.models import Job
from db.schema import open_database
from tests.app.conftest import no_exceptions
from tests.text_decided_data import write_text_decided

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def default_configs(monkeypatch):
    """The configs a plain `make app` uses (other tests point them at tiny ones)."""
    for variable in ("MRELENS_FIRST_MODEL_CONFIG", "MRELENS_DEFAULT_MODEL_CONFIG"):
        monkeypatch.delenv(variable, raising=False)


def _store(url: str, root: Path, dataset: str):
    engine, sessions = open_database(url)
    with sessions.begin() as session:
        import_mnre(session, root, dataset=dataset, skip_bad=True)
    return engine, sessions


def _queued(sessions) -> list[Job]:
    with sessions() as session:
        jobs = session.scalars(select(Job).order_by(Job.id)).all()
        session.expunge_all()
        return jobs


def test_the_synthetic_image_decided_set_gets_objects_and_a_text_only_set_text_only(
    tmp_path, default_configs
):
    from model.synthetic import generate

    synthetic = generate(tmp_path / "synthetic", {"train": 12, "val": 4}, images_per_label=1, seed=0)
    engine, sessions = _store(f"sqlite:///{tmp_path / 'a.db'}", synthetic, "synthetic")
    with sessions() as session:
        recipe = default_recipe(session, "synthetic")
    assert (recipe.variant, recipe.with_image, recipe.posts) == ("objects", 16, 16)
    queue_default_jobs(sessions, synthetic, "synthetic")
    jobs = _queued(sessions)
    assert [(j.kind, j.params["variant"]) for j in jobs] == [
        ("first_model", "objects"),
        ("default_model", "objects"),
    ]
    assert all(j.params["variant_from"] == "the data: 16 of 16 posts have an image" for j in jobs)
    engine.dispose()

    # a dataset whose posts have no image (named like nothing special: the data decide, not the name)
    text = write_text_decided(tmp_path / "text", n_train=20, n_val=6)
    engine, sessions = _store(f"sqlite:///{tmp_path / 'b.db'}", text, "team_posts")
    with sessions() as session:
        recipe = default_recipe(session, "team_posts")
    assert (recipe.variant, recipe.with_image) == ("text_only", 0)
    queue_default_jobs(sessions, text, "team_posts")
    assert [j.params["variant"] for j in _queued(sessions)] == ["text_only", "text_only"]
    engine.dispose()


def test_every_variant_sets_its_fields_over_the_config_file(tmp_path):
    path = REPO / "configs" / "first_model.yaml"
    for variant, fields in VARIANTS.items():
        cfg = training_config(path, str(tmp_path), tmp_path / "out", **variant_overrides(variant))
        assert {name: getattr(cfg, name) for name in fields} == fields
    assert (
        training_config(path, str(tmp_path), tmp_path / "out", **variant_overrides("mega")).architecture
        == "mega"
    )
    with pytest.raises(Exception, match="unknown variant"):
        variant_overrides("paper")


def test_the_models_page_trains_a_picked_variant_as_a_job(make_app, empty_url, tmp_path, default_configs):
    from app.services.model_status import job_name
    from model.synthetic import generate

    data = generate(tmp_path / "synthetic", {"train": 8, "val": 4}, images_per_label=1, seed=0)
    engine, sessions = _store(empty_url, data, "synthetic")
    at = make_app(empty_url, "views/models.py")
    no_exceptions(at)
    picker = at.selectbox(key="models_train_variant")
    assert picker.value == "objects", "the data's default comes first"
    assert any("12 of 12 posts have an image" in c.value for c in at.caption)
    assert set(picker.options) == {"text_only", "vanilla", "objects (the data's default)", "mega"}
    picker.set_value("mega").run()
    at.button(key="models_queue_default_model").click().run()
    no_exceptions(at)
    (job,) = _queued(sessions)
    assert (job.kind, job.params["variant"], job.params["variant_from"]) == (
        "default_model",
        "mega",
        "picked on the Models page",
    )
    assert job_name(job) == "the default recipe (mega)"
    assert any("registered when it ends and made active only if" in s.value for s in at.success)
    engine.dispose()
