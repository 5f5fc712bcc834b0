"""`python -m db ...`: init, import, export, agreement and upgrade of the label store (DATABASE_URL or --database-url).

Who acts: every command runs as the admin of the store it opens (the person at this machine); a command that records
decisions under other names (import-labelstudio, from a Label Studio file) needs `--as NAME`, says who ran it and lists
the names it records. Only init and the imports create a store; the other commands need an existing one, and none alters a database that
holds other tables. A user error (bad argument, file, URL or target) exits 2 with one `error:` line.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from db.agreement import agreement, rationale_agreement
from db.base import database_url
from db.datasets import check_filter_names
from db.errors import LabelStoreError
from db.export_rows import ExportFilter
from db.io import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, InputLimits, import_mnre, import_post
from db.label_export import EXPORT_FORMATS, export_labels
from db.label_studio import (
    DEFAULT_MAX_FILE_BYTES,
    LABEL_STUDIO_FORMAT,
    export_label_studio,
    import_label_studio,
)
from db.models import ANNOTATION_STATUSES
from db.redact import mask_secrets
from db.roles import ADMIN, Actor
from db.schema import head_revision, open_database, upgrade_store
from db.validate import check_identity
from model.mnre_format import DataFormatError, ReaderLimits
from model.safe_write import UnsafeTargetError

USER_ERROR = 2
# what each command may do with the database URL (db.schema.open_database)
COMMAND_INTENTS = {
    "init": "create",
    "import": "create",
    "import-labelstudio": "create",
    "import-post": "write",
    "upgrade": "upgrade",  # db.schema.upgrade_store: the one command that changes an existing store's schema
    "export": "read",
    "agreement": "read",
}


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one `error:` line (exit 2), not usage text."""

    def error(self, message: str):
        self.exit(USER_ERROR, f"error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from err
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return value


def _add_limits(parser: argparse.ArgumentParser, *, text: bool) -> None:
    if text:
        defaults = ReaderLimits()
        parser.add_argument(
            "--max-line-bytes",
            type=_positive_int,
            help=f"bytes per line (default {defaults.max_line_bytes}, or $MRELENS_MAX_LINE_BYTES)",
        )
        parser.add_argument(
            "--max-file-bytes",
            type=_positive_int,
            help=f"bytes per split file (default {defaults.max_file_bytes}, or $MRELENS_MAX_FILE_BYTES)",
        )
        parser.add_argument(
            "--max-post-tokens",
            type=_positive_int,
            help=f"words per post (default {defaults.max_post_tokens}, or $MRELENS_MAX_POST_TOKENS)",
        )
    parser.add_argument(
        "--max-image-bytes", type=_positive_int, help=f"bytes per image file (default {MAX_IMAGE_BYTES})"
    )
    parser.add_argument(
        "--max-image-pixels", type=_positive_int, help=f"pixels per image (default {MAX_IMAGE_PIXELS})"
    )


def _limits(args: argparse.Namespace) -> InputLimits:
    return InputLimits(
        max_line_bytes=getattr(args, "max_line_bytes", None),
        max_file_bytes=getattr(args, "max_file_bytes", None),
        max_post_tokens=getattr(args, "max_post_tokens", None),
        max_image_bytes=args.max_image_bytes,
        max_image_pixels=args.max_image_pixels,
    )


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date or time (e.g. 2026-11-27T10:00)"
        ) from err
    try:  # in UTC now: a time near year 1 or 9999 with an offset has no UTC value
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range once converted to UTC") from err


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="python -m db", description=__doc__)
    parser.add_argument(
        "--database-url", help="SQLAlchemy URL (default: $DATABASE_URL, else sqlite var/mrelens.db)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    command = commands.add_parser("import", help="import an MNRE/DeepKE folder (idempotent, all or nothing)")
    command.add_argument("mnre_dir", type=Path)
    command.add_argument(
        "--split", nargs="+", help="splits to import (default: every ours_<split>.txt present)"
    )
    command.add_argument("--dataset", default="mnre", help="dataset name in the store (default: mnre)")
    command.add_argument(
        "--skip-bad", action="store_true", help="leave out bad lines and images, and list them"
    )
    _add_limits(command, text=True)

    command = commands.add_parser(
        "import-post", help="import one post: text, optional image, head and tail word spans"
    )
    command.add_argument("--text", required=True, help="the post; words are separated by whitespace")
    command.add_argument("--image", type=Path, help="image file (JPEG, PNG, GIF, BMP or WEBP)")
    command.add_argument(
        "--head", nargs=2, type=int, required=True, metavar=("START", "END"), help="word span [START, END)"
    )
    command.add_argument(
        "--tail", nargs=2, type=int, required=True, metavar=("START", "END"), help="word span [START, END)"
    )
    command.add_argument("--label", help="a known relation label, if there is one")
    command.add_argument("--dataset", default="posts")
    command.add_argument("--split", default="new")
    _add_limits(command, text=False)

    command = commands.add_parser("export", help="export curated labels (written atomically)")
    command.add_argument("--format", required=True, choices=(*EXPORT_FORMATS, LABEL_STUDIO_FORMAT))
    command.add_argument(
        "--out", required=True, type=Path, help="file, or folder for --format mnre (or a .txt file)"
    )
    command.add_argument("--dataset")
    command.add_argument("--split")
    command.add_argument(
        "--status", nargs="+", choices=ANNOTATION_STATUSES, help="current status of the pair"
    )
    command.add_argument("--annotator", help="annotator of the current decision")
    command.add_argument("--label", help="curated label")
    command.add_argument("--since", type=_timestamp, help="decided at or after (ISO time, UTC if no zone)")
    command.add_argument("--until", type=_timestamp, help="decided before (ISO time, UTC if no zone)")
    command.add_argument("--include-rejected", action="store_true", help="keep rejected pairs (not for mnre)")

    command = commands.add_parser(
        "agreement",
        help="Cohen's kappa and Krippendorff's alpha between annotators; token kappa, token F1 and box IoU of "
        "their rationales",
    )
    command.add_argument("--dataset")
    command.add_argument("--annotators", nargs="+")

    # Label Studio (db/label_studio.py): export is `export --format labelstudio`
    command = commands.add_parser(
        "import-labelstudio", help="import a Label Studio JSON export (idempotent, all or nothing)"
    )
    command.add_argument(
        "file",
        type=Path,
        help="the export (JSON list of tasks) of a project using db/label_studio_config.xml",
    )
    command.add_argument("--dataset", default="labelstudio", help="dataset for pairs drawn in Label Studio")
    command.add_argument(
        "--images",
        type=Path,
        help="folder of the tasks' images (found by file name, or a stored path inside it); stored paths "
        "elsewhere are used only inside the folder their dataset was imported from",
    )
    command.add_argument(
        "--as",
        dest="acting",
        required=True,
        metavar="NAME",
        help="who runs this import (required): the command acts as NAME, the admin of this store, and records "
        "each decision under its Label Studio annotator's name",
    )
    command.add_argument(
        "--max-file-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_FILE_BYTES,
        help=f"largest export file read (default {DEFAULT_MAX_FILE_BYTES})",
    )

    commands.add_parser(
        "init", help="create a new label store (or upgrade an existing one) at the database URL"
    )
    commands.add_parser(
        "upgrade",
        help="upgrade an existing label store to the latest schema revision (a SQLite file is backed up first); "
        "the other commands never change the schema of an existing store except init and the imports",
    )
    return parser


def run(args: argparse.Namespace) -> None:
    if args.command == "upgrade":
        before, after, backup = upgrade_store(args.database_url)
        shown = make_url(database_url(args.database_url)).render_as_string(hide_password=True)
        if before == after:
            print(f"database {shown} is at revision {after}: nothing to upgrade")
        else:
            kept = f"; the store before the upgrade is kept in {backup}" if backup else ""
            print(f"database {shown} upgraded from revision {before} to {after}{kept}")
        return
    engine, sessions = open_database(args.database_url, intent=COMMAND_INTENTS[args.command])
    try:
        if args.command == "init":
            print(
                f"database {engine.url.render_as_string(hide_password=True)} is at revision {head_revision()}"
            )
        elif args.command == "import":
            started = time.perf_counter()
            with sessions.begin() as session:
                report = import_mnre(
                    session, args.mnre_dir, args.split, args.dataset, args.skip_bad, limits=_limits(args)
                )
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
                    limits=_limits(args),
                )
                print(
                    f"{'added' if created else 'already present:'} pair {pair.id} (post {pair.post_id}) "
                    f"in dataset {args.dataset!r}"
                )
        elif args.command == "export":
            export_filter = ExportFilter(
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
                check_filter_names(session, args.dataset, args.split, args.annotator, args.label)
                if args.format == LABEL_STUDIO_FORMAT:
                    report = export_label_studio(session, args.out, export_filter)
                else:
                    report = export_labels(session, args.format, args.out, export_filter)
            print(
                f"exported {report.rows} records to {', '.join(map(str, report.paths)) or '(nothing)'} "
                f"in {time.perf_counter() - started:.1f} s"
            )
        elif args.command == "import-labelstudio":  # Label Studio
            acting = Actor(check_identity(args.acting, "--as", "NAME"), ADMIN)
            with sessions.begin() as session:
                ls_report = import_label_studio(
                    session, args.file, args.dataset, args.images, acting, args.max_file_bytes
                )
            annotators = sorted(ls_report.annotators)
            print(
                f"imported by {acting.identity} (acting as the admin of this store); decisions recorded under "
                f"{len(annotators)} Label Studio annotator names: {', '.join(map(repr, annotators)) or 'none'}"
            )
            print(ls_report.summary())
            for problem in ls_report.stale:
                print(f"not applied: {problem}")
            for problem in ls_report.ignored:
                print(f"ignored: {problem}")
        elif args.command == "agreement":
            with sessions() as session:
                print(agreement(session, args.dataset, args.annotators).format())
                print(rationale_agreement(session, args.dataset).format())
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (DataFormatError, LabelStoreError, UnsafeTargetError) as err:
        print(f"error: {mask_secrets(err)}", file=sys.stderr)
        return USER_ERROR
    except IntegrityError as err:
        # two imports of the same data at once: the other one stored the rows first
        print(
            "error: another import or save stored the same rows at the same time; nothing of this run was "
            f"kept. Run it again (imports are idempotent). ({str(err.orig).splitlines()[0]})",
            file=sys.stderr,
        )
        return USER_ERROR
    except OperationalError as err:
        print(
            f"error: cannot use the database: {mask_secrets(str(err.orig).splitlines()[0])}", file=sys.stderr
        )
        return USER_ERROR
    return 0
