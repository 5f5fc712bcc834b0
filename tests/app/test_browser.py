"""End to end in a real browser: Debian's Chromium (headless, 1600x1100) drives `streamlit run` on loopback, as a
new reviewer would, with their name typed once in the sidebar:

- Queue (one split by default, columns and the sort box fit) -> "Review these in this order" -> Review keeps the
  name; a post whose image is missing shows no blank column; accept / correct / undo / redo with the keyboard only;
- Add post with a real photo upload -> "Review it now" -> Review keeps the name, says "no gold label", A says
  there is nothing to accept, the objects say where they came from;
- Inspect on that post (it has an image): the first panel and the entity markers in the chart labels (read from the
  figure data and from the drawn tick labels), then the expensive panels filling in;
- Export in every format, each download read back (CSV with a plain pandas.read_csv).

Screenshots of every step are kept under the test's tmp folder (path printed).
"""

from __future__ import annotations

import ast
import html
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import Annotation, EntityPair, Post
from db.schema import open_database
from tests.app.conftest import key_button_label

REPO = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
REVIEWER = "Browser Reviewer"
POST_TEXT = "Alex & <b>Sam</b> met at the lake"
DONE_TEXT = {"experiments": "stored runs on", "models": "Retrain on the curated labels"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium + chromium-driver (.ci/services/browser.sh installs them)",
    ),
]


# metric labels the browser cuts short (an ellipsis: wider text than its box)
CUT_METRIC_LABELS = """
return [...document.querySelectorAll('[data-testid="stMetricLabel"], [data-testid="stMetricLabel"] *')]
    .filter(e => e.scrollWidth > e.clientWidth + 1)
    .map(e => [e.textContent, e.scrollWidth, e.clientWidth]);
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_streamlit(env: dict, log_path: Path, port: int | None = None, wait_warm: bool = True):
    """`python -m app.serve` (`streamlit run app/main.py`, warmed at start) on loopback; returns (process, url)
    once /_stcore/health answers and, with wait_warm, once the server's warming has ended (as `make app` does)."""
    port = port or free_port()
    warm_file = log_path.with_name(f"{log_path.stem}.warm")
    warm_file.unlink(missing_ok=True)
    env = {**env, "MRELENS_WARM_FILE": str(warm_file)}
    log = open(log_path, "w")  # noqa: SIM115  (closed by stop_streamlit, after the process)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.serve",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    proc.log = log
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            healthy = urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok"
        except OSError as err:
            if proc.poll() is not None or time.time() > deadline:
                stop_streamlit(proc)
                raise RuntimeError(f"streamlit did not start: {log_path.read_text()}") from err
            healthy = False
        # warming that takes longer than the deadline only makes the first pages slower, never fails a test
        if healthy and (not wait_warm or warm_file.is_file() or time.time() > deadline):
            return proc, url
        time.sleep(0.2)


def stop_streamlit(proc) -> None:
    proc.terminate()
    proc.wait(timeout=20)
    proc.log.close()


def new_browser(profile: Path, downloads: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    downloads.mkdir(parents=True, exist_ok=True)
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--window-size=1600,1100",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    return driver


def app_env(url: str, feature_cache: Path, tmp_path: Path) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "MRELENS_FEATURE_CACHE": str(feature_cache),
        "MRELENS_EXPORT_DIR": str(tmp_path / "exports"),
        "MRELENS_UPLOAD_DIR": str(tmp_path / "uploads"),
        "MRELENS_RUNS_DIR": str(tmp_path / "runs"),
        "TORCH_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }


@pytest.fixture
def server(seeded_url, app_feature_cache, tmp_path):
    proc, url = start_streamlit(app_env(seeded_url, app_feature_cache, tmp_path), tmp_path / "streamlit.log")
    try:
        yield url
    finally:
        stop_streamlit(proc)


@pytest.fixture
def browser(tmp_path):
    driver = new_browser(tmp_path / "chrome-profile", tmp_path / "downloads")
    try:
        yield driver
    finally:
        driver.quit()


def body(driver) -> str:
    """The page's text as a person reads it: without the invisible word joiners app.ui.render.plain puts into
    URLs and e-mail addresses (so Streamlit does not make links of them)."""
    return driver.find_element("tag name", "body").text.replace("\u2060", "")


def wait_for_text(driver, text: str, timeout: float = 60) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: text in body(d))


def wait_for(driver, css: str, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.find_element("css selector", css))


def wait_idle(driver, timeout: float = 60) -> None:
    """Until Streamlit has finished the current run (the app root's data-test-script-state)."""
    from selenium.webdriver.support.ui import WebDriverWait

    time.sleep(0.5)  # let a key press or click reach the server first
    WebDriverWait(driver, timeout).until(
        lambda d: (
            d.find_element("css selector", '[data-testid="stApp"]').get_attribute("data-test-script-state")
            not in ("running", "initial")
        )
    )


def open_page(driver, name: str) -> None:
    """Follow the sidebar link (a new URL would start a new session and forget the reviewer's name)."""
    driver.find_element("css selector", f'[data-testid="stSidebarNav"] a[href$="/{name}"]').click()
    wait_idle(driver)


def click_button(driver, label: str) -> None:
    driver.find_element("xpath", f"//button[.//p[normalize-space(.)={json.dumps(label)}]]").click()


def press(driver, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    driver.find_element("css selector", "h1").click()  # the focus on the page, not in a text box
    ActionChains(driver).send_keys(key).perform()
    wait_idle(driver)


def widget(driver, testid: str, label: str, timeout: float = 30):
    """The widget of kind `testid` (stSelectbox, stButtonGroup, ...) whose label reads `label`, once drawn: a
    fragment's rerun can still be drawing it after the script went idle on a loaded machine."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.time() + timeout
    while True:
        try:
            for element in driver.find_elements("css selector", f'[data-testid="{testid}"]'):
                if element.get_attribute("innerText").strip().split("\n", 1)[0].strip() == label:
                    return element
        except StaleElementReferenceException:
            pass  # redrawn while read: look again
        if time.time() > deadline:
            raise AssertionError(f"no {testid} labelled {label!r} on the page after {timeout} s")
        time.sleep(0.2)


def selected(driver, label: str) -> str:
    """The value a selectbox shows (Streamlit draws it as a combobox input)."""
    return driver.find_element("css selector", f'input[role="combobox"][aria-label="{label}"]').get_attribute(
        "value"
    )


def choose(driver, label: str, option: str) -> None:
    """Pick `option` in the selectbox labelled `label`."""
    driver.find_element("css selector", f'input[role="combobox"][aria-label="{label}"]').click()
    wait_for(driver, '[role="option"]')
    for item in driver.find_elements("css selector", '[role="option"]'):
        if item.text.strip() == option:
            item.click()
            wait_idle(driver)
            return
    raise AssertionError(f"{label!r} has no option {option!r}")


def name_in_sidebar(driver) -> str:
    return driver.find_element("css selector", 'input[aria-label="Your name"]').get_attribute("value")


def assert_name_kept(driver) -> None:
    """The bug this guards: Review opened with an empty name box and 'Enter your name in the sidebar first'."""
    assert "Enter your name in the sidebar first" not in body(driver)
    assert name_in_sidebar(driver) == REVIEWER
    assert f"reviewing as {REVIEWER}" in body(driver)


def plotly_figures(driver) -> list[dict]:
    """Every Plotly chart's data as the browser holds it: trace types, axis labels, drawn tick texts."""
    return driver.execute_script(
        """
        return [...document.querySelectorAll('.js-plotly-plot')].map(el => ({
            types: (el.data || []).map(t => t.type),
            y: (el.data || []).map(t => t.y ? Array.from(t.y).map(String) : []),
            x: (el.data || []).map(t => t.x ? Array.from(t.x).map(String) : []),
            yticks: [...el.querySelectorAll('.ytick text')].map(t => t.textContent),
            xticks: [...el.querySelectorAll('.xtick text')].map(t => t.textContent),
        }));
        """
    )


def downloads_of(driver, suffix: str, count: int, timeout: float = 30) -> list[Path]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = sorted(p for p in driver.downloads.iterdir() if p.suffix == suffix)
        if len(found) >= count:
            return found
        time.sleep(0.3)
    raise AssertionError(f"{count} {suffix} downloads expected, got {list(driver.downloads.iterdir())}")


def rows(url: str):
    engine, sessions = open_database(url)
    with sessions() as s:
        result = s.execute(
            select(Annotation.pair_id, Annotation.status, Annotation.label, Annotation.annotator).order_by(
                Annotation.id
            )
        ).all()
    engine.dispose()
    return [tuple(r) for r in result]


def first_in_review_order(url: str) -> int:
    """The pair Queue's default view (split val, its default order) puts first; its image is taken away."""
    from db.review_queue import DEFAULT_QUEUE_SORT, QueueFilter, review_queue

    engine, sessions = open_database(url)
    with sessions.begin() as s:
        pair_id = review_queue(s, QueueFilter(split="val"), sort=DEFAULT_QUEUE_SORT, limit=1)[0].pair_id
        s.get(Post, s.get(EntityPair, pair_id).post_id).image_path = "/nowhere/gone.png"
        # one train pair of MNRE's "None" relation: the label a plain read_csv used to turn into NaN
        none_pair = s.scalar(select(EntityPair).where(EntityPair.split == "train").order_by(EntityPair.id))
        if none_pair.raw_line:
            none_pair.raw_line = none_pair.raw_line.replace(f"'{none_pair.gold_label}'", "'None'")
        none_pair.gold_label = "None"
    engine.dispose()
    return pair_id


def test_a_reviewer_walks_every_page_in_a_real_browser(seeded_url, app_feature_cache, tmp_path):
    missing_image_pair = first_in_review_order(seeded_url)
    proc, url = start_streamlit(app_env(seeded_url, app_feature_cache, tmp_path), tmp_path / "streamlit.log")
    browser = new_browser(tmp_path / "chrome-profile", tmp_path / "downloads")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nscreenshots: {shots}")
    try:
        walk(browser, url, seeded_url, shots, tmp_path, missing_image_pair)
    finally:
        browser.save_screenshot(str(shots / "last.png"))
        browser.quit()
        stop_streamlit(proc)


def walk(browser, url: str, store: str, shots: Path, tmp_path: Path, missing_image_pair: int) -> None:
    # Queue: the name is typed once; reviewers start on one split; the table and the sort box fit at 1600 px
    browser.get(url)
    wait_for_text(browser, "pairs shown")
    # the first run after a server start can show the page's text while its widgets are still placeholders
    wait_for(browser, 'input[aria-label="Your name"]').send_keys(REVIEWER + "\n")
    wait_idle(browser)
    wait_for_text(browser, "pairs shown")
    assert selected(browser, "Split") == "val"
    assert "8 pairs shown" in body(browser), "the val split of the seeded store"
    sort_cut = browser.execute_script(
        "const i = document.querySelector('input[aria-label=\"Sort\"]'); return [i.value, i.scrollWidth, i.clientWidth];"
    )
    assert sort_cut[1] <= sort_cut[2] + 1, f"the sort box cuts off {sort_cut[0]!r}"
    grid = browser.execute_script(
        """
        const s = document.querySelector('[data-testid="stDataFrame"] .dvn-scroller');
        return [s.scrollWidth, s.clientWidth];
        """
    )
    assert grid[0] <= grid[1] + 2, f"the queue table needs horizontal scrolling: {grid}"
    browser.save_screenshot(str(shots / "queue.png"))

    # Queue -> Review: the name survives the page switch
    click_button(browser, "Review these in this order")
    wait_for_text(browser, "Keys:")
    wait_idle(browser)
    assert_name_kept(browser)
    assert f"Pair {missing_image_pair} " in body(browser)
    wait_for_text(browser, "image is not on this machine")
    warning = next(
        w
        for w in browser.find_elements("css selector", '[data-testid="stAlertContentWarning"]')
        if "image is not on this machine" in w.text
    )
    gap = browser.execute_script(
        """
        const w = arguments[0].getBoundingClientRect();
        const below = [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
            .map(e => e.getBoundingClientRect()).filter(r => r.top >= w.bottom - 1 && r.height > 0);
        return Math.min(...below.map(r => r.top)) - w.bottom;
        """,
        warning,
    )
    assert gap < 120, f"{gap:.0f} px of blank space under the missing-image message"
    browser.save_screenshot(str(shots / "review_missing_image.png"))
    first = missing_image_pair
    press(browser, "a")
    wait_for_text(browser, f"Pair {first}: accepted")
    second = int(body(browser).split("· ")[0].split("Pair ")[-1].strip())
    # keys are fixed per label: take the first digit whose label is not the pair's gold one (that would be an accept)
    gold = _gold(store, second)
    key, second_label = next(
        (digit, label)
        for digit in "123456789"
        for label in [
            key_button_label(
                browser.find_element(
                    "xpath", f"//button[.//p[starts-with(normalize-space(.), '{digit} ·')]]"
                ).text
            )
        ]
        if label != gold
    )
    press(browser, key)
    wait_for_text(browser, f"Pair {second}: corrected as {second_label}")
    press(browser, "u")  # undo the correction, then make it again
    wait_for_text(browser, f"Pair {second}: last decision undone")
    assert rows(store)[-1] == (second, "unreviewed", None, REVIEWER)
    press(browser, key)
    wait_for_text(browser, f"Pair {second}: corrected as {second_label}")
    browser.save_screenshot(str(shots / "review_after_keys.png"))
    assert rows(store) == [
        (first, "accepted", _gold(store, first), REVIEWER),
        (second, "corrected", second_label, REVIEWER),
        (second, "unreviewed", None, REVIEWER),
        (second, "corrected", second_label, REVIEWER),
    ]

    # Add post with a real photo -> Review it now: the name survives, no gold label, Accept off
    import matplotlib.cbook

    photo = tmp_path / "holiday snap.jpg"
    shutil.copy(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), photo)
    open_page(browser, "add_post")
    wait_for_text(browser, "Add a post")
    browser.find_element("css selector", 'input[type="file"]').send_keys(str(photo))
    wait_for_text(browser, photo.name)
    text_box = browser.find_element("css selector", 'textarea[aria-label="Post text"]')
    text_box.send_keys(POST_TEXT)
    browser.find_element("css selector", "h1").click()  # leaving the box submits the text
    wait_idle(browser)
    wait_for_text(browser, "Head entity")
    for group, word in (
        ("Head entity (click its words)", "Alex"),
        ("Tail entity (click its words)", "<b>Sam</b>"),
    ):
        pills = widget(browser, "stButtonGroup", group)
        next(b for b in pills.find_elements("tag name", "button") if b.text.strip() == word).click()
        wait_idle(browser)
    click_button(browser, "Add, ground and predict")
    wait_for_text(browser, "the model predicts", timeout=120)
    wait_idle(browser)
    browser.save_screenshot(str(shots / "add_post.png"))
    added = int(body(browser).split("Pair ", 1)[1].split(" ", 1)[0])
    click_button(browser, "Review it now")
    wait_for_text(browser, "Keys:")
    wait_idle(browser)
    assert_name_kept(browser)
    page = body(browser)
    assert f"Pair {added} " in page and "no gold label" in page and "Gold label: None" not in page
    assert "Objects:" in page and "ImageNet CAM fallback" in page, "the objects say where they came from"
    browser.save_screenshot(str(shots / "review_added_post.png"))
    # a post without a label cannot be accepted: A says why instead of doing nothing
    press(browser, "a")
    wait_for_text(browser, f"Nothing to accept: pair {added} has no label")

    from selenium.webdriver.support.ui import WebDriverWait

    # Inspect the added post (it has an image): first panel, markers in the chart labels, then the rest
    started = time.perf_counter()
    browser.find_element("css selector", '[data-testid="stSidebarNav"] a[href$="/inspect"]').click()
    WebDriverWait(browser, 60, poll_frequency=0.05).until(
        lambda d: any(f["types"] == ["heatmap"] and f["yticks"] for f in plotly_figures(d))
    )
    print(f"Inspect: attention chart drawn {time.perf_counter() - started:.1f} s after the click")
    heat = next(f for f in plotly_figures(browser) if f["types"] == ["heatmap"])
    shown = [html.unescape(label.removeprefix("<b>").removesuffix("</b>")) for label in heat["y"][0]]
    assert any(label.endswith(": <s>") for label in shown) and any(
        label.endswith(": </o>") for label in shown
    )
    assert any(label.endswith(": &") for label in shown), "the post's own '&' is a token of its own"
    drawn = heat["yticks"]
    assert len(drawn) == len(heat["y"][0]), "every token row has its drawn label"
    assert any(t.endswith(": <s>") for t in drawn) and any(t.endswith(": </s>") for t in drawn), drawn
    wait_for_text(browser, "Reliance score", timeout=150)
    wait_for_text(browser, "Tokens comprehensiveness", timeout=150)
    print(f"Inspect: every panel filled {time.perf_counter() - started:.1f} s after the click")
    wait_idle(browser, timeout=60)
    time.sleep(1.5)  # the last polling rerun
    page = body(browser)
    assert "Objects:" in page and "Traceback" not in page
    # at 1600 px "Tokens comprehensiveness" and "Image comprehensiveness" ended in "..." in a third of a half
    assert not browser.execute_script(CUT_METRIC_LABELS), browser.execute_script(CUT_METRIC_LABELS)
    bars = next(
        f for f in plotly_figures(browser) if f["types"] == ["bar"] and any(": <s>" in t for t in f["xticks"])
    )
    assert any(t.endswith(": </s>") for t in bars["xticks"]), "token attribution shows the markers too"
    browser.save_screenshot(str(shots / "inspect.png"))
    for section in ("Captum attributions and faithfulness", "Image reliance"):
        heading = browser.find_element("xpath", f"//h3[contains(normalize-space(.), {json.dumps(section)})]")
        browser.execute_script("arguments[0].scrollIntoView()", heading)
        time.sleep(0.3)
        browser.save_screenshot(str(shots / f"inspect_{section.split()[0].lower()}.png"))
    occlusion = browser.find_element("xpath", "//*[name()='text' and contains(., 'Visual occlusion for')]")
    browser.execute_script("arguments[0].scrollIntoView()", occlusion)
    time.sleep(0.3)
    browser.save_screenshot(str(shots / "inspect_occlusion.png"))

    # Export: every format, each download read back
    import pandas as pd

    open_page(browser, "export")
    wait_for_text(browser, "Export curated labels")
    click_button(browser, "Export")  # MNRE, split all: one file per split
    wait_for_text(browser, "pairs exported to")
    wait_idle(browser)
    buttons = browser.find_elements("css selector", '[data-testid="stDownloadButton"] button')
    for button in buttons:
        button.click()
        time.sleep(0.5)
    mnre = downloads_of(browser, ".txt", len(buttons))
    by_split = {p.stem.rsplit("_", 1)[1]: p.read_text().splitlines() for p in mnre}
    assert {"train", "val"} <= set(by_split) <= {"train", "val", "new"}, list(by_split)
    assert len(by_split["train"]) == 16 and len(by_split["val"]) == 8, "no split mixed into another"
    assert [line for line in by_split["val"] if f"'relation': '{second_label}'" in line], "the correction"
    assert all(ast.literal_eval(line)["token"] for lines in by_split.values() for line in lines)
    browser.save_screenshot(str(shots / "export_mnre.png"))
    for fmt, suffix in (("jsonl", ".jsonl"), ("csv", ".csv"), ("parquet", ".parquet")):
        choose(browser, "Format", fmt)
        # close the list, so the next click is the button's
        browser.find_element("css selector", "h1").click()
        click_button(browser, "Export")
        wait_for_text(browser, f"{suffix} (")
        wait_idle(browser)
        wait_for(browser, '[data-testid="stDownloadButton"] button').click()
        (path,) = downloads_of(browser, suffix, 1)
        if fmt == "jsonl":
            frame = pd.DataFrame([json.loads(line) for line in path.read_text().splitlines()])
        elif fmt == "csv":
            frame = pd.read_csv(path)  # plain defaults, as people read a CSV
        else:
            frame = pd.read_parquet(path)
        stored = store_golds(store)
        assert set(stored) - {added} <= set(frame["pair_id"]), f"{fmt}: every seeded pair is exported"
        gold = dict(zip(frame["pair_id"], frame["gold_label"], strict=True))
        if fmt == "csv":
            lost = [k for k, v in stored.items() if v is not None and k in gold and pd.isna(gold[k])]
            assert not lost, f"a plain read_csv turned the labels of pairs {lost} into NaN"
            gold = {
                k: json.loads(v) if isinstance(v, str) and v.startswith('"') else v for k, v in gold.items()
            }
        assert all(gold[k] == v for k, v in stored.items() if k in gold and v is not None), fmt
        assert "None" in gold.values(), f"{fmt}: MNRE's None relation is exported as a label"
    browser.save_screenshot(str(shots / "export.png"))

    for page_name in ("experiments", "models"):
        open_page(browser, page_name)
        wait_for_text(browser, DONE_TEXT[page_name], timeout=120)
        wait_idle(browser, timeout=120)
        browser.save_screenshot(str(shots / f"{page_name}.png"))
    assert "Traceback" not in body(browser)


def store_golds(url: str) -> dict[int, str | None]:
    engine, sessions = open_database(url)
    with sessions() as s:
        golds = dict(s.execute(select(EntityPair.id, EntityPair.gold_label)).all())
    engine.dispose()
    return golds


def _gold(url: str, pair_id: int) -> str:
    engine, sessions = open_database(url)
    with sessions() as s:
        gold = s.get(EntityPair, pair_id).gold_label
    engine.dispose()
    return gold
