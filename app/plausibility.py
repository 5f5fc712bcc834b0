"""`python -m app.plausibility --dataset NAME --model VERSION_OR_FOLDER [--split val] [--limit N] [--by NAME]`: the
plausibility table (every explanation method against the stored rationales, faithfulness beside it) of one model
version, printed and stored.

The run is a `plausibility` job run in this process (app.jobs.runner.run_here): the same runner, jobs row, progress
and outcome as the job the Experiments page queues, so the table shows on the Experiments page with who ran it
(--by, else the login name), when, and "python -m app.plausibility" as how; the Jobs page follows it while it runs.
The work itself is app.services.plausibility.dataset_plausibility.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from app.services.plausibility import CLI, finished_job, markdown, table_rows


def login_name() -> str:
    """Who runs the command, for the stored table: the login name, or "command line" where none is known."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no USER/LOGNAME and no passwd entry (some containers)
        return "command line"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog=CLI,
        description="Plausibility (against the stored rationales) and faithfulness of every explanation method, "
        "for one model version on one dataset of the label store (DATABASE_URL); stored as a plausibility job.",
    )
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--model", required=True, help="a registered model version id or a checkpoint folder")
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, help="score only the first N pairs with a rationale")
    ap.add_argument("--n-steps", type=int, default=16, help="integration steps of LayerIG and visual IG")
    ap.add_argument("--by", help="who runs it, stored with the table (default: the login name)")
    ap.add_argument("--json", help="also write the result as JSON to this file")
    args = ap.parse_args(argv)

    from app.jobs.runner import run_here
    from db.base import database_url
    from db.errors import LabelStoreError
    from db.schema import open_database

    params = {
        "dataset": args.dataset,
        "model_version": args.model,
        "split": args.split,
        "limit": args.limit,
        "n_steps": args.n_steps,
        "via": "cli",
    }
    try:
        engine, sessions = open_database(database_url())
    except (LabelStoreError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        job_id, status = run_here(sessions, "plausibility", args.by or login_name(), params)
        job = finished_job(sessions, job_id)
    finally:
        engine.dispose()
    if status != "succeeded":
        print(f"error: job {job_id} {status}: {job.error}", file=sys.stderr)
        return 2
    result = job.outcome
    print(markdown(table_rows([result])))
    print(
        f"\n{result['table']['n_posts']} of {result['n_with_rationale']} pairs with a rationale in {args.dataset}/"
        f"{args.split} scored; left out: {result['table']['skipped'] or 'none'}. Stored as job {job_id} "
        "(Experiments page)."
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
