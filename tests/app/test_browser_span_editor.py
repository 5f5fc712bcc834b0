"""Review's "Fix spans / add pair" in a real browser (headless Chromium, the helpers of test_browser.py): a reviewer
opens the span editor, fixes the shown pair's head (one click per word), adds a new pair to the same post, sees each in
effect in the post's highlight and in the store, and undoes both with U."""

from __future__ import annotations

import json

from db.annotations import current_state, pair_history
from db.models import EntityPair, Post
from db.schema import open_database
from tests.app.test_browser import (
    REVIEWER,
    app_env,
    new_browser,
    open_page,
    press,
    pytestmark,  # noqa: F401  (slow; skipped without Chromium)
    start_streamlit,
    stop_streamlit,
    wait_for,
    wait_for_text,
    wait_idle,
    widget,
)
from tests.app.test_browser_review_keys import SHOWN_PAIR

MARKS = """
return ['head', 'tail'].map(role => [...document.querySelectorAll(`.mre-post mark[title="${role}"]`)]
    .map(e => e.innerText));
"""


def shown(driver) -> int:
    return driver.execute_script(SHOWN_PAIR)[0]


def marks(driver) -> tuple[list[str], list[str]]:
    """The words the post's header highlights as head and as tail."""
    head, tail = driver.execute_script(MARKS)
    return head, tail


def click_words(driver, group: str, words: list[int]) -> None:
    """Click words of the pills `group` ("Head words" / "Tail words"; button i is word i), one run each."""
    for word in words:
        button = widget(driver, "stButtonGroup", group).find_elements("css selector", "button")[word]
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        button.click()
        wait_idle(driver)


def click(driver, label: str) -> None:
    button = driver.find_element("xpath", f"//button[.//p[normalize-space(.)={json.dumps(label)}]]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()
    wait_idle(driver)


def in_store(url: str, pair_id: int):
    """(pair row, its post's words, its current state), read afresh."""
    engine, sessions = open_database(url)
    with sessions() as s:
        pair = s.get(EntityPair, pair_id)
        tokens = list(s.get(Post, pair.post_id).tokens)
        state = current_state(pair_history(s, pair_id))
        s.expunge(pair)
    engine.dispose()
    return pair, tokens, state


def test_fix_a_head_add_a_pair_and_undo_in_a_real_browser(seeded_url, app_feature_cache, tmp_path):
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
        pair_id = shown(browser)
        pair, tokens, _ = in_store(seeded_url, pair_id)
        own_head = list(range(pair.head_start, pair.head_end))
        own_tail = list(range(pair.tail_start, pair.tail_end))
        assert marks(browser) == ([tokens[i] for i in own_head], [tokens[i] for i in own_tail])
        free = [i for i in range(len(tokens)) if i not in own_head and i not in own_tail]
        new_head, new_tail = free[0], free[-1]
        assert new_head != new_tail, tokens

        browser.find_element("xpath", "//label[.//p[normalize-space(.)='Fix spans / add pair']]").click()
        wait_idle(browser)
        click_words(browser, "Head words", [*own_head, new_head])  # unmark the head's words, mark another
        click(browser, "Fix this pair's spans")
        wait_for_text(browser, "spans fixed")
        _, _, state = in_store(seeded_url, pair_id)
        assert state.head is not None and state.head.pos == (new_head, new_head + 1) and state.tail is None
        assert marks(browser)[0] == [tokens[new_head]], "the header highlights the fixed head"

        # a new pair on the same post: the fixed head, another tail
        click_words(browser, "Tail words", [*own_tail, new_tail])
        click(browser, "Add as a new pair")
        wait_for_text(browser, "added to this post")
        added_id = shown(browser)
        assert added_id != pair_id
        added, _, added_state = in_store(seeded_url, added_id)
        assert added.added_by == REVIEWER and added.post_id == pair.post_id
        assert (added.head_start, added.tail_start) == (new_head, new_tail)
        assert added_state.status in ("corrected", "accepted")
        assert marks(browser) == ([tokens[new_head]], [tokens[new_tail]])

        press(browser, "u")  # takes back the added pair's label, then the head fix
        press(browser, "u")
        wait_for_text(browser, "last decision undone")
        _, _, state = in_store(seeded_url, pair_id)
        assert state.head is None and state.status == "unreviewed", state
        assert in_store(seeded_url, added_id)[2].status == "unreviewed"
        assert shown(browser) == pair_id
        assert marks(browser)[0] == [tokens[i] for i in own_head], "the pair's own head again"
    finally:
        browser.quit()
        stop_streamlit(proc)
