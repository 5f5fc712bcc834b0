"""`make app` in one process tree: import the data, start the job worker and the app, queue the training.

    python -m app.launch [--port 8501] [--mnre DIR] [--database-url URL]

1. upgrade the label store and import MNRE from $MNRE_ROOT (else the synthetic demo set): app.services.prepare's steps,
   importing only; nothing is trained in the foreground;
2. queue what is missing (app.services.model_jobs.queue_default_jobs): the first model (configs/first_model.yaml, or
   $MRELENS_FIRST_MODEL_CONFIG: one epoch, activated as soon as it is registered), then the full default recipe
   (configs/default.yaml, or $MRELENS_DEFAULT_MODEL_CONFIG: activated when its val micro-F1 beats the active
   model's), and a scoring job when the active model has not scored the queue yet. Both trainings are of the
   data's variant (app.services.model_jobs.default_recipe): objects when most posts have an image, else text_only; the
   synthetic demo set trains with configs/synthetic_*.yaml (objects: every post has its image). A second launch
   reuses what exists: a job that is queued, running or done is not queued again;
3. start `python -m app.worker` and `python -m app.serve` (`streamlit run app/main.py` with the page modules, the
   label store and the active model warmed at server start); the app serves as soon as the data are in.

Ctrl-C (or SIGTERM) stops both: the worker ends its running job at the next progress report (it is marked failed;
the next launch queues the first model, the default recipe or the scoring again where each is missing, no other
kind), then the app stops.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from app.services.paths import REPO_ROOT

STOP_TIMEOUT_S = 60


def log(message: str) -> None:
    print(f"[launch {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_until_serving(url: str, proc: subprocess.Popen, stopping: dict, timeout: float = 120) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None or stopping["signal"] is not None:
            return False
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return True
        except OSError:
            time.sleep(0.3)
    return False


def wait_until_warm(path: Path, proc: subprocess.Popen, stopping: dict, timeout: float = 60) -> str:
    """What app.serve's warming wrote ("warm 4.2", "failed ..."), or why it is not known yet; never blocks longer
    than `timeout` (the app serves meanwhile: warming only makes the first pages faster)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and stopping["signal"] is None:
        if path.is_file():
            line = path.read_text().strip()
            return f"pages and model warmed in {line.split()[1]} s" if line.startswith("warm ") else line
        time.sleep(0.2)
    return "still warming"


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop(processes: dict[str, subprocess.Popen]) -> None:
    """SIGINT to the worker (ends its job cleanly), SIGTERM to the app; kill what is still there after a while."""
    for name, proc in processes.items():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT if name == "worker" else signal.SIGTERM)
    deadline = time.time() + STOP_TIMEOUT_S
    for name, proc in processes.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop within {STOP_TIMEOUT_S} s: killed")
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    from app.services.model_jobs import queue_default_jobs
    from app.services.prepare import data_source, default_mnre_root, ensure_data

    ap = argparse.ArgumentParser(
        prog="python -m app.launch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8501)))
    ap.add_argument(
        "--mnre", type=Path, default=default_mnre_root(), help="MNRE folder (default: $MNRE_ROOT)"
    )
    ap.add_argument("--database-url", help="default: $DATABASE_URL, else sqlite var/mrelens.db")
    ap.add_argument("--synthetic-dir", type=Path, help="where the synthetic demo set is generated")
    args = ap.parse_args(argv)
    t0 = time.time()
    if port_in_use(args.port):
        print(
            f"error: port {args.port} is in use (another `make app`?); pass --port or PORT=...",
            file=sys.stderr,
        )
        return 2
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url  # the worker and the app read the same store

    from db.schema import open_database

    stopping = {"signal": None}

    def on_signal(signum, _frame):
        stopping["signal"] = signum

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    from app.jobs.queue import JobsConfigError
    from db.errors import LabelStoreError
    from model.data import DataFormatError

    try:
        engine, sessions = open_database()
    except LabelStoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        source = data_source(args.mnre, args.synthetic_dir) if args.synthetic_dir else data_source(args.mnre)
        ensure_data(sessions, *source)
        queue_default_jobs(sessions, *source)
    except (DataFormatError, LabelStoreError, JobsConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    log(f"data ready in {time.time() - t0:.1f} s")

    from app.serve import WARM_FILE_ENV

    # app.serve writes it when the first session no longer shares the CPU with warming (see app.serve)
    warm_file = Path(tempfile.gettempdir()) / f"mrelens-warm-{os.getpid()}.txt"
    warm_file.unlink(missing_ok=True)
    # own sessions: Ctrl-C reaches the launcher only, which stops the children in order
    processes = {
        "worker": subprocess.Popen(
            [sys.executable, "-m", "app.worker"], cwd=REPO_ROOT, start_new_session=True
        ),
        "app": subprocess.Popen(
            [sys.executable, "-m", "app.serve", "--server.port", str(args.port)],
            cwd=REPO_ROOT,
            env={**os.environ, WARM_FILE_ENV: str(warm_file)},
            start_new_session=True,
        ),
    }
    url = f"http://127.0.0.1:{args.port}"
    status = 0
    try:
        if wait_until_serving(url, processes["app"], stopping):
            warmed = wait_until_warm(warm_file, processes["app"], stopping)
            log(
                f"serving at {url} ({time.time() - t0:.1f} s after start; {warmed}); training runs in the worker"
            )
        elif stopping["signal"] is None:
            log("the app did not start; see its output above")
            status = 1
        while status == 0 and stopping["signal"] is None:
            for name, proc in processes.items():
                if proc.poll() is not None:
                    log(f"{name} exited with status {proc.returncode}; stopping")
                    status = 1
            time.sleep(0.3)
    finally:
        log("stopping the worker and the app ...")
        stop(processes)
        warm_file.unlink(missing_ok=True)
        log("stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
