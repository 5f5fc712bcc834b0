"""`python -m db ...`: import, export, agreement and upgrade of the label store (DATABASE_URL or --database-url)."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import OperationalError

from db.agreement import agreement
from db.io import EXPORT_FORMATS, ExportFilter, export_labels, import_mnre, import_post
from db.label_studio import LABEL_STUDIO_FORMAT, export_label_studio, import_label_studio
from db.models import ANNOTATION_STATUSES
from db.queries import LabelStoreError
from db.schema import head_revision, open_database
from model.mnre_format import DataFormatError

USER_ERROR = 2


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date or time (e.g. 2026-11-27T10:00)"
        ) from err
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m db", description=__doc__)
    parser.add_argument(
        "--database-url", help="SQLAlchemy URL (default: $DATABASE_URL, else sqlite var/mrelens.db)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("import", help="import an MNRE/DeepKE folder (idempotent, all or nothing)")
    p.add_argument("mnre_dir", type=Path)
    p.add_argument("--split", nargs="+", help="splits to import (default: every ours_<split>.txt present)")
    p.add_argument("--dataset", default="mnre", help="dataset name in the store (default: mnre)")
    p.add_argument("--skip-bad", action="store_true", help="leave out bad lines and images, and list them")

    p = sub.add_parser("import-post", help="import one post: text, optional image, head and tail word spans")
    p.add_argument("--text", required=True, help="the post; words are separated by whitespace")
    p.add_argument("--image", type=Path, help="image file (JPEG, PNG, GIF, BMP or WEBP)")
    p.add_argument(
        "--head", nargs=2, type=int, required=True, metavar=("START", "END"), help="word span [START, END)"
    )
    p.add_argument(
        "--tail", nargs=2, type=int, required=True, metavar=("START", "END"), help="word span [START, END)"
    )
    p.add_argument("--label", help="a known relation label, if there is one")
    p.add_argument("--dataset", default="posts")
    p.add_argument("--split", default="new")

    p = sub.add_parser("export", help="export curated labels (written atomically)")
    p.add_argument("--format", required=True, choices=(*EXPORT_FORMATS, LABEL_STUDIO_FORMAT))
    p.add_argument(
        "--out", required=True, type=Path, help="file, or folder for --format mnre (or a .txt file)"
    )
    p.add_argument("--dataset")
    p.add_argument("--split")
    p.add_argument("--status", nargs="+", choices=ANNOTATION_STATUSES, help="current status of the pair")
    p.add_argument("--annotator", help="annotator of the current decision")
    p.add_argument("--label", help="curated label")
    p.add_argument("--since", type=_timestamp, help="decided at or after (ISO time, UTC if no zone)")
    p.add_argument("--until", type=_timestamp, help="decided before (ISO time, UTC if no zone)")
    p.add_argument("--include-rejected", action="store_true", help="keep rejected pairs (not for mnre)")

    p = sub.add_parser("agreement", help="Cohen's kappa and Krippendorff's alpha between annotators")
    p.add_argument("--dataset")
    p.add_argument("--annotators", nargs="+")

    # Label Studio (db/label_studio.py): export is `export --format labelstudio`
    p = sub.add_parser(
        "import-labelstudio", help="import a Label Studio JSON export (idempotent, all or nothing)"
    )
    p.add_argument(
        "file",
        type=Path,
        help="the export (JSON list of tasks) of a project using db/label_studio_config.xml",
    )
    p.add_argument("--dataset", default="labelstudio", help="dataset for pairs drawn in Label Studio")
    p.add_argument(
        "--images", type=Path, help="folder to find images by file name when a task's path is not here"
    )

    sub.add_parser("upgrade", help="create or upgrade the database schema to the latest revision")
    return parser


def run(args: argparse.Namespace) -> None:
    engine, sessions = open_database(args.database_url)
    try:
        if args.command == "upgrade":
            print(
                f"database {engine.url.render_as_string(hide_password=True)} is at revision {head_revision()}"
            )
        elif args.command == "import":
            started = time.perf_counter()
            with sessions.begin() as session:
                report = import_mnre(session, args.mnre_dir, args.split, args.dataset, args.skip_bad)
            print(f"{report.summary()} in {time.perf_counter() - started:.1f} s")
            for problem in report.skipped:
                print(f"skipped: {problem}")
        elif args.command == "import-post":
            with sessions.begin() as session:
                pair, created = import_post(
                    session,
                    args.text,
                    tuple(args.head),
                    tuple(args.tail),
                    args.image,
                    args.dataset,
                    args.split,
                    args.label,
                )
                print(
                    f"{'added' if created else 'already present:'} pair {pair.id} (post {pair.post_id}) "
                    f"in dataset {args.dataset!r}"
                )
        elif args.command == "export":
            flt = ExportFilter(
                dataset=args.dataset,
                split=args.split,
                statuses=args.status,
                annotator=args.annotator,
                label=args.label,
                since=args.since,
                until=args.until,
                include_rejected=args.include_rejected,
            )
            started = time.perf_counter()
            with sessions() as session:
                if args.format == LABEL_STUDIO_FORMAT:
                    report = export_label_studio(session, args.out, flt)
                else:
                    report = export_labels(session, args.format, args.out, flt)
            print(
                f"exported {report.rows} records to {', '.join(map(str, report.paths)) or '(nothing)'} "
                f"in {time.perf_counter() - started:.1f} s"
            )
        elif args.command == "import-labelstudio":  # Label Studio
            with sessions.begin() as session:
                ls_report = import_label_studio(session, args.file, args.dataset, args.images)
            print(ls_report.summary())
            for problem in ls_report.stale:
                print(f"not applied: {problem}")
        elif args.command == "agreement":
            with sessions() as session:
                print(agreement(session, args.dataset, args.annotators).format())
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (DataFormatError, LabelStoreError) as err:
        print(f"error: {err}", file=sys.stderr)
        return USER_ERROR
    except OperationalError as err:
        print(f"error: cannot use the database: {err.orig}", file=sys.stderr)
        return USER_ERROR
    return 0
