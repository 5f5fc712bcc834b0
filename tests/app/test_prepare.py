"""app.services.prepare imports the data and queues the jobs `make app` queues, training nothing itself; the top-level
Streamlit config takes effect however the app is started."""

from __future__ import annotations

import subprocess
import sys
import time
import tomllib
from pathlib import Path

from sqlalchemy import func, select

from app.services.model_jobs import LAUNCHER
from app.services.prepare import prepare
from db.models import Dataset, EntityPair, Job, ModelVersion, Prediction
from db.schema import open_database

REPO = Path(__file__).resolve().parents[2]


def test_prepare_imports_and_queues_what_make_app_queues_and_trains_nothing(tmp_path, monkeypatch):
    """No MNRE: the synthetic set is imported and the launcher's jobs are queued with the synthetic (objects)
    configs; nothing is trained or registered in the foreground, and a second run queues nothing."""
    from model.synthetic import generate

    for variable in ("MRELENS_FIRST_MODEL_CONFIG", "MRELENS_DEFAULT_MODEL_CONFIG"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("MRELENS_JOBS_URL", f"sqlite:///{tmp_path / 'jobs.db'}")
    root = generate(
        tmp_path / "missing-mnre-so-synthetic", {"train": 10, "val": 6}, images_per_label=1, seed=1
    )
    url = f"sqlite:///{tmp_path / 'store.db'}"
    t0 = time.perf_counter()
    queued = prepare(url, tmp_path / "no-such-mnre", synthetic_dir=root)
    # the old prepare trained a quick-start model here (minutes); queuing takes seconds
    assert time.perf_counter() - t0 < 30
    engine, sessions = open_database(url)
    with sessions() as s:
        assert [d.name for d in s.scalars(select(Dataset))] == ["synthetic"]
        assert s.scalar(select(func.count()).select_from(EntityPair)) == 16
        assert s.scalar(select(func.count()).select_from(ModelVersion)) == 0
        assert s.scalar(select(func.count()).select_from(Prediction)) == 0
        jobs = s.scalars(select(Job).order_by(Job.id)).all()
        assert [j.id for j in jobs] == queued
        assert [(j.kind, j.status, j.started_by) for j in jobs] == [
            ("first_model", "queued", LAUNCHER),
            ("default_model", "queued", LAUNCHER),
        ]
        assert [Path(j.params["config"]).name for j in jobs] == [
            "synthetic_first_model.yaml",
            "synthetic_default.yaml",
        ]
        assert {j.params["data"] for j in jobs} == {str(root)}
    assert prepare(url, tmp_path / "no-such-mnre", synthetic_dir=root) == []  # a second run reuses them
    engine.dispose()


def test_top_level_streamlit_config_takes_effect(tmp_path):
    settings = tomllib.loads((REPO / "streamlit_config.toml").read_text())
    probe = (
        "from streamlit import config\n"
        f"config._main_script_path = {str(REPO / 'app' / 'main.py')!r}\n"
        "config.get_config_options(force_reparse=True)\n"
        "print(config.get_option('theme.primaryColor'), config.get_option('server.address'),"
        " config.get_option('browser.gatherUsageStats'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [settings["theme"]["primaryColor"], "127.0.0.1", "False"]


def test_the_synthetic_demo_set_trains_the_objects_variant_and_mnre_the_default_configs(
    tmp_path, monkeypatch
):
    from app.services.model_jobs import training_config_file
    from model.train import parse_config

    for variable in ("MRELENS_FIRST_MODEL_CONFIG", "MRELENS_DEFAULT_MODEL_CONFIG"):
        monkeypatch.delenv(variable, raising=False)
    for kind, mnre_name in (("first_model", "first_model.yaml"), ("default_model", "default.yaml")):
        synthetic = training_config_file(kind, "synthetic")
        # text_only stays at chance on labels only the image decides
        assert parse_config(["--config", str(synthetic)]).variant == "objects"
        assert training_config_file(kind, "mnre") == REPO / "configs" / mnre_name
    # a config named by the environment (the tests' tiny models) wins on either dataset
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text("variant: text_only\n")
    monkeypatch.setenv("MRELENS_FIRST_MODEL_CONFIG", str(tiny))
    assert training_config_file("first_model", "synthetic") == tiny
