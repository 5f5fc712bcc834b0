"""Hostile-input probe of the label store: each class of bad input is tried, and the table records the exit code, the
one error line it gets, and what was checked to be unchanged afterwards.

    python benchmarks/probe_reliability.py [--write benchmarks/reliability.md]

Every command goes through `python -m db` (db.cli.main, in this process, stderr captured); the Add post and review
cases call app.services.store, as the pages do. "Store unchanged" compares a digest of every row of every table before and
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

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
    from app.services.store import UploadedImage, add_post, decide, undo
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


# ----------------------------------------------------------------------------------------------------------------
# Round 3: writes that escape their folder, imports that trust what they read, identities, secrets and output


def ls_task(**meta) -> dict:
    """One Label Studio task (the shipped config), optionally with a data.mrelens block."""
    task = {
        "data": {"text": "Messi joins Inter Miami"},
        "annotations": [
            {
                "completed_by": 3,
                "was_cancelled": False,
                "created_at": "2026-11-02T10:00:00Z",
                "result": [
                    {
                        "id": "a",
                        "from_name": "entity",
                        "to_name": "text",
                        "type": "labels",
                        "value": {"start": 0, "end": 5, "text": "Messi", "labels": ["head"]},
                    },
                    {
                        "id": "b",
                        "from_name": "entity",
                        "to_name": "text",
                        "type": "labels",
                        "value": {"start": 12, "end": 23, "text": "Inter Miami", "labels": ["tail"]},
                    },
                    {"from_id": "a", "to_id": "b", "type": "relation", "labels": ["/per/org/member_of"]},
                ],
            }
        ],
    }
    if meta:
        task["data"]["mrelens"] = {
            "tokens": ["Messi", "joins", "Inter", "Miami"],
            "head": [0, 1],
            "tail": [2, 4],
            **meta,
        }
    return task


def probe_round3(work: Path) -> list[Probe]:
    import json
    import subprocess

    from sqlalchemy import update

    from db.roles import ADMIN, REVIEWER, Actor, PermissionDeniedError, role_for
    from db.schema import open_database, upgrade_database

    probes: list[Probe] = []
    work.mkdir()
    mnre = write_mini_mnre(work / "mnre")
    db_file = work / "store.db"
    url = ["--database-url", f"sqlite:///{db_file}"]
    assert run_cli([*url, "import", str(mnre)])[0] == 0

    def case(what: str, argv: list[str], unchanged: str, check: Callable[[], bool] | None = None) -> None:
        before = store_digest(db_file)
        rc, err = run_cli(argv)
        lines = [line for line in err.splitlines() if line.strip()]
        one_line = len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
        same = store_digest(db_file) == before and (check() if check else True)
        probes.append(
            Probe(what, rc, lines[0] if lines else "(nothing)", unchanged, rc == 2 and one_line and same)
        )

    def ls_file(name: str, tasks) -> Path:
        path = work / name
        path.write_text(json.dumps(tasks), encoding="utf-8")
        return path

    def ls_case(what: str, tasks, unchanged: str = "store rows", extra: list[str] | None = None) -> None:
        path = tasks if isinstance(tasks, Path) else ls_file("ls.json", tasks)
        case(what, [*url, "import-labelstudio", str(path), "--as", "tester", *(extra or [])], unchanged)

    # writes
    post = ["import-post", "--text", "Obama meets Merkel", "--head", "0", "1", "--tail", "2", "3"]
    case(
        "import-post --split with path characters (x/../../elsewhere)",
        [*url, *post, "--split", "x/../../../elsewhere"],
        "store rows",
    )
    legacy = work / "legacy.db"
    legacy.write_bytes(db_file.read_bytes())
    connection = sqlite3.connect(legacy)
    connection.execute("UPDATE entity_pairs SET split = 'x/../../../elsewhere' WHERE split = 'val'")
    connection.commit()
    connection.close()
    before_legacy = store_digest(legacy)
    rc, err = run_cli(
        [
            "--database-url",
            f"sqlite:///{legacy}",
            "export",
            "--format",
            "mnre",
            "--out",
            str(work / "deep" / "out"),
        ]
    )
    escaped = list(work.rglob("elsewhere*"))
    probes.append(
        Probe(
            "MNRE export of a split name stored with path characters (older store)",
            rc,
            err.strip().splitlines()[0] if err.strip() else "(nothing)",
            "no file outside --out; no --out folder left; store rows",
            rc == 2
            and not escaped
            and not (work / "deep" / "out").exists()
            and store_digest(legacy) == before_legacy,
        )
    )
    source = mnre / "txt" / "ours_train.txt"
    source_bytes = source.read_bytes()
    case(
        "Label Studio export --out onto the imported ours_train.txt",
        [*url, "export", "--format", "labelstudio", "--out", str(source)],
        "source file byte-identical",
        lambda: source.read_bytes() == source_bytes,
    )
    out = work / "curated"
    assert run_cli([*url, "export", "--format", "mnre", "--out", str(out)])[0] == 0
    old = tree_digest(out)
    from db import export_rows

    real, calls = export_rows.write_text_lines, []

    def disk_full_on_second(lines):
        inner = real(lines)

        def write(tmp):
            calls.append(tmp)
            inner(tmp)
            if len(calls) == 2:
                raise OSError(28, "No space left on device")

        return write

    export_rows.write_text_lines = disk_full_on_second
    try:
        case(
            "MNRE export of 3 files, disk full on the 2nd (simulated)",
            [*url, "export", "--format", "mnre", "--out", str(out)],
            "old export folder byte-identical (train, val, ours_rel2id.json); no temporary folder left",
            lambda: (
                tree_digest(out) == old and not [p for p in work.iterdir() if p.name.startswith(".curated")]
            ),
        )
    finally:
        export_rows.write_text_lines = real
    posts = work / "posts.jsonl"
    posts.write_text('{"text": "Obama meets Merkel", "head": [0, 1], "tail": [2, 3]}\n', encoding="utf-8")
    posts_bytes = posts.read_bytes()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "model.predict",
            str(posts),
            "--model",
            str(work / "none"),
            "--out",
            str(posts),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    lines = done.stderr.strip().splitlines()
    probes.append(
        Probe(
            "model.predict --out naming its own input",
            done.returncode,
            lines[0] if lines else "(nothing)",
            "input byte-identical",
            done.returncode == 2 and len(lines) == 1 and posts.read_bytes() == posts_bytes,
        )
    )

    # imports that trust what they read
    outside = work / "private"
    outside.mkdir()
    Image.new("RGB", (8, 8)).save(outside / "secret.png")
    summaries = []
    for target in (outside / "secret.png", outside / "notes.txt", outside / "missing.png"):
        (outside / "notes.txt").write_text("not an image")
        rc, _ = run_cli(
            [
                *url,
                "import-labelstudio",
                str(ls_file("img.json", [{**ls_task(image_path=str(target))}])),
                "--as",
                "tester",
                "--dataset",
                "lsimg",
            ]
        )
        from db.label_studio import read_label_studio

        parsed = read_label_studio(work / "img.json", "lsimg")
        summaries.append((rc, parsed.plans[0].image_path, len(parsed.images_passed_over)))
    probes.append(
        Probe(
            "Label Studio image_path outside every image folder: an image, a text file, a missing path",
            summaries[0][0],
            '(imported without image; "1 stored image paths outside the image folders not used (give --images)")',
            "the same outcome for all three (no image, nothing opened, nothing said about existence)",
            len(set(summaries)) == 1 and summaries[0][1] is None,
        )
    )
    ls_case("Label Studio raw_line [1, 2, 3]", [ls_task(raw_line="[1, 2, 3]", split="val")])
    ls_case("Label Studio raw_line nested 100,000 deep", [ls_task(raw_line="[" * 100_000, split="val")])
    ls_case(
        "Label Studio raw_line of another record",
        [
            ls_task(
                raw_line=repr(
                    {
                        "token": ["x", "y"],
                        "h": {"name": "x", "pos": [0, 1]},
                        "t": {"name": "y", "pos": [1, 2]},
                        "img_id": None,
                        "relation": "None",
                    }
                ),
                split="val",
            )
        ],
    )
    ls_case(
        "Label Studio gold label outside the label map", [ls_task(gold_label="/per/per/friend", split="val")]
    )
    ls_case("Label Studio split with path characters", [ls_task(split="../../elsewhere")])
    ls_case(
        "Label Studio new pair in the dataset imported from an MNRE folder",
        [ls_task(dataset="mnre", split="train", source_key="train:99")],
    )
    ls_case(
        "Label Studio annotator name of 300 characters",
        [{**ls_task(), "annotations": [{**ls_task()["annotations"][0], "completed_by": "x" * 300}]}],
    )
    ls_case(
        "Label Studio annotator name with a newline",
        [
            {
                **ls_task(),
                "annotations": [
                    {**ls_task()["annotations"][0], "completed_by": "eve\nCohen's kappa a vs b: 1.000"}
                ],
            }
        ],
    )
    ls_case(
        "Label Studio post of 200,000 words",
        [{**ls_task(), "data": {"text": "Messi joins Inter Miami" + " w" * 200_000}}],
    )
    big = work / "big.json"
    with open(big, "w", encoding="utf-8") as fh:
        fh.write("[" + " " * (96 << 20) + "]")
    ls_case("Label Studio file of 96 MB (limit 64 MiB)", big)
    big.unlink()
    deep = work / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    ls_case("Label Studio file nested 200,000 deep", deep)
    ls_case(
        "Label Studio time 9999-12-31T23:59:59-05:00",
        [
            {
                **ls_task(),
                "annotations": [{**ls_task()["annotations"][0], "created_at": "9999-12-31T23:59:59-05:00"}],
            }
        ],
    )
    listed = ls_task()
    listed["annotations"][0]["result"][2]["labels"] = [["/per/org/member_of"]]
    ls_case("Label Studio list-valued relation", [listed])
    case(
        "import-labelstudio without --as",
        [*url, "import-labelstudio", str(ls_file("ok.json", [ls_task()]))],
        "store rows",
    )
    # a skip re-imported
    engine, sessions = open_database(f"sqlite:///{db_file}", intent="write")
    from db.annotations import record_annotation

    with sessions.begin() as session:
        from db.models import EntityPair

        pair = (
            session.query(EntityPair)
            .filter(EntityPair.split == "train", EntityPair.source_line == 2)
            .one()
            .id
        )
        record_annotation(
            session, pair, status="corrected", label="None", annotator="alice", expected_revision=0
        )
        record_annotation(session, pair, status="skipped", annotator="bob", expected_revision=1)
    engine.dispose()
    tasks_file = work / "tasks.json"
    assert (
        run_cli([*url, "export", "--format", "labelstudio", "--out", str(tasks_file), "--split", "train"])[0]
        == 0
    )
    tasks = json.loads(tasks_file.read_text())
    for task in tasks:
        for annotation in task["annotations"]:
            if annotation["was_cancelled"]:
                annotation["result"] = []
    tasks_file.write_text(json.dumps(tasks))
    digests = []
    for _ in range(3):
        run_cli([*url, "import-labelstudio", str(tasks_file), "--as", "tester"])
        digests.append(store_digest(db_file))
    probes.append(
        Probe(
            "Label Studio skip (no result) imported three times",
            0,
            "(1st import adds nothing new; 2nd and 3rd add nothing)",
            "store rows equal after each import",
            len(set(digests)) == 1,
        )
    )

    # model.predict lines
    from model.mnre_format import DataFormatError
    from model.predict import numbered_lines, parse_post

    lines_file = work / "hostile.jsonl"
    with open(lines_file, "wb") as fh:
        fh.write(b'{"text": "a b", "head": [0, 1], "tail": [1, 2], "n": ' + b"7" * 5000 + b"}\n")
        fh.write(
            b'{"text": "a b", "head": [0, 1], "tail": [1, 2], "x": '
            + b"[" * 100_000
            + b"]" * 100_000
            + b"}\n"
        )
        fh.write('{"text": "Müller trifft Merkel", "head": [0, 1], "tail": [2, 3]}\n'.encode("latin-1"))
        fh.write(b'{"text": "' + b"x " * (50 << 20) + b'", "head": [0, 1], "tail": [1, 2]}\n')
        fh.write(b'{"text": "a b", "head": [0, 1], "tail": [1, 2]}\n')
    import tracemalloc

    tracemalloc.start()
    outcomes = []
    for number, text in numbered_lines(lines_file):
        try:
            outcomes.append(parse_post(text, number, "hostile.jsonl") if isinstance(text, str) else text)
        except DataFormatError as err:
            outcomes.append(err)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    lines_file.unlink()
    errors = [str(o) for o in outcomes if isinstance(o, DataFormatError)]
    probes.append(
        Probe(
            "model.predict: 5,000-digit integer, 100,000-deep nesting, a Latin-1 line, a 100 MB line, then a good line",
            "per-line errors",
            " / ".join(e.split(": ", 1)[1][:60] for e in errors),
            f"each bad line its own error record and the good line parsed; peak traced memory {peak / 2**20:.1f} MiB",
            len(errors) == 4 and not isinstance(outcomes[-1], DataFormatError) and peak < 8 << 20,
        )
    )

    # identity and roles
    cases = [
        ("\u017fam@example.org", "sam@example.org", "email"),
        ("\u212aate@example.org", "kate@example.org", "email"),
        ("stra\u00dfe@example.org", "strasse@example.org", "email"),
        ("s\u0430m@example.org", "sam@example.org", "email"),
        ("admin@example.org", "admin@example.org", "sub"),
    ]
    roles = [role_for(identity, [admin], claim) for identity, admin, claim in cases]
    probes.append(
        Probe(
            "admin look-alikes: long s, Kelvin sign, sharp s vs ss, Cyrillic a; a subject equal to an admin's email",
            "role",
            ", ".join(roles),
            "none is admin (RFC 8265 comparison, look-alikes refused)",
            set(roles) == {REVIEWER},
        )
    )
    from app.ui.auth import provider_claim

    claims = [
        provider_claim({"email": "admin@example.org", "email_verified": v, "sub": "s"})[1]
        for v in ("false", 0, "true", None)
    ]
    probes.append(
        Probe(
            'email_verified "false", 0, "true", missing',
            "claim used",
            ", ".join(claims),
            "the email is never used (only the boolean true verifies it)",
            set(claims) == {"sub"},
        )
    )
    engine, sessions = open_database(f"sqlite:///{db_file}", intent="write")
    from db.annotations import undo_last
    from db.jobs import create_job, request_cancel

    refusals = []
    try:
        with sessions.begin() as session:
            undo_last(
                session, pair, annotator="mallory", expected_revision=2, actor=Actor("mallory", REVIEWER)
            )
    except PermissionDeniedError as err:
        refusals.append(str(err))
    with sessions.begin() as session:
        job = create_job(session, "first_model", "boss", {}).id
    try:
        with sessions.begin() as session:
            request_cancel(session, job, actor=Actor("mallory", REVIEWER))
    except PermissionDeniedError as err:
        refusals.append(str(err))
    with sessions.begin() as session:
        request_cancel(session, job, actor=Actor("boss", ADMIN))
    engine.dispose()
    probes.append(
        Probe(
            "a reviewer undoes another reviewer's decision, cancels an admin's job",
            "PermissionDeniedError",
            " / ".join(refusals),
            "nothing appended, job left queued",
            len(refusals) == 2,
        )
    )

    # secrets, output, errors
    env = {
        **os.environ,
        "MRELENS_JOBS_URL": "bogus://worker:s3cret@127.0.0.1:6379/0",
        "DATABASE_URL": f"sqlite:///{db_file}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "app.worker", "--threads", "1", "--nice", "0"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    probes.append(
        Probe(
            "worker with a password in MRELENS_JOBS_URL (unusable scheme)",
            done.returncode,
            done.stderr.strip().splitlines()[0] if done.stderr.strip() else "(nothing)",
            "no password in the output",
            done.returncode == 2 and "s3cret" not in done.stdout + done.stderr,
        )
    )
    jobs_db = work / "jobs.db"
    jobs_db.write_bytes(b"not a database" * 200)
    env["MRELENS_JOBS_URL"] = f"sqlite:///{jobs_db}"
    done = subprocess.run(
        [sys.executable, "-m", "app.worker", "--threads", "1", "--nice", "0"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    probes.append(
        Probe(
            "worker on a corrupt jobs.db",
            done.returncode,
            done.stderr.strip().splitlines()[0] if done.stderr.strip() else "(nothing)",
            "one error line, no traceback",
            done.returncode == 2 and "Traceback" not in done.stderr,
        )
    )
    removed = work / "jobs-removed.db"
    os.environ["MRELENS_JOBS_URL"] = f"sqlite:///{removed}"
    try:
        from app.jobs import enqueue
        from app.jobs.queue import QUEUE_NAME, get_queue
        from app.worker import check_queue_storage

        get_queue()
        engine, sessions = open_database(f"sqlite:///{db_file}", intent="write")
        job = enqueue(sessions, "score", "ann", {})
        removed.unlink()  # the queued task goes with the file, while the worker holds it open
        sent = check_queue_storage(sessions)  # what the worker's watch thread does every 2 s
        from huey import SqliteHuey

        pending = SqliteHuey(QUEUE_NAME, filename=str(removed), results=False).pending_count()
        engine.dispose()
    finally:
        del os.environ["MRELENS_JOBS_URL"]
    probes.append(
        Probe(
            "jobs.db removed while the worker runs, a job queued in it",
            "sent again",
            f"(job {job} sent again into the new jobs.db: {sent})",
            "the job is pending in the new file, not queued forever",
            sent == [job] and pending == 1,
        )
    )
    for what, bad_url in (
        ("port that is not a number", "postgresql+psycopg://u:s3cret@localhost:abc/db"),
        ("unclosed IPv6 bracket", "postgresql+psycopg://u:s3cret@[::1/db"),
        ("driver not installed (pg8000)", "postgresql+pg8000://u:s3cret@localhost/db"),
    ):
        case(
            f"database URL: {what}",
            ["--database-url", bad_url, "agreement"],
            "store rows; no password in the error",
        )
    case(
        "export --since 9999-12-31T23:00-05:00",
        [
            *url,
            "export",
            "--format",
            "csv",
            "--out",
            str(work / "x.csv"),
            "--since",
            "9999-12-31T23:00-05:00",
        ],
        "store rows",
    )
    engine, sessions = open_database(f"sqlite:///{db_file}", intent="write")
    with sessions.begin() as session:
        record_annotation(
            session,
            pair,
            status="corrected",
            label="None",
            annotator="carol",
            expected_revision=2,
            note='=HYPERLINK("http://evil.example","x")',
        )
        from db.models import Annotation

        session.execute(
            update(Annotation)
            .where(Annotation.annotator == "bob")
            .values(annotator="bob\nKrippendorff's alpha (nominal): 1.000")
        )
    engine.dispose()
    csv_out = work / "labels.csv"
    run_cli([*url, "export", "--format", "csv", "--out", str(csv_out)])
    import csv as csv_module

    cells = [value for row in csv_module.reader(csv_out.open(encoding="utf-8")) for value in row]
    risky = [c for c in cells if c.startswith(("=", "+", "@", "\t", "\r"))]
    probes.append(
        Probe(
            "CSV export of a note =HYPERLINK(...)",
            0,
            "(the cell is written as '=HYPERLINK(...))",
            "no cell starts with = + @ tab CR",
            not risky and any(c.startswith("'=HYPERLINK") for c in cells),
        )
    )
    out_text = io.StringIO()
    with contextlib.redirect_stdout(out_text):
        db_main([*url, "agreement"])
    forged = [line for line in out_text.getvalue().splitlines() if line.startswith("Krippendorff")]
    probes.append(
        Probe(
            'agreement with an annotator named "bob\\nKrippendorff\'s alpha (nominal): 1.000" (older store)',
            0,
            "(the name is shown as bob\\u000aKrippendorff's ...)",
            "one Krippendorff line",
            len(forged) == 1,
        )
    )
    old_store = work / "old.db"
    upgrade_database(f"sqlite:///{old_store}", revision="0001")
    old_bytes = old_store.read_bytes()
    case(
        "export on a store made by an older version (revision 0001)",
        [
            "--database-url",
            f"sqlite:///{old_store}",
            "export",
            "--format",
            "jsonl",
            "--out",
            str(work / "o.jsonl"),
        ],
        "store file byte-identical, still at 0001",
        lambda: old_store.read_bytes() == old_bytes,
    )
    rc, _ = run_cli(["--database-url", f"sqlite:///{old_store}", "upgrade"])
    backups = list(work.glob("old.db.*.bak"))
    probes.append(
        Probe(
            "python -m db upgrade of that store",
            rc,
            f"(backup {backups[0].name if backups else 'missing'})",
            "backup holds revision 0001",
            rc == 0 and len(backups) == 1 and backups[0].read_bytes()[:16] == b"SQLite format 3\x00",
        )
    )
    return probes


def fuzz(examples: int) -> tuple[str, bool]:
    """Run the property tests with `examples` per importer (MRELENS_FUZZ_EXAMPLES); markdown lines and success."""
    import subprocess
    import time

    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/db/test_import_properties.py",
            "--hypothesis-show-statistics",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "MRELENS_FUZZ_EXAMPLES": str(examples)},
    )
    seconds = time.perf_counter() - started
    lines = [
        f"## Property-based run (Hypothesis, {examples} examples per importer, {examples * 8} predict lines)",
        "",
        f"`MRELENS_FUZZ_EXAMPLES={examples} pytest tests/db/test_import_properties.py`: exit {done.returncode} in {seconds:.0f} s "
        "(CI runs 40 / 40 / 320 examples). Per test: examples run, then what happened to the inputs (Hypothesis events, share of "
        "all calls):",
        "",
    ]
    for block in done.stdout.split("tests/db/test_import_properties.py::")[1:]:
        name = block.split(":", 1)[0]
        passing = next((line.strip("- ").strip() for line in block.splitlines() if "passing" in line), "")
        lines.append(f"- `{name}`: {passing}")
        events = [
            line.strip()[2:]
            for line in block.splitlines()
            if line.strip().startswith("* ") and "Retried draw" not in line
        ]
        for event in events[:8]:
            lines.append(f"  - {event}")
    return "\n".join(lines) + "\n", done.returncode == 0


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


def markdown_round3(probes: list[Probe]) -> str:
    """The round-3 table: writes, imports, model.predict lines, identities, secrets and output."""
    table = markdown(probes).split("\n", 4)[4]  # the rows, without the first table's heading
    return (
        "## Round 3: writes outside their target, imports that trust what they read, identities, secrets\n\n"
        "Same rules: rc 2 and one `error:` line (or the refusal named in the column), and what was checked to be "
        f"unchanged. {sum(p.held for p in probes)} of {len(probes)} held.\n\n" + table
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--write", type=Path, help="markdown file for the table (e.g. benchmarks/reliability.md)"
    )
    parser.add_argument(
        "--fuzz", type=int, default=0, help="also run the property tests with this many examples per importer"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        probes = probe_all(Path(tmp))
        round3 = probe_round3(Path(tmp) / "round3")
        text = markdown(probes).replace(tmp, "<tmp>")
        text += "\n" + markdown_round3(round3).replace(tmp, "<tmp>")
    fuzzed = True
    if args.fuzz:
        fuzz_text, fuzzed = fuzz(args.fuzz)
        text += "\n" + fuzz_text
    print(text)
    if args.write:
        args.write.write_text(text, encoding="utf-8")
    return 0 if all(p.held for p in probes + round3) and fuzzed else 1


if __name__ == "__main__":
    raise SystemExit(main())
