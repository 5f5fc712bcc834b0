"""Hostile-input probe of the label store: each class of bad input is tried, and the table records the exit code, the
one error line it gets, and what was checked to be unchanged afterwards.

    python benchmarks/probe_reliability.py [--write benchmarks/reliability.md]

Every command goes through `python -m db` (db.cli.main, in this process, stderr captured); the Add post and review
cases call app.store, as the pages do. "Store unchanged" compares a digest of every row of every table before and
after; files and folders are compared by digest, type (FIFO, device) or presence.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import sqlite3
import stat
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from db.cli import main as db_main  # noqa: E402
from tests.db.conftest import MINI_TRAIN, write_mini_mnre  # noqa: E402


@dataclass
class Probe:
    what: str  # the class of bad input
    rc: int | str
    error: str
    unchanged: str  # what was checked
    held: bool  # the check passed and the error was one line without a traceback


def run_cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = db_main(argv)
        except SystemExit as exit_:
            rc = exit_.code
    return rc, err.getvalue()


def store_digest(db_file: Path) -> str:
    connection = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    digest = hashlib.sha256()
    for line in connection.iterdump():
        digest.update(line.encode())
    connection.close()
    return digest.hexdigest()


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def jpeg(path: Path) -> bytes:
    pixels = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def probe_all(work: Path) -> list[Probe]:
    probes: list[Probe] = []
    mnre = write_mini_mnre(work / "mnre")
    db_file = work / "store.db"
    url = ["--database-url", f"sqlite:///{db_file}"]
    assert run_cli([*url, "import", str(mnre)])[0] == 0

    def cli_case(what: str, argv: list[str], unchanged: str, check: Callable[[], bool] | None = None) -> None:
        before = store_digest(db_file)
        rc, err = run_cli(argv)
        lines = [line for line in err.splitlines() if line.strip()]
        one_line = len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
        same = store_digest(db_file) == before and (check() if check else True)
        probes.append(
            Probe(what, rc, lines[0] if lines else "(nothing)", unchanged, rc == 2 and one_line and same)
        )

    def bad_folder(name: str, mutate: Callable[[Path], None]) -> Path:
        root = write_mini_mnre(work / name)
        mutate(root)
        return root

    image = "img_org/train/img1.jpg"
    half = bad_folder("half", lambda r: (r / image).write_bytes(jpeg(r / image)[:2000]))
    cli_case("JPEG cut in half (import)", [*url, "import", str(half), "--dataset", "x"], "store rows")

    def zero_scan(root: Path) -> None:
        data = bytearray(jpeg(root / image))
        start = data.index(b"\xff\xda") + 20
        middle = start + (len(data) - start) // 2
        data[middle : middle + 3000] = bytes(3000)
        (root / image).write_bytes(bytes(data))

    zeroed = bad_folder("zeroed", zero_scan)
    cli_case(
        "JPEG with 3 KB of scan data zeroed (import)",
        [*url, "import", str(zeroed), "--dataset", "x"],
        "store rows",
    )
    bomb = bad_folder("bomb", lambda r: Image.new("1", (20000, 20000)).save(r / image, "PNG"))
    cli_case(
        "decompression bomb, 20000x20000 PNG named .jpg",
        [*url, "import", str(bomb), "--dataset", "x"],
        "store rows",
    )
    tiff = work / "x.tiff"
    Image.new("RGB", (8, 8)).save(tiff)
    post = ["import-post", "--text", "Obama meets Merkel", "--head", "0", "1", "--tail", "2", "3"]
    cli_case("image in a format not allowed (TIFF)", [*url, *post, "--image", str(tiff)], "store rows")
    fifo = work / "pipe.jpg"
    os.mkfifo(fifo)
    cli_case(
        "FIFO given as --image (must not block)",
        [*url, *post, "--image", str(fifo)],
        "store rows; FIFO still a FIFO",
        lambda: stat.S_ISFIFO(os.stat(fifo).st_mode),
    )
    cli_case(
        "FIFO given as a Label Studio export (must not block)",
        [*url, "import-labelstudio", str(fifo), "--as", "tester"],
        "store rows; FIFO still a FIFO",
        lambda: stat.S_ISFIFO(os.stat(fifo).st_mode),
    )
    cli_case("device (/dev/zero) given as --image", [*url, *post, "--image", "/dev/zero"], "store rows")
    cli_case("directory given as --image", [*url, *post, "--image", str(work)], "store rows")
    big = work / "big.png"
    # noise: no compression keeps it under 1000 bytes
    Image.effect_noise((400, 400), 80).convert("RGB").save(big)
    cli_case(
        "image over --max-image-bytes 1000",
        [*url, *post, "--image", str(big), "--max-image-bytes", "1000"],
        "store rows",
    )
    cli_case(
        "image over --max-image-pixels 10000",
        [*url, *post, "--image", str(big), "--max-image-pixels", "10000"],
        "store rows",
    )
    cli_case(
        "line over --max-line-bytes 100",
        [*url, "import", str(mnre), "--dataset", "x", "--max-line-bytes", "100"],
        "store rows",
    )
    cli_case(
        "split file over --max-file-bytes 300",
        [*url, "import", str(mnre), "--dataset", "x", "--max-file-bytes", "300"],
        "store rows",
    )
    cli_case(
        "post over --max-post-tokens 4",
        [*url, "import", str(mnre), "--dataset", "x", "--max-post-tokens", "4"],
        "store rows",
    )
    latin1 = bad_folder(
        "latin1",
        lambda r: (r / "txt" / "ours_train.txt").write_bytes(
            "".join(x + "\n" for x in MINI_TRAIN).replace("Berlin", "Berl\u00efn").encode("latin-1")
        ),
    )
    cli_case("Latin-1 split file (import)", [*url, "import", str(latin1), "--dataset", "x"], "store rows")
    utf16 = bad_folder(
        "utf16",
        lambda r: (r / "txt" / "ours_val.txt").write_bytes(
            "".join(x + "\n" for x in MINI_TRAIN).encode("utf-16")
        ),
    )
    cli_case("UTF-16 split file (import)", [*url, "import", str(utf16), "--dataset", "x"], "store rows")
    not_dict = bad_folder(
        "notdict", lambda r: (r / "txt" / "ours_train.txt").write_text("[1, 2]\n", encoding="utf-8")
    )
    cli_case("a line that is not a record", [*url, "import", str(not_dict), "--dataset", "x"], "store rows")
    cli_case("unknown --split", [*url, "import", str(mnre), "--split", "tarin"], "store rows")
    text = b"Obama \xff meets".decode("utf-8", "surrogateescape")
    cli_case(
        "post text that is not UTF-8",
        [*url, "import-post", "--text", text, "--head", "0", "1", "--tail", "2", "3"],
        "store rows",
    )
    cli_case("unknown URL scheme", ["--database-url", "mongodb://localhost/x", "agreement"], "store rows")
    typo = work / "stroe.db"
    cli_case(
        "typo in a SQLite URL, read command (export)",
        ["--database-url", f"sqlite:///{typo}", "export", "--format", "csv", "--out", str(work / "t.csv")],
        "no database file created; no export written",
        lambda: not typo.exists() and not (work / "t.csv").exists(),
    )
    foreign = work / "crm.sqlite"
    connection = sqlite3.connect(foreign)
    connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    connection.commit()
    connection.close()
    foreign_bytes = foreign.read_bytes()
    for command in (["agreement"], ["import", str(mnre)], ["init"]):
        cli_case(
            f"another application's SQLite file ({command[0]})",
            ["--database-url", f"sqlite:///{foreign}", *command],
            "file byte-identical, no -wal file (not switched to WAL)",
            lambda: foreign.read_bytes() == foreign_bytes and not Path(f"{foreign}-wal").exists(),
        )
    cli_case(
        "in-memory SQLite (sqlite://) for an import",
        ["--database-url", "sqlite://", "import", str(mnre)],
        "nothing reported as stored",
    )
    out_fifo = work / "out.csv"
    os.mkfifo(out_fifo)
    cli_case(
        "export --out naming a FIFO",
        [*url, "export", "--format", "csv", "--out", str(out_fifo)],
        "FIFO still a FIFO",
        lambda: stat.S_ISFIFO(os.stat(out_fifo).st_mode),
    )
    cli_case(
        "export --out naming a device (/dev/null)",
        [*url, "export", "--format", "csv", "--out", "/dev/null"],
        "/dev/null still a character device",
        lambda: stat.S_ISCHR(os.stat("/dev/null").st_mode),
    )
    folder = work / "a_folder"
    folder.mkdir()
    cli_case(
        "export --out naming a folder (csv)",
        [*url, "export", "--format", "csv", "--out", str(folder)],
        "folder still a folder",
        folder.is_dir,
    )
    cli_case(
        "export --out in a read-only place (/proc)",
        [*url, "export", "--format", "csv", "--out", "/proc/x.csv"],
        "store rows",
    )
    source_before = tree_digest(mnre)
    cli_case(
        "MNRE export into the folder it was imported from",
        [*url, "export", "--format", "mnre", "--out", str(mnre)],
        "source folder digest",
        lambda: tree_digest(mnre) == source_before,
    )
    good = work / "good.csv"
    good.write_text("a good export\n", encoding="utf-8")
    for option, value in (("--dataset", "mnrre"), ("--split", "vall"), ("--annotator", "nobody")):
        cli_case(
            f"export {option} naming nothing in the store",
            [*url, "export", "--format", "csv", "--out", str(good), option, value],
            "earlier export file unchanged",
            lambda: good.read_text(encoding="utf-8") == "a good export\n",
        )
    cli_case(
        "bad --since date",
        [*url, "export", "--format", "csv", "--out", str(good), "--since", "yesterday"],
        "export file unchanged",
    )

    # two imports at once: the second waits for the first's write lock, then finds its rows already there
    race_db = work / "race.db"
    race_url = f"sqlite:///{race_db}"
    run_cli(["--database-url", race_url, "init"])
    from db.io import import_mnre
    from db.schema import open_database

    engine, sessions = open_database(race_url, intent="write")
    outcome: list[tuple[int, str]] = []
    with sessions.begin() as first:
        import_mnre(first, mnre)
        second = threading.Thread(
            target=lambda: outcome.append(run_cli(["--database-url", race_url, "import", str(mnre)]))
        )
        second.start()
        second.join(timeout=1.5)
    second.join(timeout=60)
    engine.dispose()
    rc, err = outcome[0] if outcome else ("hung", "")
    lines = [line for line in err.splitlines() if line.strip()]
    probes.append(
        Probe(
            "two imports of the same folder at once",
            rc,
            lines[0] if lines else "(nothing)",
            "first import's rows kept",
            rc == 2 and len(lines) == 1,
        )
    )

    # the app's paths: Add post uploads and racing reviewers
    from app.store import UploadedImage, add_post, decide, undo
    from db.annotations import pair_history
    from db.errors import ConcurrentEditError
    from model.mnre_format import DataFormatError

    uploads = work / "uploads"
    cut = jpeg(work / "up.jpg")[:1500]
    engine, sessions = open_database(f"sqlite:///{db_file}", intent="write")
    before = store_digest(db_file)
    try:
        add_post(sessions, "Obama meets Merkel", (0, 1), (2, 3), UploadedImage(cut, "My photo.jpg"), uploads)
        error = "(accepted)"
    except DataFormatError as err:
        error = str(err)
    left = sorted(p.name for p in uploads.rglob("*") if p.is_file()) if uploads.exists() else []
    probes.append(
        Probe(
            "Add post: upload of a cut JPEG",
            "page error",
            error,
            "uploads folder empty; store rows; message names the user's file, not the hashed path",
            error.startswith("My photo.jpg:") and not left and store_digest(db_file) == before,
        )
    )
    pair_id = 1
    mine = decide(sessions, pair_id, "corrected", "A", 0, "None")
    theirs = decide(sessions, pair_id, "corrected", "B", mine.revision, "/per/org/member_of")
    try:
        undo(sessions, pair_id, "A", mine.revision)
        error = "(undone)"
    except ConcurrentEditError as err:
        error = str(err)
    with sessions() as session:
        history = [(a.annotator, a.label) for a in pair_history(session, pair_id)]
    probes.append(
        Probe(
            "undo by A after B decided on top of A's decision",
            "ConcurrentEditError",
            error,
            "B's decision stays current (history A, B only)",
            history == [("A", "None"), ("B", "/per/org/member_of")] and theirs.revision == 2,
        )
    )
    try:
        decide(sessions, pair_id, "accepted", "C", mine.revision)
        error = "(saved)"
    except ConcurrentEditError as err:
        error = str(err)
    probes.append(
        Probe(
            "save on a revision that is no longer current",
            "ConcurrentEditError",
            error,
            "nothing appended",
            error.startswith("pair 1 was changed by B"),
        )
    )
    engine.dispose()
    return probes


def markdown(probes: list[Probe]) -> str:
    lines = [
        "# Reliability: bad input to the label store (benchmarks/probe_reliability.py)",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on this 2-core machine, SQLite store in a temporary folder "
        "holding the tests' mini MNRE folder. rc 2 is `python -m db`'s user-error exit; each error is the whole of "
        "what the command printed on stderr. The store's rows were compared (digest of every row) before and after "
        f"each command. {sum(p.held for p in probes)} of {len(probes)} held.",
        "",
        "| bad input | rc | error (one line) | checked unchanged | held |",
        "|---|---|---|---|---|",
    ]
    for p in probes:
        error = p.error.replace("|", "\\|")
        if len(error) > 220:
            error = error[:217] + "..."
        lines.append(f"| {p.what} | {p.rc} | {error} | {p.unchanged} | {'yes' if p.held else 'NO'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--write", type=Path, help="markdown file for the table (e.g. benchmarks/reliability.md)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        probes = probe_all(Path(tmp))
        text = markdown(probes).replace(tmp, "<tmp>")
    print(text)
    if args.write:
        args.write.write_text(text, encoding="utf-8")
    return 0 if all(p.held for p in probes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
