"""An app restart while a job runs: the real worker (`python -m app.worker`, a separate process) trains a long tiny
model; an app that starts meanwhile, with none of the first app's process-level caches, shows the job running with
its progress from the label store alone, and cancels it."""

from __future__ import annotations

import pytest
import streamlit as st
from sqlalchemy import func, select

from db.models import ModelVersion
from tests.app.conftest import no_exceptions
from tests.app.test_jobs import final, job_env, start_worker, tiny_config, wait_for  # noqa: F401  (fixture)


@pytest.mark.slow
def test_a_restarted_app_shows_the_running_job_with_progress_and_cancels_it(
    job_env,  # noqa: F811  (the fixture imported above)
    tiny_text_encoder,
    make_app,
):
    from app.jobs import enqueue

    sessions, env, tmp = job_env["sessions"], job_env["env"], job_env["tmp"]
    before_restart = make_app(env["DATABASE_URL"], "views/jobs.py")  # the app as it ran before the restart
    no_exceptions(before_restart)
    assert not before_restart.get("progress")

    long_config = tiny_config(tmp / "configs", tiny_text_encoder, 300)
    params = {"data": str(job_env["data"]), "dataset": "synthetic", "config": str(long_config)}
    job_id = enqueue(sessions, "default_model", "tester", params)
    log = tmp / "worker.log"
    worker = start_worker(env, log)
    try:
        wait_for(
            sessions, job_id, lambda j: j.status == "running" and (j.progress or {}).get("step"), 90, "ran"
        )
        # the restart: the new app process has no cached store connection, model or per-post result
        st.cache_resource.clear()
        st.cache_data.clear()
        at = make_app(env["DATABASE_URL"], "views/jobs.py")
        no_exceptions(at)
        assert any(f"Job {job_id}: the default recipe" in m.value for m in at.markdown)
        (bar,) = at.get("progress")
        # the worker's latest report, read from the store: "epoch 1/300 · step 3/1800"
        assert bar.proto.value < 100 and "epoch 1/300 · step " in bar.proto.text
        assert at.dataframe[0].value.set_index("job").loc[job_id, "status"] == "running"

        at.button(key=f"jobs_cancel_{job_id}").click().run()
        no_exceptions(at)
        job = wait_for(sessions, job_id, final, 30, "stopped")
        assert job.status == "cancelled", (job.error, log.read_text()[-2000:])
        assert job.progress["epoch"] < 300
        with sessions() as session:
            assert session.scalar(select(func.count()).select_from(ModelVersion)) == 0
        at.run()
        no_exceptions(at)
        assert not at.get("progress")
        assert at.dataframe[0].value.set_index("job").loc[job_id, "status"] == "cancelled"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
