"""Two reviewers at once in real browsers (headless Chromium, the helpers of test_browser.py): one server, two
browser sessions with their own typed names, both open Review without a Queue pick, so each is handed pairs under
leases (app.ui.review_leases): they see different pairs, and after one decides, neither is handed the pair the other
is looking at."""

from __future__ import annotations

from tests.app.test_browser import (
    app_env,
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
from tests.app.test_browser_review_keys import SHOWN_PAIR, timed_press


def open_review_as(driver, url: str, name: str) -> int:
    """A fresh session (no ?pair= in the URL): type the name on the Queue page, open Review; the pair shown."""
    driver.get(url)
    wait_for_text(driver, "pairs shown")
    wait_for(driver, 'input[aria-label="Your name"]').send_keys(name + "\n")
    wait_idle(driver)
    open_page(driver, "review")
    wait_for_text(driver, f"reviewing as {name}")
    wait_idle(driver)
    pair, _ = driver.execute_script(SHOWN_PAIR)
    assert pair is not None, f"{name}: no pair on Review"
    return pair


def test_two_reviewers_in_two_browsers_are_handed_different_pairs(seeded_url, app_feature_cache, tmp_path):
    proc, url = start_streamlit(app_env(seeded_url, app_feature_cache, tmp_path), tmp_path / "streamlit.log")
    ann = new_browser(tmp_path / "ann-profile", tmp_path / "ann-downloads")
    bob = None
    try:
        bob = new_browser(tmp_path / "bob-profile", tmp_path / "bob-downloads")
        ann_first = open_review_as(ann, url, "Ann Browser")
        bob_first = open_review_as(bob, url, "Bob Browser")
        assert ann_first != bob_first  # overlap 1: Ann's lease keeps her pair from Bob
        ann_next, _, _ = timed_press(ann, "a")  # Ann accepts; her lease keeps the slot, she gets a new pair
        assert ann_next not in (ann_first, bob_first)
        bob_next, _, _ = timed_press(
            bob, "x"
        )  # Bob rejects his; his next is neither Ann's decided nor current pair
        assert bob_next not in (ann_first, ann_next, bob_first)
        decided = [(pair, status, who) for pair, status, _label, who in rows(seeded_url)]
        assert decided == [(ann_first, "accepted", "Ann Browser"), (bob_first, "rejected", "Bob Browser")]
    finally:
        ann.quit()
        if bob is not None:
            bob.quit()
        stop_streamlit(proc)
