"""Jobs beside the app: interaction latency with and without a training job running, and the first-run flow.

    nice -n 10 python benchmarks/bench_jobs.py [--mnre ../shared/mnre] [--repeat 5] [--out benchmarks/jobs.md]

1. Baseline: a temporary store with the synthetic demo data and a MiniLM objects model (benchmarks/bench_app.py's
   seed_store); Review interactions on cached posts (previous, next to a seen post, accept) timed with AppTest, no
   job running.
2. The first-run flow: `python -m app.launch` on an empty store with the MNRE folder (data import, worker and app
   start, first-model and default-recipe jobs queued), exactly what `make app` runs. Timed: time to serve (the
   app's health endpoint answers), time to the first model (registered and active, with its val micro-F1) and time
   to its stored predictions. While the first model trains in the worker, step 1's interactions run again (same
   process, same store): the latency with a training job running. Then SIGINT stops the launcher (Ctrl-C).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("TORCH_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(int(os.environ["TORCH_NUM_THREADS"]))

from streamlit.testing.v1 import AppTest  # noqa: E402

MAIN = str(REPO / "app" / "main.py")
INTERACTIONS = ("previous (cached post)", "next (cached post)", "accept (saves, moves on)", "queue page")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(action) -> float:
    t0 = time.perf_counter()
    at = action()
    elapsed = time.perf_counter() - t0
    if at.exception:
        raise RuntimeError([e.value for e in at.exception])
    return elapsed


def interactions(url: str, repeat: int) -> dict[str, list[float]]:
    """Review interactions on posts already computed once (the cached path), plus a Queue page render."""
    os.environ["DATABASE_URL"] = url
    times: dict[str, list[float]] = {k: [] for k in INTERACTIONS}
    at = AppTest.from_file(MAIN, default_timeout=600)
    at.session_state["reviewer"] = "bench"
    at.run()
    at.switch_page("views/review.py")
    at.run()
    at.button(key="review_next").click().run()  # computes the next post once: later visits are cached
    at.button(key="review_prev").click().run()
    for _ in range(repeat):
        times["next (cached post)"].append(timed(lambda: at.button(key="review_next").click().run()))
        times["previous (cached post)"].append(timed(lambda: at.button(key="review_prev").click().run()))
    for _ in range(repeat):
        times["accept (saves, moves on)"].append(timed(lambda: at.button(key="review_accept").click().run()))
    at.switch_page("views/queue.py")
    for _ in range(repeat):
        times["queue page"].append(timed(at.run))
    return times


def store_state(url: str) -> dict:
    """What the first-run store holds now: jobs by kind and status, the active model and its val F1."""
    from sqlalchemy import func, select

    from db.base import make_engine
    from db.models import Job, ModelVersion, Prediction

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            jobs = conn.execute(select(Job.id, Job.kind, Job.status, Job.progress)).all()
            active = conn.execute(
                select(ModelVersion.id, ModelVersion.version_id, ModelVersion.metrics).where(
                    ModelVersion.is_active
                )
            ).first()
            predictions = (
                conn.scalar(
                    select(func.count())
                    .select_from(Prediction)
                    .where(Prediction.model_version_id == active.id)
                )
                if active
                else 0
            )
    except Exception:  # the launcher has not created the tables yet
        return {"jobs": [], "active": None, "predictions": 0}
    finally:
        engine.dispose()
    return {"jobs": [tuple(j) for j in jobs], "active": active, "predictions": predictions}


def first_run(mnre: Path, tmp: Path, bench_url: str, repeat: int, timeout: float) -> dict:
    port = free_port()
    url = f"sqlite:///{tmp / 'first_run.db'}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "MRELENS_JOBS_URL": f"sqlite:///{tmp / 'jobs.db'}",
        "MRELENS_RUNS_DIR": str(tmp / "runs"),
        "MRELENS_FEATURE_CACHE": str(tmp / "features"),
        "MNRE_ROOT": str(mnre),
    }
    log = (tmp / "launch.log").open("w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.launch", "--port", str(port), "--mnre", str(mnre)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    out: dict = {"port": port}
    try:
        while "serve_s" not in out:
            try:
                if (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read()
                    == b"ok"
                ):
                    out["serve_s"] = time.perf_counter() - t0
            except OSError:
                if proc.poll() is not None or time.perf_counter() - t0 > 600:
                    raise RuntimeError(
                        f"the app never served: {(tmp / 'launch.log').read_text()[-3000:]}"
                    ) from None
                time.sleep(0.5)
        print(f"serving after {out['serve_s']:.1f} s", file=sys.stderr, flush=True)
        while True:
            state = store_state(url)
            running = [
                j
                for j in state["jobs"]
                if j[1] == "first_model" and j[2] == "running" and (j[3] or {}).get("step")
            ]
            if running:
                break
            if time.perf_counter() - t0 > 600:
                raise RuntimeError("the first-model job never started")
            time.sleep(2)
        out["training_started_s"] = time.perf_counter() - t0
        print("first model training: timing interactions beside it ...", file=sys.stderr, flush=True)
        out["times_training"] = interactions(bench_url, repeat)
        out["training_during_bench"] = any(
            j[1] == "first_model" and j[2] == "running" for j in store_state(url)["jobs"]
        )
        while True:
            state = store_state(url)
            if state["active"] is not None and "first_model_s" not in out:
                out["first_model_s"] = time.perf_counter() - t0
                out["first_model"] = state["active"][1]
                out["first_model_f1"] = ((state["active"][2] or {}).get("val") or {}).get("f1")
                print(
                    f"first model after {out['first_model_s']:.0f} s: F1 {out['first_model_f1']}",
                    file=sys.stderr,
                )
            score = [j for j in state["jobs"] if j[1] == "score"]
            if score and score[0][2] in ("succeeded", "failed", "cancelled"):
                out["predictions_s"] = time.perf_counter() - t0
                out["predictions"], out["score_status"] = state["predictions"], score[0][2]
                break
            failed = [j for j in state["jobs"] if j[1] == "first_model" and j[2] in ("failed", "cancelled")]
            if failed or time.perf_counter() - t0 > timeout:
                out["error"] = f"first model not ready: {state['jobs']}"
                break
            time.sleep(5)
        out["jobs_at_end"] = [(j[0], j[1], j[2]) for j in store_state(url)["jobs"]]
    finally:
        t_stop = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        try:
            out["stop_status"] = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out["stop_status"] = "killed after 120 s"
        out["stop_s"] = time.perf_counter() - t_stop
        log.close()
    with socket.socket() as s:
        out["port_free_after_stop"] = s.connect_ex(("127.0.0.1", port)) != 0
    return out


def table(idle: dict[str, list[float]], busy: dict[str, list[float]]) -> list[str]:
    lines = [
        "| interaction | median s, no job | median s, training job running | max s, training | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in INTERACTIONS:
        a, b = statistics.median(idle[name]), statistics.median(busy[name])
        lines.append(f"| {name} | {a:.3f} | {b:.3f} | {max(busy[name]):.3f} | {b / a:.2f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--mnre", type=Path, default=Path(os.environ.get("MNRE_ROOT", REPO.parent / "shared" / "mnre"))
    )
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=2400, help="seconds to wait for the first model")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "jobs.md")
    args = ap.parse_args(argv)
    from bench_app import seed_store

    load = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["MRELENS_FEATURE_CACHE"] = str(tmp / "bench_features")
        bench_url, _version_id, _version_key = seed_store(tmp / "bench", None)
        # one untimed pass first: both timed passes then find the process's caches equally warm
        interactions(bench_url, 1)
        print("no job running: timing interactions ...", file=sys.stderr, flush=True)
        idle = interactions(bench_url, args.repeat)
        flow = first_run(args.mnre, tmp, bench_url, args.repeat, args.timeout)
        launch_log = (tmp / "launch.log").read_text(errors="replace")
    load_end = os.getloadavg()
    f1 = flow.get("first_model_f1")
    lines = [
        "# Jobs beside the app: responsiveness and the first run",
        "",
        f"Measured {dt.date.today():%Y-%m-%d} by `nice -n 10 python benchmarks/bench_jobs.py` on {platform.machine()} "
        f"with {os.cpu_count()} CPU cores (torch {torch.__version__}), shared with other jobs: load average "
        f"{load[0]:.1f} at the start, {load_end[0]:.1f} at the end (above 2 = contended). Seeds: synthetic data 0, "
        "training seed from configs/first_model.yaml. The worker runs with its defaults (1 torch thread, nice +10 "
        f"on top of the benchmark's own nice {os.nice(0)}: effective nice {min(19, os.nice(0) + 10)}, while other "
        "processes on the same cores may run at nice 0), so the first-run times below are an upper bound for a "
        "machine running only `make app`.",
        "",
        "## Interactions on cached posts, with and without a training job (same run)",
        "",
        "AppTest reruns of the Review page (synthetic store, MiniLM-L6 + EfficientNet-Lite0 objects model): first "
        "with no job running, then while the worker trains the first model on MNRE "
        f"({'confirmed running throughout' if flow.get('training_during_bench') else 'the training ended before the last interaction'}).",
        "",
        *table(idle, flow["times_training"]),
        "",
        f"Slowest interaction while training: {max(max(v) for v in flow['times_training'].values()):.3f} s (target < 1 s).",
        "",
        "## First run (`python -m app.launch`, what `make app` runs) on MNRE v2, empty store",
        "",
        "| step | seconds after start |",
        "|---|---:|",
        f"| app serving (data imported, worker and app started, jobs queued) | {flow['serve_s']:.1f} |",
        f"| first-model job training (first progress report) | {flow['training_started_s']:.1f} |",
        f"| first model registered and active | {flow.get('first_model_s', float('nan')):.0f} |",
        f"| its predictions stored for the queue (scoring job {flow.get('score_status', '?')}, "
        f"{flow.get('predictions', 0)} pairs) | {flow.get('predictions_s', float('nan')):.0f} |",
        "",
        f"First model: `{flow.get('first_model')}`, val micro-F1 "
        f"{'n/a' if f1 is None else f'{100 * f1:.2f}'} (MNRE v2 val). "
        f"Ctrl-C (SIGINT to the launcher) stopped the worker and the app in {flow['stop_s']:.1f} s "
        f"(launcher exit status {flow['stop_status']}, port free afterwards: {flow['port_free_after_stop']}).",
        f"Whole benchmark {time.perf_counter() - started:.0f} s. Jobs at the end: {flow.get('jobs_at_end')}.",
    ]
    if flow.get("error"):
        lines += ["", f"Problem: {flow['error']}"]
    text = "\n".join(lines) + "\n"
    print(text)
    print(launch_log[-4000:], file=sys.stderr)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
