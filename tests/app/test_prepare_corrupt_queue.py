"""`python -m app.prepare` (what `make app` runs first) with a corrupt var/jobs.db: one `error:` line, exit 2, and
the job it tried to queue is marked failed in the label store, never left "queued" forever."""

from __future__ import annotations

import functools

from sqlalchemy import select

import app.services.prepare as prepare_module
from db.models import Job
from db.schema import open_database


def test_a_corrupt_job_queue_is_one_error_line_and_no_job_stays_queued(tmp_path, monkeypatch, capsys):
    from model.synthetic import generate

    for variable in ("MRELENS_FIRST_MODEL_CONFIG", "MRELENS_DEFAULT_MODEL_CONFIG"):
        monkeypatch.delenv(variable, raising=False)
    jobs = tmp_path / "jobs.db"
    jobs.write_bytes(b"this is not a database" * 100)
    monkeypatch.setenv("MRELENS_JOBS_URL", f"sqlite:///{jobs}")
    root = generate(tmp_path / "synthetic", {"train": 6, "val": 4}, images_per_label=1, seed=1)
    monkeypatch.setattr(
        prepare_module, "prepare", functools.partial(prepare_module.prepare, synthetic_dir=root)
    )
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert prepare_module.main(["--database-url", url, "--mnre", str(tmp_path / "no-mnre")]) == 2
    err = capsys.readouterr().err
    # the rest is prepare's progress log
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: MRELENS_JOBS_URL") and "jobs.db" in errors[0]
    assert "Traceback" not in err and err.strip().splitlines()[-1] == errors[0]
    engine, sessions = open_database(url)
    with sessions() as session:
        assert [job.status for job in session.scalars(select(Job))] == ["failed"]
    engine.dispose()
