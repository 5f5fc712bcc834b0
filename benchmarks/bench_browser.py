"""Interaction latency in a real browser (headless Chromium, the browser tests' harness), idle and while the worker
trains, against the review app's floors.

    python benchmarks/bench_browser.py [--presses 15] [--model DIR] [--out benchmarks/app.md] [--quick]

A temporary label store holds the synthetic demo data (benchmarks/bench_app.py's seed_store: 120 pairs, one model
version, its predictions stored); `python -m app.serve` serves it on loopback. Each interaction is timed from the key
press or click to the expected content on screen ("visible") and to the end of the script run ("idle"):

- a keyboard decision (a label's key, S, X, A, U in turn) until the next pair's "Pair N" line;
- next / previous (N, P) until the other pair's line;
- a page switch from the sidebar (Review <-> Queue) until the page's own text;
- a Queue filter / sort / search change until the run has drawn the new table (the table is the run's last element,
  so visible = idle there);
- Review's first visit after another model version became active (its prediction not stored yet: Review runs it)
  until the model's line;
- Inspect's first panel for a pair with nothing stored until its attention chart.

Twice: on an otherwise idle server, then while `python -m app.worker` trains the default recipe of the same data (a
real training job, queued as the Models page does), so the CPU is loaded the way a user's is. --quick: a smaller
store (60 pairs) and 3 presses of each, for development; its figures are indicative only.

--out FILE: the "Browser: interaction latency" section of FILE is replaced (or added before the AppTest section);
the rest of the file is kept.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TORCH_NUM_THREADS", "1")

SECTION = "## Browser: interaction latency"
# (interaction, condition) -> the floor on the median, seconds; the p95 floor is twice it
FLOORS = {
    ("keyboard decision", "idle"): 0.3,
    ("keyboard decision", "training"): 0.6,
    ("next / previous", "idle"): 0.3,
    ("page switch", "idle"): 0.7,
    ("Queue filter / sort / search", "idle"): 0.7,
    ("Inspect first panel, nothing stored", "idle"): 1.0,
    ("Inspect first panel, nothing stored", "training"): 1.0,
}
SHOWN = """
const line = [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
    .map(e => e.innerText).find(t => t.startsWith('Pair '));
const app = document.querySelector('[data-testid="stApp"]');
return [line ? parseInt(line.slice(5)) : null, app ? app.getAttribute('data-test-script-state') : 'initial',
        document.querySelector('[data-testid="stMain"]').innerText, window.location.search];
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Browser:
    """One Chromium on the app, with the timing loops."""

    def __init__(self, driver):
        self.driver = driver
        self.queue_step = 0  # where the Queue changes' cycle is

    def state(self) -> tuple[int | None, str, str, str]:
        return tuple(self.driver.execute_script(SHOWN))

    def until(self, start: float, visible, timeout: float = 120) -> tuple[float, float]:
        """(seconds to `visible(state)` true, seconds to the run's end after it) from `start`."""
        seen = None
        while time.perf_counter() - start < timeout:
            pair, run, text, query = self.state()
            now = time.perf_counter() - start
            if seen is None and visible(pair, text, query):
                seen = now
            if seen is not None and run not in ("running", "initial"):
                return seen, now
            time.sleep(0.01)
        raise TimeoutError(f"nothing visible after {timeout} s (at {self.state()[:2]})")

    def focus_page(self) -> None:
        self.driver.find_element("css selector", "h1").click()

    def key(self, key: str, timeout: float = 120) -> tuple[float, float]:
        from selenium.webdriver.common.action_chains import ActionChains

        self.idle()  # the reviewer reads the pair first: the previous run has ended before the press
        self.focus_page()
        before = self.state()[0]
        start = time.perf_counter()
        ActionChains(self.driver).send_keys(key).perform()
        return self.until(start, lambda pair, text, query: pair is not None and pair != before, timeout)

    def sidebar(self, page: str, marker: str) -> tuple[float, float]:
        links = self.driver.find_elements("css selector", '[data-testid="stSidebarNav"] a')
        # the Queue is the default page: its link is the app's root, so the links are told apart by their titles
        # (an icon's name comes before the title in the link's text)
        link = next(a for a in links if a.get_attribute("innerText").strip().endswith(page.capitalize()))
        start = time.perf_counter()
        link.click()
        return self.until(start, lambda pair, text, query: marker in text)

    def queue_change(self, action) -> tuple[float, float]:
        """A Queue widget change: until the address bar holds the new filter (the run wrote it) and the run ended."""
        before = self.state()[3]
        start = action()
        _, end = self.until(start, lambda pair, text, query: query != before)
        return end, end

    def choose(self, label: str, option: str) -> float:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.find_element("css selector", f'input[role="combobox"][aria-label="{label}"]').click()
        WebDriverWait(self.driver, 30).until(lambda d: d.find_elements("css selector", '[role="option"]'))
        for item in self.driver.find_elements("css selector", '[role="option"]'):
            if item.text.strip() == option:
                start = time.perf_counter()
                item.click()
                return start
        raise AssertionError(f"no option {option!r} in {label!r}")

    def search(self, text: str) -> float:
        from selenium.webdriver.common.keys import Keys

        box = self.driver.find_element("css selector", 'input[aria-label="Search text or entity"]')
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.DELETE)
        box.send_keys(text)
        start = time.perf_counter()
        box.send_keys(Keys.ENTER)
        return start

    def idle(self) -> None:
        from tests.app.test_browser import wait_idle

        wait_idle(self.driver)


def new_version(url: str, model_dir: Path, folder: Path, n: int) -> str:
    """A copy of the model as another version (its own version id), made active: nothing of it is stored yet."""
    from db.provenance import register_checkpoint, set_active
    from db.schema import open_database

    copy = folder / f"model-{n}"
    shutil.copytree(model_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config["version_id"] = f"{config['version_id']}-bench{n}"
    (copy / "config.json").write_text(json.dumps(config))
    engine, sessions = open_database(url)
    with sessions.begin() as session:
        register_checkpoint(session, copy)
        set_active(session, config["version_id"])
    engine.dispose()
    return config["version_id"]


def measure(
    page: Browser, url: str, model_dir: Path, folder: Path, fresh: list[int], presses: int, tag: str
) -> dict:
    """Every interaction `presses` times on the open session; {interaction: [(visible, idle), ...]}."""
    from benchmarks.bench_app import Page

    out: dict[str, list[tuple[float, float]]] = {k: [] for k, _ in FLOORS if _ == "idle"}
    out["Review first visit after a model became active"] = []
    page.sidebar("review", "reviewing as")
    page.idle()
    keys = ["1", "s", "x", "a", "u"]  # a label's key (corrects to it), skip, reject, accept, undo
    for i in range(presses):
        out["keyboard decision"].append(page.key(keys[i % len(keys)]))
        print(
            f"[{tag}] key {keys[i % len(keys)]}: {out['keyboard decision'][-1]}", file=sys.stderr, flush=True
        )
    for i in range(presses):
        out["next / previous"].append(page.key("n" if i % 2 == 0 else "p"))
    for i in range(presses):
        page.idle()
        if i % 2 == 0:
            out["page switch"].append(page.sidebar("queue", "pairs shown"))
        else:
            out["page switch"].append(page.sidebar("review", "reviewing as"))
    page.sidebar("queue", "pairs shown")
    page.idle()
    # a cycle that ends where it started; its place is kept across passes, so every step changes something
    changes = [
        lambda: page.choose("Status", "unreviewed"),
        lambda: page.choose("Sort", "source order"),
        lambda: page.search("the"),
        lambda: page.choose("Status", "all"),
        lambda: page.choose("Sort", "uncertainty: highest entropy first"),
        lambda: page.search(""),
    ]
    for _ in range(presses):
        page.idle()
        out["Queue filter / sort / search"].append(page.queue_change(changes[page.queue_step % len(changes)]))
        page.queue_step += 1
    for _ in range(max(1, presses // 3)):
        page.idle()
        version = new_version(url, model_dir, folder, len(list(folder.glob("model-*"))))
        marker = (
            f"{version} predicts"  # the model's line, drawn once Review has run the new model on the pair
        )
        out["Review first visit after a model became active"].append(page.sidebar("review", marker))
        page.idle()
        page.sidebar("queue", "pairs shown")
    page.idle()
    page.sidebar("inspect", "Inspect")
    page.idle()
    inspect = Page(page.driver)
    for pair in fresh[:presses]:
        before = inspect.heatmap_rows()
        start = inspect.open_pair(pair)
        inspect.until_new_heatmap(before)
        visible = time.perf_counter() - start
        page.idle()
        out["Inspect first panel, nothing stored"].append((visible, time.perf_counter() - start))
    return out


def start_training(url: str, data_root: Path, folder: Path, env: dict) -> tuple[subprocess.Popen, int]:
    """`python -m app.worker` with the default recipe's training queued (as the Models page queues it)."""
    from app.services.model_jobs import queue_training
    from db.schema import open_database

    engine, sessions = open_database(url)
    job = queue_training(sessions, "default_model", data_root, "synthetic", "bench")
    log = open(folder / "worker.log", "w")  # noqa: SIM115  (closed with the process)
    worker = subprocess.Popen(
        [sys.executable, "-m", "app.worker"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    worker.log = log
    deadline = time.time() + 300
    while time.time() < deadline and job_status(sessions, job) != "running":
        time.sleep(1)
    engine.dispose()
    return worker, job


def job_status(sessions, job: int) -> str:
    from db.jobs import get_job

    with sessions() as session:
        return get_job(session, job).status


def stop_worker(worker: subprocess.Popen) -> None:
    worker.send_signal(signal.SIGINT)  # ends its job at the next progress report
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
    worker.log.close()


def summary(pairs: list[tuple[float, float]]) -> dict:
    visible, idle = [p[0] for p in pairs], [p[1] for p in pairs]
    return {
        "n": len(pairs),
        "median": statistics.median(visible),
        "p95": percentile(visible, 0.95),
        "max": max(visible),
        "idle_median": statistics.median(idle),
        "idle_p95": percentile(idle, 0.95),
    }


def report(results: dict, meta: dict) -> str:
    lines = [
        SECTION,
        "",
        f"Measured {meta['date']} by `python benchmarks/bench_browser.py{' --quick' if meta['quick'] else ''}` "
        f"on {meta['machine']} with {meta['cpus']} CPU cores: headless Chromium 1600x1100, `python -m app.serve` "
        f"on loopback, 1 torch thread. Data: the synthetic demo store ({meta['pairs']} pairs, every post with an "
        f"image), model {meta['model']} active with its predictions stored. Load average "
        f"{meta['load_start']} at the start, {meta['load_end']} at the end (above {meta['cpus']} = cores shared "
        f"with other work). Training: the worker ran job {meta['job']} (the default recipe on the same data); "
        f"its status when the loaded pass ended: {meta['job_status_end']}."
        + (" **Quick run: 3 presses each on a smaller store; indicative only.**" if meta["quick"] else ""),
        "",
        "Visible: from the key press or click to the expected content on screen; idle: to the end of the script "
        "run. Queue changes draw the table last, so their visible time is the run's end.",
        "",
        "| interaction | load | n | visible median s | p95 s | max s | idle median s | idle p95 s | floor s "
        "| median / floor | p95 / (2 x floor) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for condition in ("idle", "training"):
        for name, pairs in results.get(condition, {}).items():
            if not pairs:
                continue
            s = summary(pairs)
            floor = FLOORS.get((name, condition))
            ratios = (
                f"{floor:.1f} | {s['median'] / floor:.2f} | {s['p95'] / (2 * floor):.2f}"
                if floor
                else "none stated | | "
            )
            lines.append(
                f"| {name} | {condition} | {s['n']} | {s['median']:.3f} | {s['p95']:.3f} | {s['max']:.3f} | "
                f"{s['idle_median']:.3f} | {s['idle_p95']:.3f} | {ratios} |"
            )
    lines += ["", "A ratio above 1.00 misses its floor."]
    return "\n".join(lines) + "\n"


def write_section(path: Path, text: str) -> None:
    """Replace the section in `path` (or add it before the AppTest section, else at the end)."""
    old = path.read_text() if path.is_file() else ""
    pattern = re.compile(rf"^{re.escape(SECTION)}.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(old):
        new = pattern.sub(lambda _: text + "\n", old)
    elif "## AppTest" in old:
        index = old.index("## AppTest")
        new = old[:index] + text + "\n" + old[index:]
    else:
        new = old + ("\n" if old else "") + text
    path.write_text(new)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--presses", type=int, default=15, help="presses (or clicks) of each interaction per pass"
    )
    ap.add_argument("--out", type=Path, help="write the browser section into this markdown file")
    ap.add_argument(
        "--quick", action="store_true", help="a smaller store and 3 presses each (indicative only)"
    )
    ap.add_argument("--no-training", action="store_true", help="the idle pass only")
    args = ap.parse_args(argv)
    presses = 3 if args.quick else args.presses
    from benchmarks.bench_app import Page, pairs_with_nothing_stored, seed_store
    from tests.app.test_browser import app_env, new_browser, start_streamlit, stop_streamlit

    load_start = os.getloadavg()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["MRELENS_FEATURE_CACHE"] = str(folder / "features")
        os.environ["MRELENS_JOBS_URL"] = f"sqlite:///{folder / 'jobs.db'}"
        os.environ["MRELENS_RUNS_DIR"] = str(folder / "runs")
        sizes = (40, 20) if args.quick else (80, 40)
        url, version, _ = seed_store(folder, None, sizes)
        data_root = folder / "synthetic"

        fresh = pairs_with_nothing_stored(url, 2 * presses)
        env = {
            **app_env(url, folder / "features", folder),
            "MRELENS_JOBS_URL": os.environ["MRELENS_JOBS_URL"],
        }
        proc, app_url = start_streamlit(env, folder / "streamlit.log")
        driver = new_browser(folder / "chrome-profile", folder / "downloads")
        page = Browser(driver)
        worker, job, job_end = None, None, "no training pass"
        try:
            driver.get(app_url)
            Page(driver).until_text("pairs shown")
            Page(driver).name()
            results["idle"] = measure(page, url, folder / "model", folder, fresh[:presses], presses, "idle")
            if not args.no_training:
                worker, job = start_training(url, data_root, folder, env)
                page.sidebar("queue", "pairs shown")
                results["training"] = measure(
                    page, url, folder / "model", folder, fresh[presses:], presses, "training"
                )
                from db.schema import open_database

                engine, sessions = open_database(url)
                job_end = job_status(sessions, job)
                engine.dispose()
        finally:
            driver.quit()
            stop_streamlit(proc)
            if worker is not None:
                stop_worker(worker)
    meta = {
        "date": f"{dt.date.today():%Y-%m-%d}",
        "quick": args.quick,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "pairs": sum(sizes),
        "model": f"`{version}` (fresh MiniLM-L6 + EfficientNet-Lite0, random classifier)",
        "load_start": " / ".join(f"{x:.1f}" for x in load_start),
        "load_end": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
        "job": job,
        "job_status_end": job_end,
    }
    text = report(results, meta)
    print(text)
    if args.out:
        write_section(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
