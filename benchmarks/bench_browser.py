"""Interaction latency in a real browser (headless Chromium, the browser tests' harness), idle and while the worker
trains, against the review app's floors.

    python benchmarks/bench_browser.py [--presses 15] [--out benchmarks/app.md] [--quick] [--seed 0] [--read 1]
        [--no-training]

A temporary label store holds the synthetic demo data (benchmarks/bench_app.py's seed_store: 120 pairs, one model
version, its predictions stored); `python -m app.serve` serves it on loopback. Each interaction is timed from the key
press or click to the expected content on screen ("visible") and to the end of the script run ("idle"):

- a keyboard decision (a label's key, S, X, A, U in turn) until the pair line ("Pair N · ... · k of n pairs in this
  queue") of the pair it leads to: the next place in the queue (its pair when known: one handed out under a lease is
  new), U the place of the decision it takes back;
- previous / next (P, N in turn, P first: after the decisions Review can be at its queue's last pair) until the
  line of the neighbouring pair;
  each Review key is pressed --read seconds (1 by default) after the previous run ended: the reviewer looks at the
  pair, and Review prepares the next pairs meanwhile (app.ui.review_prefetch);
- a page switch from the sidebar (Review <-> Queue) until the page's own text;
- a Queue filter / sort / search change until the run has drawn the new table (the table is the run's last element,
  so visible = idle there);
- Review's first visit after another model version became active (its prediction not stored yet: Review runs it)
  until the model's line;
- Inspect's first panel for a pair with nothing stored until its attention chart.

Twice: on an otherwise idle server, then while `python -m app.worker` trains the default recipe of the same data (a
real training job, queued as the Models page does; when one ends another is queued, so every measurement of the pass
is taken while a model trains), so the CPU is loaded the way a user's is. --quick: a smaller store (60 pairs) and 3
presses of each, for development (about 8 minutes on a busy 2-core machine); its figures are indicative only.

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
# polled every 10 ms: textContent, which never makes Chromium lay the page out (innerText does, and polled that
# often it takes the CPU the page needs); the main area's text only when a test reads it
SHOWN = """
const line = [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
    .map(e => e.textContent).find(t => t.startsWith('Pair '));
const app = document.querySelector('[data-testid="stApp"]');
const main = arguments[0] ? document.querySelector('[data-testid="stMain"]') : null;
return [line || null, app ? app.getAttribute('data-test-script-state') : 'initial',
        main ? main.textContent : '', window.location.search];
"""
# Review's pair line: "Pair 12 · synthetic / val line 3 · 4 of 5 pairs in this queue · reviewing as bench"
PAIR_LINE = re.compile(r"^Pair (\d+) .* · (\d+) of [\d,]+ pairs? in this queue")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Browser:
    """One Chromium on the app, with the timing loops."""

    def __init__(self, driver):
        self.driver = driver
        self.queue_step = 0  # where the Queue changes' cycle is
        self.tick = lambda: None  # before each measurement (see measure)
        self.read = 1.0  # seconds the reviewer looks at a pair before the next key (main's --read)

    def state(self, text: bool = False) -> tuple[tuple[int, int] | None, str, str, str]:
        """((pair id, queue position from 0) of Review's pair line or None, script state, the main area's text
        (with `text`, else empty), the address's query)."""
        line, run, text, query = self.driver.execute_script(SHOWN, text)
        found = PAIR_LINE.match(line or "")
        return ((int(found[1]), int(found[2]) - 1) if found else None), run, text, query

    def until(self, start: float, visible, timeout: float = 120, text: bool = False) -> tuple[float, float]:
        """(seconds to `visible(state)` true, seconds to the run's end after it) from `start`; `text`: `visible`
        reads the main area's text."""
        seen = None
        while time.perf_counter() - start < timeout:
            pair, run, main, query = self.state(text and seen is None)
            now = time.perf_counter() - start
            if seen is None and visible(pair, main, query):
                seen = now
            if seen is not None and run not in ("running", "initial"):
                return seen, now
            time.sleep(0.01)
        pair, run, main, _ = self.state(True)
        raise TimeoutError(
            f"nothing visible after {timeout} s (at {pair}, {run}; the page reads: {main[-600:]!r})"
        )

    def focus_page(self) -> None:
        self.driver.find_element("css selector", "h1").click()

    def shown(self) -> tuple[int, int]:
        """(pair id, queue position) Review shows now."""
        shown = self.state()[0]
        if shown is None:
            raise AssertionError("Review shows no pair line")
        return shown

    def key(self, key: str, position: int, pair: int | None, timeout: float = 120) -> tuple[float, float]:
        """Press `key` on Review; timed until the pair line shows queue `position` and `pair` (None: a pair not
        known before, the next one handed out under a lease)."""
        from selenium.webdriver.common.action_chains import ActionChains

        self.tick()
        self.idle()  # the reviewer reads the pair first: the previous run has ended before the press
        time.sleep(self.read)
        self.focus_page()
        before = self.shown()
        start = time.perf_counter()
        ActionChains(self.driver).send_keys(key).perform()

        def visible(shown, text, query) -> bool:
            return (
                shown is not None
                and shown[1] == position
                and (shown[0] == pair if pair is not None else shown[0] != before[0])
            )

        return self.until(start, visible, timeout)

    def sidebar(self, page: str, marker) -> tuple[float, float]:
        """Click `page` in the sidebar; timed until `marker` (a text, or a test of the main area's text) shows."""
        self.tick()
        seen = marker if callable(marker) else lambda text: marker in text
        links = self.driver.find_elements("css selector", '[data-testid="stSidebarNav"] a')
        # the Queue is the default page: its link is the app's root, so the links are told apart by their titles
        # (an icon's name comes before the title in the link's text)
        link = next(a for a in links if a.get_attribute("innerText").strip().endswith(page.capitalize()))
        start = time.perf_counter()
        link.click()
        return self.until(start, lambda pair, text, query: seen(text), text=True)

    def queue_change(self, action) -> tuple[float, float]:
        """A Queue widget change: until the address bar holds the new filter (the run wrote it) and the run ended."""
        self.tick()
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


def active_version_id(url: str) -> str | None:
    from app.services.store import active_version
    from db.schema import open_database

    engine, sessions = open_database(url)
    active = active_version(sessions)
    engine.dispose()
    return active.version_id if active else None


def machine() -> str:
    """The CPU's model name and the memory, as Linux reports them (else the architecture)."""
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
        kib = int(
            next(
                x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")
            ).split()[1]
        )
    except (OSError, StopIteration, ValueError):
        return platform.machine()
    return f"{cpu} ({platform.machine()}, {kib / 2**20:.0f} GiB)"


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


def log(tag: str, what: str, timing: tuple[float, float], detail=None) -> None:
    """One measurement on stderr as it is taken (a long run shows where it is)."""
    shown = f" ({detail})" if detail is not None else ""
    print(
        f"[{tag}] {what}: visible {timing[0]:.3f} s, idle {timing[1]:.3f} s{shown}",
        file=sys.stderr,
        flush=True,
    )


def measure(
    page: Browser,
    url: str,
    model_dir: Path,
    folder: Path,
    fresh: list[int],
    presses: int,
    tag: str,
    tick=None,
) -> dict:
    """Every interaction `presses` times on the open session; {interaction: [(visible, idle), ...]}. `tick()` runs
    before each measurement (the loaded pass: a training job running)."""
    from benchmarks.bench_app import Page

    page.tick = tick or (lambda: None)
    out: dict[str, list[tuple[float, float]]] = {k: [] for k, _ in FLOORS if _ == "idle"}
    out["Review first visit after a model became active"] = []
    page.sidebar("review", "reviewing as")
    page.idle()
    keys = ["1", "s", "x", "a", "u"]  # a label's key (corrects to it), skip, reject, accept, undo
    # what each press must show: the queue's pairs by position as seen so far, and the positions decided in this
    # session (U takes the last one back and shows its pair)
    pair, position = page.shown()
    seen, decided = {position: pair}, []
    for i in range(presses):
        key = keys[i % len(keys)]
        if key == "u":
            expected = decided.pop()
        else:
            decided.append(position)
            expected = position + 1
        out["keyboard decision"].append(page.key(key, expected, seen.get(expected)))
        pair, position = page.shown()
        seen[position] = pair
        log(tag, f"key {key}", out["keyboard decision"][-1], pair)
    # P first: after the decisions Review may be at the last pair of its queue, where N has nowhere to go
    for i in range(presses):
        key, step = ("p", -1) if i % 2 == 0 else ("n", 1)
        expected = position + step
        out["next / previous"].append(page.key(key, expected, seen[expected]))
        pair, position = page.shown()
        log(tag, f"key {key}", out["next / previous"][-1], pair)
    for i in range(presses):
        page.idle()
        if i % 2 == 0:
            out["page switch"].append(page.sidebar("queue", "pairs shown"))
        else:
            out["page switch"].append(page.sidebar("review", "reviewing as"))
        log(tag, "page switch", out["page switch"][-1])
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
        log(tag, "Queue change", out["Queue filter / sort / search"][-1])
    for _ in range(max(1, presses // 3)):
        page.idle()
        previous = active_version_id(url)
        version = new_version(url, model_dir, folder, len(list(folder.glob("model-*"))))

        def marker(text: str, previous=previous) -> bool:
            # the model's line, drawn once Review has run the newly active model on the pair (while training, the
            # worker's job may have activated its own model meanwhile: any version but the one before counts)
            line = re.search(r"Model (\S+) predicts", text)
            return line is not None and line[1] != previous

        out["Review first visit after a model became active"].append(page.sidebar("review", marker))
        log(
            tag,
            "Review after a model became active",
            out["Review first visit after a model became active"][-1],
            version,
        )
        page.idle()
        page.sidebar("queue", "pairs shown")
    page.idle()
    page.sidebar("inspect", "Inspect")
    page.idle()
    inspect = Page(page.driver)
    for pair in fresh[:presses]:
        page.tick()
        before = inspect.heatmap_rows()
        start = inspect.open_pair(pair)
        inspect.until_new_heatmap(before)
        visible = time.perf_counter() - start
        page.idle()
        out["Inspect first panel, nothing stored"].append((visible, time.perf_counter() - start))
        log(tag, "Inspect first panel", out["Inspect first panel, nothing stored"][-1], pair)
    return out


class Training:
    """`python -m app.worker` training the default recipe of the same data (queued as the Models page queues it)
    for the whole loaded pass: when a job ends, the next measurement queues another, so every measurement is taken
    while a model trains (`while_training` counts those that found a job running)."""

    def __init__(self, url: str, data_root: Path, folder: Path, env: dict):
        from db.schema import open_database

        self.engine, self.sessions = open_database(url)
        self.data_root = data_root
        self.jobs: list[int] = []
        self.measured = self.while_training = 0
        self.log = open(folder / "worker.log", "w")  # noqa: SIM115  (closed in stop)
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "app.worker"], cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.ensure()

    def status(self) -> str:
        return job_status(self.sessions, self.jobs[-1]) if self.jobs else "none"

    def ensure(self, timeout: float = 300) -> None:
        """A training job running now: the current one, else a new one queued and waited for."""
        from app.services.model_jobs import queue_training

        if self.status() not in ("queued", "running"):
            self.jobs.append(
                queue_training(self.sessions, "default_model", self.data_root, "synthetic", "bench")
            )
        deadline = time.time() + timeout
        while self.status() == "queued" and time.time() < deadline:
            time.sleep(0.5)
        if self.worker.poll() is not None:
            raise RuntimeError(f"the worker exited ({self.worker.returncode}); see worker.log")
        self.measured += 1
        self.while_training += self.status() == "running"

    def stop(self) -> str:
        """Stop the worker; the last job's status before it was stopped."""
        status = self.status()
        self.worker.send_signal(signal.SIGINT)  # ends its job at the next progress report
        try:
            self.worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.worker.kill()
            self.worker.wait()
        self.log.close()
        self.engine.dispose()
        return status


def job_status(sessions, job: int) -> str:
    from db.jobs import get_job

    with sessions() as session:
        return get_job(session, job).status


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


def verdict(s: dict, floor: float) -> str:
    """pass when the median is within the floor and the p95 within twice it; else what missed."""
    missed = [
        what
        for what, value, limit in (("median", s["median"], floor), ("p95", s["p95"], 2 * floor))
        if value > limit
    ]
    return "pass" if not missed else f"**fail** ({', '.join(missed)})"


def report(results: dict, meta: dict) -> str:
    jobs = ", ".join(str(j) for j in meta["jobs"]) or "none"
    lines = [
        SECTION,
        "",
        f"Measured {meta['date']} by `{meta['command']}` "
        f"({meta['presses']} presses or clicks of each interaction per pass, a Review key {meta['read']:g} s after "
        f"the previous run ended (the reviewer reads the pair), seed {meta['seed']}; the run took "
        f"{meta['minutes']:.0f} min) on {meta['machine']} with {meta['cpus']} CPU cores: headless Chromium "
        "1600x1100, `python -m app.serve` on loopback, 1 torch thread. Data: the synthetic demo store "
        f"({meta['pairs']} pairs, every post with an image; data seed 0), model {meta['model']} active with its "
        f"predictions stored. Load average (1 / 5 / 15 min) {meta['load_start']} at the start, {meta['load_end']} "
        f"at the end{meta['shared']}. "
        + (
            "Training: the worker trained the default recipe on the same data throughout the loaded pass (jobs "
            f"{jobs}; a job running at {meta['while_training']} measurements; the last one's status when the pass "
            f"ended: {meta['job_status_end']})."
            if meta["jobs"]
            else "No loaded pass (--no-training)."
        )
        + (" **Quick run: a smaller store and 3 presses each; indicative only.**" if meta["quick"] else ""),
        "",
        "Visible: from the key press or click to the expected content on screen (Review: the pair line of the "
        "pair the key leads to; a page: its own text; Inspect: the attention chart of the pair asked for); idle: "
        "to the end of the script run. Queue changes draw the table last, so their visible time is the run's end. "
        "A floor is met (pass) when the median is within it and the p95 within twice it.",
        "",
        "| interaction | load | n | visible median s | p95 s | max s | idle median s | idle p95 s | floor s "
        "| median / floor | p95 / (2 x floor) | floor met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for condition in ("idle", "training"):
        for name, pairs in results.get(condition, {}).items():
            if not pairs:
                continue
            s = summary(pairs)
            floor = FLOORS.get((name, condition))
            ratios = (
                f"{floor:.1f} | {s['median'] / floor:.2f} | {s['p95'] / (2 * floor):.2f} | {verdict(s, floor)}"
                if floor
                else "none stated | | | "
            )
            lines.append(
                f"| {name} | {condition} | {s['n']} | {s['median']:.3f} | {s['p95']:.3f} | {s['max']:.3f} | "
                f"{s['idle_median']:.3f} | {s['idle_p95']:.3f} | {ratios} |"
            )
    met = [
        verdict(summary(pairs), FLOORS[(name, condition)]) == "pass"
        for condition, rows in results.items()
        for name, pairs in rows.items()
        if pairs and (name, condition) in FLOORS
    ]
    lines += ["", f"{sum(met)} of {len(met)} floors met."]
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
    ap.add_argument("--seed", type=int, default=0, help="seed of the fresh model's weights")
    ap.add_argument(
        "--read",
        type=float,
        default=1.0,
        help="seconds the reviewer looks at a pair before the next Review key (Review prepares the next pairs "
        "meanwhile)",
    )
    args = ap.parse_args(argv)
    presses = 3 if args.quick else args.presses
    from benchmarks.bench_app import Page, pairs_with_nothing_stored, seed_store
    from tests.app.test_browser import app_env, new_browser, start_streamlit, stop_streamlit

    load_start, started = os.getloadavg(), time.perf_counter()
    import torch

    torch.manual_seed(args.seed)  # the fresh model's weights (the synthetic data has its own seed, 0)
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
        page.read = args.read
        training, job_end = None, "no training pass"
        try:
            driver.get(app_url)
            Page(driver).until_text("pairs shown")
            Page(driver).name()
            results["idle"] = measure(page, url, folder / "model", folder, fresh[:presses], presses, "idle")
            if not args.no_training:
                training = Training(url, data_root, folder, env)
                page.sidebar("queue", "pairs shown")
                results["training"] = measure(
                    page, url, folder / "model", folder, fresh[presses:], presses, "training", training.ensure
                )
        finally:
            driver.quit()
            stop_streamlit(proc)
            if training is not None:
                job_end = training.stop()
    meta = {
        "date": f"{dt.date.today():%Y-%m-%d}",
        "quick": args.quick,
        "presses": presses,
        "command": " ".join(
            ["python benchmarks/bench_browser.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "seed": args.seed,
        "read": args.read,
        "minutes": (time.perf_counter() - started) / 60,
        "machine": machine(),
        "cpus": os.cpu_count(),
        "pairs": sum(sizes),
        "model": f"`{version}` (fresh MiniLM-L6 + EfficientNet-Lite0, random classifier)",
        "load_start": " / ".join(f"{x:.1f}" for x in load_start),
        "load_end": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
        "jobs": training.jobs if training else [],
        "while_training": f"{training.while_training} of {training.measured}" if training else "",
        "job_status_end": job_end,
    }
    busy = max(*load_start, *os.getloadavg()) > (os.cpu_count() or 1)
    meta["shared"] = f" (above {meta['cpus']}: the cores were shared with other work)" if busy else ""
    text = report(results, meta)
    print(text)
    if args.out:
        write_section(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
