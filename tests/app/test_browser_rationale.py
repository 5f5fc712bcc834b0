"""A reviewer in Chromium marks evidence words (pills) and an evidence box (a Plotly box selection dragged with the
mouse) on a post with an image, saves (A), undoes (U), marks again and saves: the store's history holds the
first decision's rationale, the undo, and the second decision's. Screenshots stay in the test's tmp folder."""

from __future__ import annotations

import re

from selenium.common.exceptions import TimeoutException
from sqlalchemy import select

from db.models import Annotation
from db.models import Rationale as RationaleRow
from db.schema import open_database

# the browser tests' marks (slow; skipped without Debian's chromium + chromium-driver)
from tests.app.test_browser import (
    REVIEWER,
    app_env,
    body,
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

WORDS = "Evidence words (click to mark, click again to unmark; the entities are not evidence)"


def word_pills(driver) -> list:
    for group in driver.find_elements("css selector", '[data-testid="stButtonGroup"]'):
        if WORDS in group.get_attribute("innerText"):
            return group.find_elements("css selector", "button")
    raise AssertionError("no evidence words on the page")


def is_marked(button) -> bool:
    """A selected pill (Streamlit's toggle buttons say so through ARIA, older releases through the test id)."""
    return button.get_attribute("data-testid") == "stBaseButton-pillsActive" or any(
        button.get_attribute(name) == "true"
        for name in ("aria-pressed", "aria-checked", "aria-selected", "data-selected")
    )


def marked_words(driver) -> list[str]:
    return [b.text for b in word_pills(driver) if is_marked(b)]


def drag_box(driver) -> None:
    """Drag a box over the evidence image's upper-left quarter, as a mouse does (Plotly's select drag layer)."""
    from selenium.webdriver.common.action_chains import ActionChains

    plot = driver.execute_script(
        "return [...document.querySelectorAll('.js-plotly-plot')].find(el => el.layout && "
        "el.layout.dragmode === 'select')"
    )
    assert plot is not None, "no box-selectable image on the page"
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", plot)
    drag = plot.find_element("css selector", ".nsewdrag")
    width, height = drag.size["width"], drag.size["height"]
    chain = ActionChains(driver).move_to_element_with_offset(drag, -width // 3, -height // 3).click_and_hold()
    for _ in range(5):
        chain.move_by_offset(width // 15, height // 15)
    chain.release().perform()
    wait_idle(driver)


def test_a_reviewer_marks_words_and_a_box_saves_undoes_and_marks_again(
    seeded_url, app_feature_cache, tmp_path
):
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
        open_page(browser, "review")
        wait_for_text(browser, "Evidence (optional)", timeout=300)  # the first Review loads the model
        pair = int(re.search(r"Pair (\d+) ·", body(browser)).group(1))
        pills = word_pills(browser)
        first, second = pills[0].text, pills[1].text
        pills[0].click()
        wait_idle(browser)
        word_pills(browser)[1].click()
        wait_idle(browser)
        assert marked_words(browser) == [first, second]
        drag_box(browser)
        try:  # checked after the rest of the walk, so a failed drag still lets the words be tested
            wait_for_text(browser, "Evidence box: x", timeout=20)
            box_drawn = True
        except TimeoutException:
            box_drawn = False
        browser.save_screenshot(str(shots / "marked.png"))
        press(browser, "a")
        wait_for_text(browser, f"Pair {pair}: accepted")
        press(browser, "u")
        wait_for_text(browser, f"Pair {pair}: last decision undone")
        assert f"Pair {pair} ·" in body(browser)
        assert marked_words(browser) == [], "the undone decision's marks are gone"
        word_pills(browser)[2].click()
        wait_idle(browser)
        browser.save_screenshot(str(shots / "marked_again.png"))
        press(browser, "a")
        wait_for_text(browser, f"Pair {pair}: accepted")
    finally:
        browser.save_screenshot(str(shots / "last.png"))
        browser.quit()
        stop_streamlit(proc)
    engine, sessions = open_database(seeded_url)
    with sessions() as session:
        history = session.execute(
            select(Annotation.revision, Annotation.status, RationaleRow.tokens, RationaleRow.box_x0)
            .outerjoin(RationaleRow, RationaleRow.annotation_id == Annotation.id)
            .where(Annotation.pair_id == pair)
            .order_by(Annotation.revision)
        ).all()
    engine.dispose()
    (r1, s1, words1, box1), (r2, s2, words2, _), (r3, s3, words3, box3) = history
    assert (r1, s1, r2, s2, r3, s3) == (1, "accepted", 2, "unreviewed", 3, "accepted")
    assert len(words1) == 2, "the words saved with the first decision"
    assert words2 is None, "the undo restores the state before, which had no rationale"
    assert len(words3) == 1 and box3 is None
    assert box_drawn and box1 is not None, "the box dragged with the mouse saved with the first decision"
