"""The label-error audit in a real browser: a curator opens the Label errors page, starts reviewing the suspects,
and decides them with the keyboard only (T takes the suggested label, K keeps gold); the store records both as
audit decisions and the page's counts follow. Screenshots stay in the test's tmp folder."""

from __future__ import annotations

from sqlalchemy import select

from db.models import Annotation
from db.schema import open_database

# the browser tests' marks (slow; skipped without Debian's chromium + chromium-driver)
from tests.app.test_browser import (
    REVIEWER,
    app_env,
    body,
    click_button,
    new_browser,
    open_page,
    press,
    pytestmark,  # noqa: F401
    start_streamlit,
    stop_streamlit,
    wait_for,
    wait_for_text,
    wait_idle,
)
from tests.app.test_label_errors_pages import store_run


def test_a_curator_audits_the_suspects_with_the_keyboard(seeded_url, app_feature_cache, tmp_path):
    rows = store_run(seeded_url)
    proc, url = start_streamlit(app_env(seeded_url, app_feature_cache, tmp_path), tmp_path / "streamlit.log")
    browser = new_browser(tmp_path / "chrome-profile", tmp_path / "downloads")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nscreenshots: {shots}")
    try:
        browser.get(url)
        wait_for_text(browser, "pairs shown")
        wait_for(browser, 'input[aria-label="Your name"]').send_keys(REVIEWER + "\n")
        wait_idle(browser)
        open_page(browser, "label_errors")
        wait_for_text(browser, "gold labels changed")
        browser.save_screenshot(str(shots / "label_errors.png"))
        assert f"0 of {len(rows)}" in body(browser)
        click_button(browser, f"Review the {len(rows)} unreviewed suspects (audit)")
        wait_idle(browser)
        first, second = rows[0], rows[1]
        # Review's first visit loads the model in the server: slow on a loaded 2-core machine
        wait_for_text(browser, f"gold says {first['given_label']}", timeout=300)
        wait_for_text(browser, "T take the suggested label")
        assert f"says {first['suggested_label']}" in body(browser)
        browser.save_screenshot(str(shots / "audit.png"))
        press(browser, "t")
        wait_for_text(browser, f"Pair {first['pair_id']}: corrected as {first['suggested_label']}")
        wait_for_text(browser, f"gold says {second['given_label']}")
        press(browser, "k")
        wait_for_text(browser, f"Pair {second['pair_id']}: accepted as {second['given_label']}")
        browser.save_screenshot(str(shots / "after_keys.png"))
        open_page(browser, "label_errors")
        wait_for_text(browser, f"2 of {len(rows)}")
    finally:
        browser.save_screenshot(str(shots / "last.png"))
        browser.quit()
        stop_streamlit(proc)
    engine, sessions = open_database(seeded_url)
    with sessions() as session:
        saved = session.execute(
            select(Annotation.pair_id, Annotation.status, Annotation.label, Annotation.origin)
        )
        assert [tuple(row) for row in saved] == [
            (first["pair_id"], "corrected", first["suggested_label"], "audit"),
            (second["pair_id"], "accepted", second["given_label"], "audit"),
        ]
    engine.dispose()
