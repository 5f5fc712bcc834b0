"""The fold models of Find label errors read what the data call for, as every default training does
(app.services.model_jobs.default_recipe): objects when most posts have an image, text_only otherwise; a recipe the
job or $MRELENS_CROSSFIT_CONFIG names keeps its own variant. Text-only folds on image-decided data stay at chance
(23-26 % val micro-F1 on the synthetic set), so their suspects are noise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.jobs.crossfit import PLAN, run_crossfit, run_crossfit_fold
from app.jobs.runner import JobRequest
from app.services.paths import REPO_ROOT
from db.io import import_mnre
from db.schema import open_database
from tests.text_decided_data import write_text_decided


class LogOnly:
    """A reporter that keeps the log lines (the planning step reports nothing else)."""

    def __init__(self):
        self.lines: list[str] = []

    def log(self, line: str) -> None:
        self.lines.append(line)


def plan_of(url: str, dataset: str, **params) -> tuple[dict, list[str]]:
    engine, sessions = open_database(url)
    reporter = LogOnly()
    try:
        outcome = run_crossfit(
            sessions, JobRequest(1, "crossfit", {"dataset": dataset, "folds": 2, **params}, "t"), reporter
        )
    finally:
        engine.dispose()
    return json.loads((Path(outcome["folder"]) / PLAN).read_text()), reporter.lines


@pytest.fixture(autouse=True)
def _runs_and_no_named_recipe(tmp_path, monkeypatch):
    monkeypatch.setenv("MRELENS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("MRELENS_CROSSFIT_CONFIG", raising=False)


def test_image_data_get_image_reading_folds(seeded_url):
    plan, log = plan_of(seeded_url, "synthetic")
    assert plan["variant"] == "objects"
    assert Path(plan["config"]).name == "synthetic_first_model.yaml", (
        "the synthetic set's own short-post settings"
    )
    assert "variant objects: 24 of 24 posts have an image" in log[0], log


def test_text_data_get_text_only_folds(tmp_path):
    data = write_text_decided(tmp_path / "text", n_train=20, n_val=6, seed=1)
    url = f"sqlite:///{tmp_path / 'text.db'}"
    engine, sessions = open_database(url)
    with sessions.begin() as session:
        import_mnre(session, data, dataset="toy")
    engine.dispose()
    plan, _ = plan_of(url, "toy")
    assert plan["variant"] == "text_only"
    assert Path(plan["config"]).name == "crossfit.yaml"


def test_a_named_recipe_keeps_its_own_variant(seeded_url, tmp_path, monkeypatch):
    named = tmp_path / "mine.yaml"
    named.write_text("variant: text_only\nepochs: 1\n")
    plan, _ = plan_of(seeded_url, "synthetic", config=str(named))
    assert plan["variant"] is None and plan["config"] == str(named)
    monkeypatch.setenv("MRELENS_CROSSFIT_CONFIG", str(named))
    plan, _ = plan_of(seeded_url, "synthetic")
    assert plan["variant"] is None and plan["config"] == str(named)


def test_a_fold_trains_the_planned_variant_over_its_config(seeded_url, tmp_path, monkeypatch):
    """The fold job sets the plan's variant over its config file's (configs/crossfit.yaml says text_only); a plan
    without one trains the file's."""
    import model.crossfit

    plan, _ = plan_of(seeded_url, "synthetic")
    seen = {}

    class Stop(Exception):
        pass

    def first_fold(cfg, *args, **kwargs):
        seen["variant"] = cfg.variant
        raise Stop

    class Reporter(LogOnly):
        def watch_history(self, path) -> None:
            pass

    monkeypatch.setattr(model.crossfit, "train_fold", first_fold)
    plan_file = tmp_path / "runs" / "job1-crossfit" / PLAN
    for variant, expected in ((None, "text_only"), ("objects", "objects")):
        plan["config"], plan["variant"] = str(REPO_ROOT / "configs" / "crossfit.yaml"), variant
        plan_file.write_text(json.dumps(plan))
        engine, sessions = open_database(seeded_url)
        request = JobRequest(
            2, "crossfit_fold", {"parent": 1, "fold": 0, "folder": str(plan_file.parent)}, "t"
        )
        try:
            with pytest.raises(Stop):
                run_crossfit_fold(sessions, request, Reporter())
        finally:
            engine.dispose()
        assert seen["variant"] == expected, variant
