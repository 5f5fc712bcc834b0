"""Commands outside `python -m db` and `model.train/evaluate/shuffle` (tested beside them): a user error is one
`error:` line and exit status 2, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "args,names",
    [
        (["app.services.prepare", "--database-url", "foo://x"], "foo"),
        (["app.launch", "--port", "PORT", "--database-url", "foo://x"], "foo"),
        (["model.grounding", "MISSING", "--split", "val", "--out", "OUT"], "ours_rel2id.json"),
    ],
    ids=["prepare-bad-url", "launch-bad-url", "grounding-missing-folder"],
)
def test_user_errors_are_one_error_line(tmp_path, args, names):
    replace = {"PORT": str(free_port()), "MISSING": str(tmp_path / "missing"), "OUT": str(tmp_path / "out")}
    argv = [replace.get(a, a) for a in args]
    done = subprocess.run(
        [sys.executable, "-m", *argv], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and names in errors[0], done.stderr
