"""What only a browser shows: at 1600x1100 nothing on the Queue, Models and Jobs pages runs past the right edge.
The Queue's table (its status column included) and the Models table need no horizontal scrolling and end inside
the window; the Jobs page's logs (a running job's tail and a finished job's whole log, with lines longer than any
column) wrap instead of running off, and its All jobs table (a training's outcome in it) needs no sideways
scrolling. Screenshots stay in the test's tmp folder."""

from __future__ import annotations

from db.jobs import create_job, finish_job, report_progress, start_job
from db.schema import open_database

# the browser tests' marks (slow; skipped without Debian's chromium + chromium-driver)
from tests.app.test_browser import (
    REVIEWER,
    app_env,
    body,
    new_browser,
    open_page,
    pytestmark,  # noqa: F401
    start_streamlit,
    stop_streamlit,
    wait_for,
    wait_for_text,
    wait_idle,
)

LONG_LINE = "epoch 1/3 step 120/400 loss 0.4123 " + "x" * 400 + " end of the line"

# (right edge, window width, scroll width, client width) of every element matching a selector
EDGES = """
return [...document.querySelectorAll(arguments[0])].map(e => {
    const r = e.getBoundingClientRect();
    return [r.right, window.innerWidth, e.scrollWidth, e.clientWidth];
});
"""


def add_jobs_with_long_logs(url: str) -> None:
    """A running job (on another machine, so no worker here fails it) and a finished one, both logging long lines."""
    engine, sessions = open_database(url)
    with sessions.begin() as session:
        running = create_job(session, "score", REVIEWER, {}).id
        start_job(session, running, worker="elsewhere:1")
        report_progress(session, running, {"fraction": 0.3}, [LONG_LINE, "short line"])
        done = create_job(session, "score", REVIEWER, {}).id
        start_job(session, done, worker="elsewhere:1")
        report_progress(session, done, {"fraction": 1.0}, [LONG_LINE])
        # a training's outcome, as long as the ones the runners write: it pushed the table past the right edge
        outcome = {
            "model_version": "ifaformer-objects-ed47bc0bbbab",
            "val_f1": 0.975,
            "activated": False,
            "previous_active": "ifaformer-objects-0d7a8cb5b339",
            "previous_val_f1": 1.0,
            "score_job": 3,
        }
        finish_job(session, done, "succeeded", outcome)
    engine.dispose()


def assert_fits(browser, selector: str, what: str, count: int = 1, scrolls: bool = True) -> None:
    """Each element of `selector` ends inside the window and, when `scrolls` (a scrolling box: a table's grid, a
    code block), holds no content wider than itself."""
    edges = browser.execute_script(EDGES, selector)
    assert len(edges) >= count, f"{what}: {len(edges)} of {selector!r} on the page"
    for right, window, scroll, client in edges:
        assert right <= window + 1, f"{what} ends at {right:.0f} px in a {window} px window"
        assert not scrolls or scroll <= client + 2, f"{what} scrolls sideways: {scroll} px in {client} px"


def test_nothing_runs_past_the_right_edge_at_1600_px(seeded_url, app_feature_cache, tmp_path):
    add_jobs_with_long_logs(seeded_url)
    proc, url = start_streamlit(app_env(seeded_url, app_feature_cache, tmp_path), tmp_path / "streamlit.log")
    browser = new_browser(tmp_path / "chrome-profile", tmp_path / "downloads")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nscreenshots: {shots}")
    try:
        assert browser.execute_script("return [window.outerWidth, window.outerHeight]") == [1600, 1100]
        browser.get(url)
        wait_for_text(browser, "pairs shown")
        wait_for(browser, 'input[aria-label="Your name"]').send_keys(REVIEWER + "\n")
        wait_idle(browser)
        wait_for(browser, '[data-testid="stDataFrame"] .dvn-scroller')
        browser.save_screenshot(str(shots / "queue.png"))
        assert_fits(browser, '[data-testid="stDataFrame"]', "the queue table", scrolls=False)
        assert_fits(browser, '[data-testid="stDataFrame"] .dvn-scroller', "the queue table's grid")

        open_page(browser, "models")
        wait_for_text(browser, "Retrain on the curated labels", timeout=120)
        wait_idle(browser)
        browser.save_screenshot(str(shots / "models.png"))
        # the versions table is the page's first: its last column ("created") must be inside the window
        assert_fits(browser, '[data-testid="stDataFrame"]', "the models table", scrolls=False)
        assert_fits(browser, '[data-testid="stDataFrame"] .dvn-scroller', "the models table's grid")

        open_page(browser, "jobs")
        wait_for_text(browser, "All jobs")
        wait_for(browser, '[data-testid="stCode"] pre')
        wait_idle(browser)
        browser.save_screenshot(str(shots / "jobs.png"))
        # the running job's log tail and the finished job's log (the details of the newest finished job)
        assert_fits(browser, '[data-testid="stCode"] pre', "a job's log", count=2)
        assert_fits(browser, '[data-testid="stDataFrame"] .dvn-scroller', "the All jobs table's grid")
        assert "not activated · active before ifaformer-objects-0d7a8cb5b339" in body(browser), "the outcome"
        assert_fits(browser, '[data-testid="stMain"]', "the Jobs page")
    finally:
        browser.save_screenshot(str(shots / "last.png"))
        browser.quit()
        stop_streamlit(proc)
