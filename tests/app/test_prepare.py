"""app.prepare makes a fresh store usable and does nothing heavy the second time; the top-level Streamlit config
takes effect however the app is started."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from sqlalchemy import func, select

from app.prepare import existing_checkpoints, prepare
from db.models import Dataset, EntityPair, ModelVersion, Prediction
from db.schema import open_database

REPO = Path(__file__).resolve().parents[2]


def test_prepare_imports_registers_predicts_and_is_idempotent(tmp_path, tiny_checkpoint, monkeypatch):
    from model.synthetic import generate

    root = generate(
        tmp_path / "missing-mnre-so-synthetic", {"train": 10, "val": 6}, images_per_label=1, seed=1
    )
    runs = tmp_path / "runs"
    shutil.copytree(tiny_checkpoint, runs / "tiny" / "best")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    version = prepare(
        url, tmp_path / "no-such-mnre", predict_limit=100, checkpoints_dir=runs, synthetic_dir=root
    )
    engine, sessions = open_database(url)
    with sessions() as s:
        assert [d.name for d in s.scalars(select(Dataset))] == ["synthetic"]
        assert s.scalar(select(func.count()).select_from(EntityPair)) == 16
        assert s.scalar(select(func.count()).select_from(Prediction)) == 16
        (registered,) = s.scalars(select(ModelVersion)).all()
        assert registered.is_active and registered.version_id == version.version_id
        first_prediction_ids = sorted(s.scalars(select(Prediction.id)))

    t0 = time.perf_counter()
    again = prepare(
        url, tmp_path / "no-such-mnre", predict_limit=100, checkpoints_dir=runs, synthetic_dir=root
    )
    assert time.perf_counter() - t0 < 10
    assert again.version_id == version.version_id
    with sessions() as s:
        assert sorted(s.scalars(select(Prediction.id))) == first_prediction_ids, "nothing recomputed"
        assert s.scalar(select(func.count()).select_from(ModelVersion)) == 1
    engine.dispose()


def test_existing_checkpoints_prefer_trained_runs_and_the_objects_variant(tmp_path):
    for name, variant in (("quickstart", "objects"), ("a_text", "text_only"), ("b_objects", "objects")):
        (tmp_path / name / "best").mkdir(parents=True)
        (tmp_path / name / "best" / "config.json").write_text(f'{{"variant": "{variant}"}}')
    (tmp_path / "half_written" / "best").mkdir(parents=True)  # no config.json: not a checkpoint
    assert [p.parent.name for p in existing_checkpoints(tmp_path)] == ["b_objects", "a_text", "quickstart"]


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
