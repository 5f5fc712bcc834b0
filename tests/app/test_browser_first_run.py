"""The first run in a real browser: `python -m app.launch` (what `make app` runs) on an empty store serves the app
before any model exists, the Jobs page shows the first model's training progress, predictions appear on Review
once the (tiny) first model is activated, and Ctrl-C (SIGINT) stops the worker and the app."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from sqlalchemy import select

from db.models import Job, ModelVersion
from db.schema import open_database
from tests.app.test_browser import (
    CHROMEDRIVER,
    CHROMIUM,
    REPO,
    REVIEWER,
    body,
    free_port,
    new_browser,
    open_page,
    wait_for,
    wait_for_text,
    wait_idle,
)
from tests.app.test_jobs import tiny_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium + chromium-driver (.ci/services/browser.sh installs them)",
    ),
]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_first_run_serves_at_once_shows_training_then_predictions(
    tmp_path, tiny_text_encoder, app_feature_cache
):
    from model.synthetic import generate

    data = generate(tmp_path / "synthetic", {"train": 48, "val": 24}, images_per_label=1, seed=0)
    store = f"sqlite:///{tmp_path / 'store.db'}"
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": store,
        "MRELENS_JOBS_URL": f"sqlite:///{tmp_path / 'jobs.db'}",
        "MRELENS_RUNS_DIR": str(tmp_path / "runs"),
        "MRELENS_FEATURE_CACHE": str(app_feature_cache),
        "MRELENS_EXPORT_DIR": str(tmp_path / "exports"),
        "MRELENS_UPLOAD_DIR": str(tmp_path / "uploads"),
        # long enough (60 tiny epochs, ~20 s on an idle 2-core machine) for the page to catch it training
        "MRELENS_FIRST_MODEL_CONFIG": str(tiny_config(tmp_path / "configs", tiny_text_encoder, 60)),
        "MRELENS_DEFAULT_MODEL_CONFIG": str(tiny_config(tmp_path / "configs", tiny_text_encoder, 1)),
        "MRELENS_WORKER_NICE": "0",
        "TORCH_NUM_THREADS": "1",
    }
    log = (tmp_path / "launch.log").open("w")
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.launch",
            "--port",
            str(port),
            "--mnre",
            str(tmp_path / "no-mnre"),
            "--synthetic-dir",
            str(data),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    driver = None
    try:
        driver = new_browser(tmp_path / "chrome-profile", tmp_path / "downloads")  # starts while the app does
        deadline = time.time() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                assert launcher.poll() is None and time.time() < deadline, (
                    tmp_path / "launch.log"
                ).read_text()
                time.sleep(0.3)
        driver.get(url)
        # the server's warming thread can hold the first script run back: "idle" before it started says nothing
        wait_for_text(driver, "pairs shown")
        wait_idle(driver)
        wait_for(driver, 'input[aria-label="Your name"]').send_keys(REVIEWER + "\n")
        wait_idle(driver)
        # served before any model exists: the sidebar says so, and the queue works without predictions
        assert "No model yet" in body(driver), body(driver)
        engine, sessions = open_database(store)
        with sessions() as session:
            assert session.scalars(select(ModelVersion)).all() == []

        open_page(driver, "jobs")
        wait_for_text(driver, "Job 1: the first model", 60)
        wait_for_text(driver, "epoch ", 60)  # the training job's progress, refreshed by the page on its own
        assert "started by make app" in body(driver)

        # once the first model is activated (and its scoring job ran), Review shows its prediction
        deadline = time.time() + 120
        while True:
            open_page(driver, "review")
            if "predicts" in body(driver):
                break
            assert time.time() < deadline, body(driver)
            time.sleep(1)
        with sessions() as session:
            (active,) = session.scalars(select(ModelVersion).where(ModelVersion.is_active)).all()
            assert f"{active.version_id} predicts" in body(driver)
            worker_pid = int(session.scalars(select(Job.worker)).first().rsplit(":", 1)[1])
        assert "val micro-F1" in body(driver)  # the sidebar line names the active model and its figure
        engine.dispose()
    finally:
        if driver is not None:
            driver.quit()
        launcher.send_signal(signal.SIGINT)  # Ctrl-C
        status = launcher.wait(timeout=90)
        log.close()
    assert status == 0, (tmp_path / "launch.log").read_text()[-3000:]
    assert not pid_alive(worker_pid), "the worker outlived the launcher"
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)  # the app is gone too
