"""End to end in a real browser: Debian's Chromium drives `streamlit run` on loopback. A reviewer gives their name,
accepts a pair and corrects another with the keyboard only, exports the curated labels, and the export file and
the label store are checked. A screenshot of every page is saved under the test's tmp folder (path printed)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import Annotation, EntityPair
from db.schema import open_database

REPO = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
PAGES = ["queue", "review", "inspect", "experiments", "add_post", "export", "models"]
DONE_TEXT = {  # text each page shows once it has rendered completely
    "inspect": "Reliance score",
    "experiments": "stored runs on",
    "add_post": "mark the head and the tail",
    "models": "Retrain on the curated labels",
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium + chromium-driver (.ci/services/browser.sh installs them)",
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(seeded_url, app_feature_cache, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": seeded_url,
        "MRELENS_FEATURE_CACHE": str(app_feature_cache),
        "MRELENS_EXPORT_DIR": str(tmp_path / "exports"),
        "MRELENS_UPLOAD_DIR": str(tmp_path / "uploads"),
        "TORCH_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    log = open(tmp_path / "streamlit.log", "w")  # noqa: SIM115  (closed below, after the process)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError as err:
                if proc.poll() is not None or time.time() > deadline:
                    log_text = (tmp_path / "streamlit.log").read_text()
                    raise RuntimeError(f"streamlit did not start: {log_text}") from err
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
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
        "--window-size=1400,1800",
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
    ):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_text(driver, text: str, timeout: float = 60) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: text in d.find_element("tag name", "body").text)


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


def press(driver, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    driver.find_element("css selector", "h1").click()  # the focus on the page, not in a text box
    ActionChains(driver).send_keys(key).perform()
    wait_idle(driver)


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


def test_review_with_the_keyboard_then_export(server, browser, seeded_url, tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nscreenshots: {shots}")
    browser.get(server)
    wait_for_text(browser, "pairs shown")
    name = browser.find_element("css selector", 'input[aria-label="Your name"]')
    name.send_keys("Browser Reviewer\n")
    wait_idle(browser)
    wait_for_text(browser, "pairs shown")
    browser.save_screenshot(str(shots / "queue.png"))

    open_page(browser, "review")
    wait_for_text(browser, "Keys:")
    wait_idle(browser)
    browser.save_screenshot(str(shots / "review.png"))
    first = int(browser.find_element("css selector", "body").text.split("Pair ", 1)[1].split(" ", 1)[0])
    press(browser, "a")
    wait_for_text(browser, f"Pair {first}: accepted")
    second = int(browser.find_element("css selector", "body").text.split("· ")[0].split("Pair ")[-1].strip())
    second_label = (
        browser.find_element("xpath", "//button[.//p[starts-with(normalize-space(.), '2 ·')]]")
        .text.split("·", 1)[1]
        .rsplit(" ", 1)[0]
        .strip()
    )
    press(browser, "2")
    wait_for_text(browser, f"Pair {second}: corrected as {second_label}")
    press(browser, "u")  # undo the correction, then make it again
    wait_for_text(browser, f"Pair {second}: last decision undone")
    assert rows(seeded_url)[-1] == (second, "unreviewed", None, "Browser Reviewer")
    press(browser, "2")
    wait_for_text(browser, f"Pair {second}: corrected as {second_label}")
    browser.save_screenshot(str(shots / "review_after_keys.png"))
    assert rows(seeded_url) == [
        (first, "accepted", _gold(seeded_url, first), "Browser Reviewer"),
        (second, "corrected", second_label, "Browser Reviewer"),
        (second, "unreviewed", None, "Browser Reviewer"),
        (second, "corrected", second_label, "Browser Reviewer"),
    ]

    open_page(browser, "export")
    wait_for_text(browser, "Export curated labels")
    browser.find_element("xpath", "//button[.//p[normalize-space(.)='Export']]").click()
    wait_for_text(browser, f"pairs exported to {tmp_path / 'exports'}")
    wait_idle(browser)
    wait_for(browser, '[data-testid="stDownloadButton"] button').click()
    deadline = time.time() + 30
    while not [p for p in browser.downloads.iterdir() if p.suffix == ".txt"] and time.time() < deadline:
        time.sleep(0.3)
    browser.save_screenshot(str(shots / "export.png"))
    (exported,) = [p for p in browser.downloads.iterdir() if p.suffix == ".txt"]
    lines = exported.read_text().splitlines()
    assert len(lines) == 24, "every pair of the seeded store, in the MNRE layout"
    relabelled = [line for line in lines if f"'relation': '{second_label}'" in line]
    assert relabelled, "the correction is in the export"

    for page in ("inspect", "experiments", "add_post", "models"):
        open_page(browser, page)
        wait_for_text(browser, DONE_TEXT[page], timeout=120)
        wait_idle(browser, timeout=120)
        browser.save_screenshot(str(shots / f"{page}.png"))
    assert {p.stem for p in shots.iterdir()} >= set(PAGES)
    assert "Traceback" not in browser.find_element("css selector", "body").text
    json.dumps(rows(seeded_url))  # the store is readable after the session


def _gold(url: str, pair_id: int) -> str:
    engine, sessions = open_database(url)
    with sessions() as s:
        gold = s.get(EntityPair, pair_id).gold_label
    engine.dispose()
    return gold
