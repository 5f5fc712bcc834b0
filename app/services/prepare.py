"""Import the data and queue the trainings, without serving: what `make app` does before it starts the worker
and the app (app.launch), for scripts and for a worker running elsewhere (`make worker`).

    python -m app.prepare [--database-url URL] [--mnre DIR]

1. upgrade the label store (db.schema.open_database);
2. import MNRE from $MNRE_ROOT (default ../shared/mnre next to the repository) when it is there, else generate the
   synthetic demo dataset (model.synthetic) under var/synthetic and import that;
3. queue what `make app` queues where it is missing (app.services.model_jobs.queue_default_jobs): the first model, the default
   recipe (both of the data's variant: objects when most posts have an image, else text_only), and a scoring job
   when the active model has not scored the queue. Nothing is trained here: a worker
   (`python -m app.worker`) runs the jobs, and the first model is activated by the job that registers it.

Every step checks what is already there first: a second run only reports.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from app.services.model_jobs import SYNTHETIC_DATASET
from app.services.paths import REPO_ROOT
from db.datasets import list_datasets
from db.io import import_mnre

SYNTHETIC_DIR = REPO_ROOT / "var" / "synthetic"


def log(message: str) -> None:
    print(f"[prepare {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def default_mnre_root() -> Path:
    return Path(os.environ.get("MNRE_ROOT", REPO_ROOT.parent / "shared" / "mnre"))


def data_source(mnre_root: Path | None, synthetic_dir: Path = SYNTHETIC_DIR) -> tuple[Path, str]:
    """(folder, dataset name): MNRE when its files exist, else the synthetic demo set (generated once)."""
    if mnre_root is not None and (mnre_root / "ours_rel2id.json").is_file():
        return mnre_root, "mnre"
    if not (synthetic_dir / "txt" / "ours_val.txt").is_file():
        from model.synthetic import generate

        log(f"MNRE not found at {mnre_root}; generating the synthetic demo dataset in {synthetic_dir}")
        generate(synthetic_dir, {"train": 600, "val": 200, "test": 200}, images_per_label=30, seed=0)
    return synthetic_dir, SYNTHETIC_DATASET


def ensure_data(sessions: sessionmaker, root: Path, dataset: str) -> None:
    with sessions() as session:
        names = {dataset_row.name for dataset_row in list_datasets(session)}
    if dataset in names:
        log(f"dataset {dataset!r} already imported")
        return
    log(f"importing {root} as dataset {dataset!r} ...")
    with sessions.begin() as session:
        report = import_mnre(session, root, dataset=dataset, skip_bad=True)
    log(report.summary())


def prepare(
    database_url: str | None = None, mnre_root: Path | None = None, synthetic_dir: Path = SYNTHETIC_DIR
) -> list[int]:
    """Import the data and queue the missing jobs (see the module docstring); returns the ids of the jobs queued."""
    from app.services.model_jobs import queue_default_jobs
    from db.schema import open_database

    engine, sessions = open_database(database_url)
    try:
        root, dataset = data_source(mnre_root, synthetic_dir)
        ensure_data(sessions, root, dataset)
        return queue_default_jobs(sessions, root, dataset)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m app.prepare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--database-url", help="default: $DATABASE_URL, else sqlite var/mrelens.db")
    ap.add_argument(
        "--mnre", type=Path, default=default_mnre_root(), help="MNRE folder (default: $MNRE_ROOT)"
    )
    args = ap.parse_args(argv)
    t0 = time.time()
    from app.jobs.queue import JobsConfigError, jobs_url, storage_errors
    from db.errors import LabelStoreError
    from db.redact import mask_secrets
    from model.mnre_format import DataFormatError

    try:
        queued = prepare(args.database_url, args.mnre)
    except (DataFormatError, LabelStoreError, JobsConfigError) as err:
        print(f"error: {mask_secrets(err)}", file=sys.stderr)
        return 2
    except storage_errors() as err:  # a corrupt var/jobs.db, an unreachable Redis: the job was marked failed
        print(
            f"error: MRELENS_JOBS_URL {mask_secrets(jobs_url())}: the job queue storage cannot be used "
            f"({mask_secrets(err)}); for the default SQLite file, remove it and run this again",
            file=sys.stderr,
        )
        return 2
    what = f"queued jobs {', '.join(map(str, queued))}" if queued else "nothing new to queue"
    log(
        f"data ready in {time.time() - t0:.0f} s; {what}; `python -m app.worker` runs them (see the Jobs page)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
