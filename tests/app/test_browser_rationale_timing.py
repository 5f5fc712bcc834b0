"""What Review's evidence panel costs a reviewer's key press, in a real browser (Chromium, the helpers of
test_browser.py): the time from a key press to the next pair visible (its "Pair N" line) and to the script idle, with
the panel absent (taken out of the page by a probe), present but closed (the default), and open (words and image
drawn on every pair). The three run interleaved, in rounds, on one warm server and one browser session, so a load
that drifts on the shared machine reaches all three alike; the figures and their ratios are printed (and written as
JSON to $MRELENS_BROWSER_TIMINGS when set: README's rationale section quotes a run with 5 rounds of 4 presses, set
through $MRELENS_BROWSER_TIMING_ROUNDS and $MRELENS_BROWSER_TIMING_PRESSES; by default 1 round of 1; `pytest -m benchmark` runs it, the default suite leaves it out).

The probe is a sitecustomize on the server's PYTHONPATH: at the server's first script run it wraps
app.ui.rationale_capture.evidence_panel so that it draws nothing while a flag file exists."""

from __future__ import annotations

import json
import os
import statistics
from itertools import cycle
from pathlib import Path

import pytest

from tests.app.test_browser import (
    REVIEWER,
    app_env,
    body,
    click_button,
    new_browser,
    start_streamlit,
    stop_streamlit,
    wait_for,
    wait_for_text,
    wait_idle,
)
from tests.app.test_browser import (
    pytestmark as browser_marks,
)
from tests.app.test_browser_rationale import PANEL, evidence_plot, open_panel
from tests.app.test_browser_review_keys import timed_press

# a benchmark: the default suite leaves it out (pytest -m benchmark runs it)
pytestmark = [*browser_marks, pytest.mark.benchmark]

# One short round by default (the three states render); README's figures come from
# MRELENS_BROWSER_TIMING_ROUNDS=5 MRELENS_BROWSER_TIMING_PRESSES=4 (about 2 minutes on 2 cores).
ROUNDS = int(os.environ.get("MRELENS_BROWSER_TIMING_ROUNDS", "1"))
PRESSES = int(
    os.environ.get("MRELENS_BROWSER_TIMING_PRESSES", "1")
)  # timed presses per block, after one untimed
PROBE = """
import os

if os.environ.get("MRELENS_TEST_NO_PANEL_FLAG"):
    from streamlit.runtime.scriptrunner import script_runner as _runner

    _exec = _runner.exec_func_with_error_handling

    def _patched(func, ctx):
        import app.ui.rationale_capture as capture

        if not getattr(capture, "_timing_probe", False):
            real = capture.evidence_panel

            def evidence_panel(*args, **kwargs):
                if os.path.exists(os.environ["MRELENS_TEST_NO_PANEL_FLAG"]):
                    return None
                return real(*args, **kwargs)

            capture.evidence_panel, capture._timing_probe = evidence_panel, True
        return _exec(func, ctx)

    _runner.exec_func_with_error_handling = _patched
"""


def test_key_press_to_next_pair_with_the_evidence_panel_absent_closed_and_open(
    seeded_url, app_feature_cache, tmp_path
):
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(PROBE)
    flag = tmp_path / "no-panel"
    env = app_env(seeded_url, app_feature_cache, tmp_path)
    env = {
        **env,
        "PYTHONPATH": str(probe) + (f":{env['PYTHONPATH']}" if env.get("PYTHONPATH") else ""),
        "MRELENS_TEST_NO_PANEL_FLAG": str(flag),
    }
    proc, url = start_streamlit(env, tmp_path / "streamlit.log")
    browser = new_browser(tmp_path / "chrome-profile", tmp_path / "downloads")
    timings: dict[str, list[dict]] = {"absent": [], "closed": [], "open": []}
    load_before = os.getloadavg()
    keys = cycle("sp")  # skip (a decision, then the next pair) and previous: the queue never runs out
    try:
        browser.get(url)
        wait_for_text(browser, "pairs shown")
        wait_for(browser, 'input[aria-label="Your name"]').send_keys(REVIEWER + "\n")
        wait_idle(browser)
        click_button(browser, "Review these in this order")  # the Queue's pairs, walked in its order
        wait_for_text(browser, f"reviewing as {REVIEWER}", timeout=300)
        wait_idle(browser)
        for _ in range(ROUNDS):
            for block in timings:
                if block == "absent":
                    flag.write_text("")
                else:
                    flag.unlink(missing_ok=True)
                timed_press(browser, next(keys))  # untimed: the page now draws this block's panel
                if block == "open":
                    open_panel(browser)
                shown = body(browser)
                if block == "absent":
                    assert PANEL not in shown
                elif block == "closed":
                    assert PANEL in shown and evidence_plot(browser) is None
                else:
                    assert evidence_plot(browser) is not None
                for _ in range(PRESSES):
                    key = next(keys)
                    _, visible, idle = timed_press(browser, key)
                    timings[block].append(
                        {"key": key, "visible_s": round(visible, 3), "idle_s": round(idle, 3)}
                    )
    finally:
        browser.save_screenshot(str(tmp_path / "last.png"))
        print(f"\nlast screen: {tmp_path / 'last.png'}; timings so far: {json.dumps(timings)}")
        browser.quit()
        stop_streamlit(proc)
    summary = {
        block: {
            "visible_median_s": statistics.median(t["visible_s"] for t in rows),
            "idle_median_s": statistics.median(t["idle_s"] for t in rows),
            "presses": len(rows),
        }
        for block, rows in timings.items()
    }
    for block in ("closed", "open"):
        summary[f"{block}/absent"] = {
            what: round(summary[block][f"{what}_median_s"] / summary["absent"][f"{what}_median_s"], 2)
            for what in ("visible", "idle")
        }
    summary["load_average"] = {"before": load_before, "after": os.getloadavg()}
    summary["presses"] = timings
    print(json.dumps({k: v for k, v in summary.items() if k != "presses"}, indent=1))
    if os.environ.get("MRELENS_BROWSER_TIMINGS"):
        Path(os.environ["MRELENS_BROWSER_TIMINGS"]).write_text(json.dumps(summary, indent=1))
