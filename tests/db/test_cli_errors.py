"""Every `python -m db` user error: exit 2, one `error:` line naming the argument, file or line; nothing changed."""

from __future__ import annotations

import hashlib
import os
import stat
import threading

import pytest

from db.cli import main
from db.io import import_mnre
from db.schema import open_database
from tests.db.conftest import MINI_TRAIN, write_mini_mnre


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _tree_digest(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def store_url(tmp_path, mini_mnre):
    url = ["--database-url", f"sqlite:///{tmp_path / 'store.db'}"]
    assert main([*url, "import", str(mini_mnre)]) == 0
    return url


def test_bad_split_and_bad_arguments_are_one_error_line(tmp_path, mini_mnre, capsys):
    url = ["--database-url", f"sqlite:///{tmp_path / 'store.db'}"]
    assert main([*url, "import", str(mini_mnre), "--split", "tarin"]) == 2
    assert "--split" in _error_line(capsys)
    with pytest.raises(SystemExit) as caught:
        main([*url, "export", "--format", "xml", "--out", "x"])
    assert caught.value.code == 2 and "--format" in _error_line(capsys)
    with pytest.raises(SystemExit):
        main([*url, "import", str(mini_mnre), "--max-line-bytes", "-3"])
    assert "--max-line-bytes" in _error_line(capsys)


def test_export_targets_that_cannot_be_written_are_refused(tmp_path, store_url, capsys):
    folder = tmp_path / "a_folder"
    folder.mkdir()
    assert main([*store_url, "export", "--format", "csv", "--out", str(folder)]) == 2
    assert "a_folder" in _error_line(capsys) and folder.is_dir()
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("keep", encoding="utf-8")
    assert main([*store_url, "export", "--format", "csv", "--out", str(not_a_folder / "x.csv")]) == 2
    assert "--out" in _error_line(capsys) and not_a_folder.read_text(encoding="utf-8") == "keep"
    # /proc refuses new files even to root: a read-only target
    assert main([*store_url, "export", "--format", "jsonl", "--out", "/proc/mrelens-export.jsonl"]) == 2
    assert "--out" in _error_line(capsys)


def test_export_never_replaces_a_fifo_or_device(tmp_path, store_url, capsys):
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    assert main([*store_url, "export", "--format", "csv", "--out", str(fifo)]) == 2
    assert "FIFO" in _error_line(capsys) and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert main([*store_url, "export", "--format", "csv", "--out", "/dev/null"]) == 2
    assert "device" in _error_line(capsys) and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    folder = tmp_path / "mnre_out"
    (folder / "txt").mkdir(parents=True)
    os.mkfifo(folder / "txt" / "ours_train.txt")
    assert main([*store_url, "export", "--format", "mnre", "--out", str(folder)]) == 2
    assert "FIFO" in _error_line(capsys) and stat.S_ISFIFO(os.stat(folder / "txt" / "ours_train.txt").st_mode)


def test_mnre_export_refuses_the_folder_a_dataset_was_imported_from(tmp_path, mini_mnre, store_url, capsys):
    before = _tree_digest(mini_mnre)
    for out in (mini_mnre, mini_mnre / "txt" / "ours_train.txt"):
        assert main([*store_url, "export", "--format", "mnre", "--out", str(out)]) == 2
        assert "imported from" in _error_line(capsys)
    assert _tree_digest(mini_mnre) == before
    assert main([*store_url, "import", str(mini_mnre)]) == 0  # re-import still works


def test_text_files_that_are_not_utf8_name_file_and_line(tmp_path, capsys):
    url = ["--database-url", f"sqlite:///{tmp_path / 'store.db'}"]
    root = write_mini_mnre(tmp_path / "latin1")
    lines = MINI_TRAIN[:1] + [MINI_TRAIN[1].replace("Berlin", "Berl\u00efn")] + MINI_TRAIN[2:]
    (root / "txt" / "ours_train.txt").write_bytes("".join(line + "\n" for line in lines).encode("latin-1"))
    assert main([*url, "import", str(root)]) == 2
    line = _error_line(capsys)
    assert "ours_train.txt:2:" in line and "UTF-8" in line
    # --skip-bad leaves the line out and says so
    assert main([*url, "import", str(root), "--skip-bad"]) == 0
    out = capsys.readouterr().out
    assert "6 pairs added" in out and "ours_train.txt:2:" in out
    utf16 = write_mini_mnre(tmp_path / "utf16")
    (utf16 / "txt" / "ours_val.txt").write_bytes("".join(x + "\n" for x in MINI_TRAIN).encode("utf-16"))
    assert main([*url, "import", str(utf16), "--dataset", "other"]) == 2
    assert "ours_val.txt:1:" in _error_line(capsys)


def test_line_and_file_limits_are_configurable(tmp_path, mini_mnre, capsys):
    url = ["--database-url", f"sqlite:///{tmp_path / 'store.db'}"]
    assert main([*url, "import", str(mini_mnre), "--max-line-bytes", "100"]) == 2
    assert "ours_train.txt:1:" in _error_line(capsys)
    assert main([*url, "import", str(mini_mnre), "--max-file-bytes", "300"]) == 2
    assert "byte file limit" in _error_line(capsys)
    assert main([*url, "import", str(mini_mnre), "--max-post-tokens", "4"]) == 2
    assert "ours_train.txt:1:" in _error_line(capsys)
    assert main([*url, "import", str(mini_mnre), "--max-image-pixels", "100"]) == 2
    assert "pixel limit" in _error_line(capsys)
    # the default limits take the real data
    assert main([*url, "import", str(mini_mnre)]) == 0


def test_two_concurrent_imports_give_a_clear_error(tmp_path, mini_mnre, capsys):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert main(["--database-url", url, "init"]) == 0
    capsys.readouterr()
    engine, sessions = open_database(url, intent="write")
    outcome: list[int] = []
    with sessions.begin() as first:
        import_mnre(first, mini_mnre)  # holds SQLite's write lock until the block ends
        second = threading.Thread(
            target=lambda: outcome.append(main(["--database-url", url, "import", str(mini_mnre)]))
        )
        second.start()
        second.join(timeout=1.5)  # the second import now waits for the lock
    second.join(timeout=30)
    engine.dispose()
    assert outcome == [2]
    assert "at the same time" in _error_line(capsys)
    assert main(["--database-url", url, "import", str(mini_mnre)]) == 0
    assert "0 pairs added, 7 already present" in capsys.readouterr().out


def test_a_filter_naming_nothing_in_the_store_is_an_error_not_an_empty_export(tmp_path, store_url, capsys):
    out = tmp_path / "good.csv"
    out.write_text("a good export\n", encoding="utf-8")
    for option, value in (
        ("--dataset", "mnrre"),
        ("--split", "vall"),
        ("--annotator", "nobody"),
        ("--label", "/per/per/pear"),
    ):
        assert main([*store_url, "export", "--format", "csv", "--out", str(out), option, value]) == 2
        assert f"{option} '{value}'" in _error_line(capsys)
    assert out.read_text(encoding="utf-8") == "a good export\n"
    assert main([*store_url, "agreement", "--dataset", "mnrre"]) == 2
    assert "--dataset 'mnrre'" in _error_line(capsys)


def test_post_text_that_is_not_utf8_is_one_error_line(store_url, capsys):
    # bytes that are not UTF-8 on the command line reach Python as lone surrogates
    text = b"Obama \xff meets".decode("utf-8", "surrogateescape")
    assert main([*store_url, "import-post", "--text", text, "--head", "0", "1", "--tail", "2", "3"]) == 2
    assert "field 'text'" in _error_line(capsys)


def test_a_fifo_or_folder_given_as_a_label_studio_export_is_refused_without_blocking(
    tmp_path, store_url, capsys
):
    fifo = tmp_path / "tasks.json"
    os.mkfifo(fifo)
    outcome: list[int] = []
    worker = threading.Thread(
        target=lambda: outcome.append(main([*store_url, "import-labelstudio", str(fifo), "--as", "tester"]))
    )
    worker.daemon = True
    worker.start()
    worker.join(timeout=10)
    if worker.is_alive():
        with open(fifo, "w", encoding="utf-8") as unblock:
            unblock.write("[]")
        pytest.fail("import-labelstudio blocked on a FIFO")
    assert outcome == [2] and "not a regular file" in _error_line(capsys)
    assert main([*store_url, "import-labelstudio", str(tmp_path), "--as", "tester"]) == 2
    assert "not a regular file" in _error_line(capsys)
