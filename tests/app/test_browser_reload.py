"""A reload in a real browser (headless Chromium, the helpers of test_browser.py): the reviewer picks a sort on the
Queue, decides a pair on Review, reloads the page, and finds the same pair in the same queue, their typed name
kept (a cookie of this browser, never the URL), and U still undoes their decision (from the store's history)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from tests.app.test_browser import (
    REVIEWER,
    app_env,
    choose,
    click_button,
    new_browser,
    pytestmark,  # noqa: F401  (slow; skipped without Chromium)
    rows,
    start_streamlit,
    stop_streamlit,
    wait_for,
    wait_for_text,
    wait_idle,
)
from tests.app.test_browser_review_keys import SHOWN_PAIR, timed_press


def test_a_reload_keeps_the_pair_the_filter_and_the_name_and_undo_still_works(
    seeded_url, app_feature_cache, tmp_path
):
    proc, url = start_streamlit(app_env(seeded_url, app_feature_cache, tmp_path), tmp_path / "streamlit.log")
    browser = new_browser(tmp_path / "chrome-profile", tmp_path / "downloads")
    try:
        browser.get(url)
        wait_for_text(browser, "pairs shown")
        wait_for(browser, 'input[aria-label="Your name"]').send_keys(REVIEWER + "\n")
        wait_idle(browser)
        choose(browser, "Sort", "source order")
        wait_idle(browser)
        assert parse_qs(urlparse(browser.current_url).query)["sort"] == ["source_order"]
        click_button(browser, "Review these in this order")
        wait_for_text(browser, f"reviewing as {REVIEWER}")
        wait_idle(browser)
        decided, _ = browser.execute_script(SHOWN_PAIR)
        after, _, _ = timed_press(browser, "x")
        wait_idle(browser)
        query = parse_qs(urlparse(browser.current_url).query)
        assert query["pair"] == [str(after)] and query["sort"] == ["source_order"], query
        assert REVIEWER not in browser.current_url

        browser.refresh()  # a new browser session on the same URL
        wait_for_text(browser, f"reviewing as {REVIEWER}")
        wait_idle(browser)
        shown, _ = browser.execute_script(SHOWN_PAIR)
        assert shown == after, "the reload opens the same pair"
        assert parse_qs(urlparse(browser.current_url).query)["sort"] == ["source_order"]

        undone, _, _ = timed_press(browser, "u")
        wait_idle(browser)
        assert undone == decided, "undo after the reload takes back the decision made before it"
    finally:
        browser.quit()
        stop_streamlit(proc)
    history = [row for row in rows(seeded_url) if row[0] == decided]
    assert [row[1] for row in history] == ["rejected", "unreviewed"], history
