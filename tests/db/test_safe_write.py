"""Every file write goes through db.safe_write: inside its folder, never onto a source, atomic per file and per
multi-file export, never onto a special file."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import update

from db import export_rows
from db.io import import_mnre, import_post
from db.label_export import export_labels
from db.label_studio import export_label_studio
from db.models import EntityPair
from model.safe_write import UnsafeTargetError, atomic_file, atomic_files, check_target


def _text(content: str):
    def write(tmp):
        tmp.write_text(content, encoding="utf-8")

    return write


def test_check_target_refuses_escape_source_and_special_files(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(UnsafeTargetError, match="outside"):
        check_target(folder / ".." / "elsewhere.txt", inside=folder)
    source = tmp_path / "data"
    (source / "txt").mkdir(parents=True)
    with pytest.raises(UnsafeTargetError, match="a source folder"):
        check_target(source / "txt" / "ours_train.txt", sources=[source])
    posts = tmp_path / "posts.jsonl"
    posts.write_text("{}\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(posts)
    with pytest.raises(UnsafeTargetError, match="a source file"):
        check_target(link, sources=[posts])
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeTargetError, match="FIFO"):
        atomic_file(fifo, _text("x"))
    assert check_target(folder / "fine.txt", inside=folder, sources=[source, posts]) == folder / "fine.txt"


def test_atomic_files_failure_midway_leaves_the_old_export_whole(tmp_path):
    folder = tmp_path / "export"
    atomic_files(
        folder, {"txt/a.txt": _text("old a"), "txt/b.txt": _text("old b"), "map.json": _text("old m")}
    )
    assert (folder / "txt" / "b.txt").read_text() == "old b"

    def disk_full(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(UnsafeTargetError, match="No space left"):
        atomic_files(
            folder, {"txt/a.txt": _text("new a"), "txt/b.txt": disk_full, "map.json": _text("new m")}
        )
    assert [(folder / n).read_text() for n in ("txt/a.txt", "txt/b.txt", "map.json")] == [
        "old a",
        "old b",
        "old m",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no temporary folder left
    with pytest.raises(UnsafeTargetError, match="not made of letters"):
        atomic_files(folder, {"txt/../../x.txt": _text("x")})
    assert not (tmp_path / "x.txt").exists()


def test_mnre_export_never_writes_outside_its_folder(sessions, mini_mnre, tmp_path):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
        # a split name stored by an older version (the importers now refuse it)
        session.execute(
            update(EntityPair).where(EntityPair.split == "val").values(split="x/../../../elsewhere")
        )
    out = tmp_path / "deep" / "curated"
    with pytest.raises(UnsafeTargetError), sessions() as session:
        export_labels(session, "mnre", out)
    assert not list(tmp_path.rglob("elsewhere*"))
    assert not out.exists()


def test_multi_file_mnre_export_failing_midway_keeps_the_old_files(
    sessions, mini_mnre, tmp_path, monkeypatch
):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
    out = tmp_path / "curated"
    with sessions() as session:
        export_labels(session, "mnre", out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert len(before) == 3
    calls = []
    real = export_rows.write_text_lines

    def second_write_fails(lines):
        inner = real(lines)

        def write(tmp):
            calls.append(tmp)
            if len(calls) == 2:
                inner(tmp)
                raise OSError(28, "No space left on device")
            inner(tmp)

        return write

    monkeypatch.setattr(export_rows, "write_text_lines", second_write_fails)
    with sessions.begin() as session:
        import_post(
            session, "Obama meets Merkel", (0, 1), (2, 3), dataset="mnre", split="train", label="None"
        )
    with pytest.raises(UnsafeTargetError, match="No space left"), sessions() as session:
        export_labels(session, "mnre", out)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_label_studio_export_refuses_the_imported_file(sessions, mini_mnre):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
    source = mini_mnre / "txt" / "ours_train.txt"
    before = source.read_bytes()
    with pytest.raises(UnsafeTargetError, match="dataset .mnre. was imported from"), sessions() as session:
        export_label_studio(session, source)
    assert source.read_bytes() == before


def test_predict_refuses_out_equal_to_its_input(tmp_path):
    posts = tmp_path / "posts.jsonl"
    posts.write_text('{"text": "Obama meets Merkel", "head": [0, 1], "tail": [2, 3]}\n')
    link = tmp_path / "same.jsonl"
    link.symlink_to(posts)
    for out in (posts, link, tmp_path / "." / "posts.jsonl"):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "model.predict",
                str(posts),
                "--model",
                str(tmp_path / "none"),
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("error: --out") and "source file" in done.stderr
        assert "Traceback" not in done.stderr
    assert posts.read_text() == '{"text": "Obama meets Merkel", "head": [0, 1], "tail": [2, 3]}\n'


def test_a_rename_failing_midway_puts_the_old_files_back(tmp_path, monkeypatch):
    folder = tmp_path / "export"
    atomic_files(folder, {"a.txt": _text("old a"), "b.txt": _text("old b"), "c.txt": _text("old c")})
    real = os.replace
    moved_in = []

    def replace(src, dst):
        if ".tmp" in str(src) and str(src).endswith(
            ("b.txt",)
        ):  # the staged b.txt cannot be renamed into place
            raise OSError(5, "Input/output error")
        moved_in.append(dst)
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(UnsafeTargetError, match="Input/output error"):
        atomic_files(folder, {"a.txt": _text("new a"), "b.txt": _text("new b"), "c.txt": _text("new c")})
    monkeypatch.setattr(os, "replace", real)
    assert [(folder / n).read_text() for n in ("a.txt", "b.txt", "c.txt")] == ["old a", "old b", "old c"]
    assert any(str(dst).endswith("a.txt") for dst in moved_in), "a.txt had been replaced before b.txt failed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
