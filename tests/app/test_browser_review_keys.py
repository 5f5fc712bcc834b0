"""Review's keys in a real browser (headless Chromium, the helpers of test_browser.py): a label's fixed key and the
action keys each record the decision and show the next pair; the time from each key press to the next pair visible
(its "Pair N" line) and to the script idle is measured and printed (written as JSON to $MRELENS_BROWSER_TIMINGS
when set: benchmarks/app.md quotes it)."""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

from tests.app.conftest import key_button_label
from tests.app.test_browser import (
    REVIEWER,
    app_env,
    body,
    new_browser,
    open_page,
    pytestmark,  # noqa: F401  (slow; skipped without Chromium)
    rows,
    start_streamlit,
    stop_streamlit,
    wait_for,
    wait_for_text,
    wait_idle,
)

SHOWN_PAIR = """
const line = [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
    .map(e => e.innerText).find(t => t.startsWith('Pair '));
const state = document.querySelector('[data-testid="stApp"]').getAttribute('data-test-script-state');
return [line ? parseInt(line.slice(5)) : null, state];
"""


def timed_press(driver, key: str, timeout: float = 30) -> tuple[int, float, float]:
    """Press `key` with the focus on the page; (next pair, seconds to its "Pair N" line, seconds to script idle)."""
    from selenium.webdriver.common.action_chains import ActionChains

    driver.find_element("css selector", "h1").click()
    before, _ = driver.execute_script(SHOWN_PAIR)
    start = time.perf_counter()
    ActionChains(driver).send_keys(key).perform()
    visible = None
    while time.perf_counter() - start < timeout:
        pair, state = driver.execute_script(SHOWN_PAIR)
        now = time.perf_counter() - start
        if visible is None and pair is not None and pair != before:
            visible = now
        if visible is not None and state not in ("running", "initial"):
            return pair, visible, now
        time.sleep(0.01)
    raise AssertionError(f"{key!r}: no next pair after {timeout} s (still pair {before})")


def test_fixed_keys_decide_and_show_the_next_pair_in_time(seeded_url, app_feature_cache, tmp_path):
    proc, url = start_streamlit(app_env(seeded_url, app_feature_cache, tmp_path), tmp_path / "streamlit.log")
    browser = new_browser(tmp_path / "chrome-profile", tmp_path / "downloads")
    try:
        browser.get(url)
        wait_for_text(browser, "pairs shown")
        wait_for(browser, 'input[aria-label="Your name"]').send_keys(REVIEWER + "\n")
        wait_idle(browser)
        open_page(browser, "review")
        wait_for_text(browser, f"reviewing as {REVIEWER}")
        wait_idle(browser)
        # a label's key: the button that shows "B · <label>" records that label, on whichever pair
        label_b = browser.find_element("xpath", "//button[.//p[starts-with(normalize-space(.), 'B ·')]]").text
        label_b = key_button_label(label_b)
        first, _ = browser.execute_script(SHOWN_PAIR)
        timings = []
        for key in ("b", "s", "x", "a", "s", "b", "s", "a"):
            shown, _ = browser.execute_script(SHOWN_PAIR)
            pair, visible, idle = timed_press(browser, key)
            timings.append({"key": key, "visible_s": round(visible, 3), "idle_s": round(idle, 3)})
            assert pair != shown
        decided = rows(seeded_url)
        assert decided[0][:3] == (first, "corrected", label_b), decided[0]
        assert [r[1] for r in decided][1:4] == ["skipped", "rejected", "accepted"] or len(decided) == 8
        assert "Pair " in body(browser)
    finally:
        browser.quit()
        stop_streamlit(proc)
    visible = [t["visible_s"] for t in timings]
    idle = [t["idle_s"] for t in timings]
    summary = {
        "presses": timings,
        "visible_median_s": statistics.median(visible),
        "visible_range_s": [min(visible), max(visible)],
        "idle_median_s": statistics.median(idle),
        "idle_range_s": [min(idle), max(idle)],
        "load_average": os.getloadavg(),
    }
    print(json.dumps(summary, indent=1))
    if os.environ.get("MRELENS_BROWSER_TIMINGS"):
        Path(os.environ["MRELENS_BROWSER_TIMINGS"]).write_text(json.dumps(summary, indent=1))
