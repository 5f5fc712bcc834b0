"""The rationale's whole path in a real browser (Chromium, the helpers of test_browser.py), as issue 25's "done"
reads: a reviewer opens Review's evidence panel (closed until asked for), marks words (pills) and drags a box (a
Plotly box selection, with the mouse) on a post with an image, saves (A), undoes (U), marks words and a box again
and saves. Then the store's history holds the first decision's rationale, the undo, and the second decision's; every
export the Export page offers (app.services.exports, its own function) carries the rationale in effect, and a Label
Studio round trip (its export imported into a fresh store) brings it back.

A click on a word or a box dragged reruns only the evidence panel's fragment, never the page: the server's script
runs are logged by a probe (a sitecustomize on the server's PYTHONPATH that wraps the call running each script or
fragment run) and read around those interactions. Screenshots stay in the test's tmp folder."""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from db.models import Annotation, Dataset, EntityPair
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
PANEL = "Evidence (optional)"
RUN_PROBE = """
import os

if os.environ.get("MRELENS_TEST_RUN_LOG"):  # every script run of the server: "full" or "fragment"
    from streamlit.runtime.scriptrunner import script_runner as _runner

    _exec = _runner.exec_func_with_error_handling  # called once per run, those st.rerun() starts included

    def _logged(func, ctx):
        with open(os.environ["MRELENS_TEST_RUN_LOG"], "a") as fh:
            fh.write(("fragment" if ctx.fragment_ids_this_run else "full") + "\\n")
        return _exec(func, ctx)

    _runner.exec_func_with_error_handling = _logged
"""


def probed_env(env: dict, tmp_path: Path) -> tuple[dict, Path]:
    """The server's environment with the run probe on its PYTHONPATH; (env, the log it writes)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(RUN_PROBE)
    log = tmp_path / "runs.log"
    log.write_text("")
    path = str(probe) + (f":{env['PYTHONPATH']}" if env.get("PYTHONPATH") else "")
    return {**env, "PYTHONPATH": path, "MRELENS_TEST_RUN_LOG": str(log)}, log


def runs(log: Path) -> list[str]:
    return log.read_text().split()


def word_pills(driver, timeout: float = 30) -> list:
    """The evidence word pills, once drawn (the panel's fragment can still be drawing them after the script went
    idle on a loaded machine)."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.time() + timeout
    while True:
        try:
            for group in driver.find_elements("css selector", '[data-testid="stButtonGroup"]'):
                if WORDS in group.get_attribute("innerText"):
                    return group.find_elements("css selector", "button")
        except StaleElementReferenceException:
            pass  # redrawn while read: look again
        if time.time() > deadline:
            raise AssertionError(f"no evidence words on the page after {timeout} s")
        time.sleep(0.2)


def is_marked(button) -> bool:
    """A selected pill (Streamlit's toggle buttons say so through ARIA, older releases through the test id)."""
    return button.get_attribute("data-testid") == "stBaseButton-pillsActive" or any(
        button.get_attribute(name) == "true"
        for name in ("aria-pressed", "aria-checked", "aria-selected", "data-selected")
    )


def marked_words(driver) -> list[str]:
    return [b.text for b in word_pills(driver) if is_marked(b)]


def evidence_plot(driver):
    return driver.execute_script(
        "return [...document.querySelectorAll('.js-plotly-plot')].find(el => el.layout && "
        "el.layout.dragmode === 'select')"
    )


def open_panel(driver) -> None:
    summary = next(
        el
        for el in driver.find_elements("css selector", '[data-testid="stExpander"] summary')
        if PANEL in el.text
    )
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", summary)
    summary.click()
    wait_idle(driver)


def drag_box(driver, corner: float) -> None:
    """Drag a box from `corner` (a fraction of the image from its centre towards the upper left), as a mouse does
    (Plotly's select drag layer); waits until the page says the box is marked."""
    from selenium.webdriver.common.action_chains import ActionChains

    plot = evidence_plot(driver)
    assert plot is not None, "no box-selectable image on the page"
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", plot)
    drag = plot.find_element("css selector", ".nsewdrag")
    width, height = drag.size["width"], drag.size["height"]
    chain = ActionChains(driver).move_to_element_with_offset(
        drag, -int(width * corner), -int(height * corner)
    )
    chain.click_and_hold()
    for _ in range(5):
        chain.move_by_offset(width // 15, height // 15)
    chain.release().perform()
    wait_idle(driver)
    wait_for_text(driver, "Evidence box: x", timeout=30)


def test_a_reviewer_marks_words_and_a_box_saves_undoes_marks_again_and_every_export_carries_it(
    seeded_url, app_feature_cache, tmp_path
):
    env, run_log = probed_env(app_env(seeded_url, app_feature_cache, tmp_path), tmp_path)
    proc, url = start_streamlit(env, tmp_path / "streamlit.log")
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
        wait_for_text(browser, PANEL, timeout=300)  # the first Review loads the model
        wait_idle(browser)
        pair = int(re.search(r"Pair (\d+) ·", body(browser)).group(1))
        assert evidence_plot(browser) is None and WORDS not in body(browser), "closed until asked for"
        open_panel(browser)
        before = len(runs(run_log))
        pills = word_pills(browser)
        first, second = pills[0].text, pills[1].text
        pills[0].click()
        wait_idle(browser)
        word_pills(browser)[1].click()
        wait_idle(browser)
        assert marked_words(browser) == [first, second]
        drag_box(browser, 1 / 3)
        marking = runs(run_log)[before:]
        assert marking and "full" not in marking, f"marking reran the whole page: {marking}"
        browser.save_screenshot(str(shots / "marked.png"))
        press(browser, "a")
        wait_for_text(browser, f"Pair {pair}: accepted")
        press(browser, "u")
        wait_for_text(browser, f"Pair {pair}: last decision undone")
        assert f"Pair {pair} ·" in body(browser)
        assert marked_words(browser) == [], "the undone decision's marks are gone"
        word_pills(browser)[2].click()
        wait_idle(browser)
        drag_box(browser, 1 / 4)
        browser.save_screenshot(str(shots / "marked_again.png"))
        press(browser, "a")
        wait_for_text(browser, f"Pair {pair}: accepted")
    finally:
        browser.save_screenshot(str(shots / "last.png"))
        browser.quit()
        stop_streamlit(proc)
    engine, sessions = open_database(seeded_url)
    try:
        with sessions() as session:
            history = session.execute(
                select(Annotation.revision, Annotation.status, RationaleRow.tokens, RationaleRow.box_x0)
                .outerjoin(RationaleRow, RationaleRow.annotation_id == Annotation.id)
                .where(Annotation.pair_id == pair)
                .order_by(Annotation.revision)
            ).all()
        (r1, s1, words1, box1), (r2, s2, words2, _), (r3, s3, words3, box3) = history
        assert (r1, s1, r2, s2, r3, s3) == (1, "accepted", 2, "unreviewed", 3, "accepted")
        assert len(words1) == 2 and box1 is not None, "the words and the box saved with the first decision"
        assert words2 is None, "the undo restores the state before, which had no rationale"
        assert len(words3) == 1 and box3 is not None, "marked again: a word and a box"
        check_every_export(sessions, pair, tmp_path)
    finally:
        engine.dispose()


def check_every_export(sessions, pair: int, tmp_path: Path) -> None:
    """Each format of the Export page carries the pair's rationale in effect (the last decision's); the MNRE layout
    has no place for one. The Label Studio tasks imported into a fresh store give the same rationale back."""
    from app.services.exports import DOWNLOADS, EXPORT_FORMATS, ExportFilter, export_files
    from db.annotations import current_rationales
    from db.label_studio import import_label_studio

    with sessions() as session:
        want = current_rationales(session, [pair])[pair]
    tokens, box, size = list(want.tokens), list(want.box), list(want.image_size)
    seen = set()
    for fmt in EXPORT_FORMATS:
        extension = DOWNLOADS[fmt][0]
        (name, data), *_ = export_files(sessions, fmt, f"walk.{extension}", ExportFilter()).files
        if fmt == "mnre":
            continue  # DeepKE's text layout: no field for evidence
        members = zipfile.ZipFile(io.BytesIO(data)) if name.endswith(".zip") else None
        if fmt in ("jsonl", "csv", "parquet", "hf-dataset"):
            if fmt == "jsonl":
                frame = pd.read_json(io.BytesIO(data), lines=True)
            elif fmt == "csv":
                frame = pd.read_csv(io.BytesIO(data))
            elif members is None:
                frame = pd.read_parquet(io.BytesIO(data))
            else:
                parts = [n for n in members.namelist() if n.endswith(".parquet")]
                frame = pd.concat(pd.read_parquet(io.BytesIO(members.read(n))) for n in parts)
            row = frame[frame["pair_id"] == pair].iloc[0]

            def value(cell):
                return json.loads(cell) if isinstance(cell, str) else [float(v) for v in cell]

            assert [int(v) for v in value(row["rationale_tokens"])] == tokens, fmt
            assert [float(v) for v in value(row["rationale_box"])] == box, fmt
            assert row["rationale_source"] == "reviewer", fmt
        elif fmt == "eraser":
            lines = [
                json.loads(line)
                for n in members.namelist()
                if n.endswith(".jsonl")
                for line in members.read(n).decode().splitlines()
            ]
            mine = next(x for x in lines if x["annotation_id"].endswith(f"/{pair}"))
            marked = sorted(i for e in mine["evidences"][0] for i in range(e["start_token"], e["end_token"]))
            assert marked == tokens and mine["image_evidence"]["box"] == box, fmt
        else:  # Label Studio: evidence spans and a percent box, read back by a fresh store
            tasks = json.loads(data)
            task = next(t for t in tasks if t["data"]["mrelens"]["pair_id"] == pair)
            kinds = {r["type"] for r in task["annotations"][0]["result"]}
            assert {"labels", "rectanglelabels"} <= kinds, kinds
            (tmp_path / "tasks.json").write_bytes(data)
            fresh_engine, fresh = open_database(f"sqlite:///{tmp_path / 'fresh.db'}")
            try:
                with fresh.begin() as session:
                    assert import_label_studio(session, tmp_path / "tasks.json").rationales_added >= 1
                meta = task["data"]["mrelens"]
                with fresh() as session:
                    fresh_pair = session.scalars(
                        select(EntityPair.id)
                        .join(Dataset, Dataset.id == EntityPair.dataset_id)
                        .where(EntityPair.source_key == meta["source_key"], Dataset.name == meta["dataset"])
                    ).one()
                    back = current_rationales(session, [fresh_pair])[fresh_pair]
                assert (list(back.tokens), list(back.box), list(back.image_size)) == (tokens, box, size)
            finally:
                fresh_engine.dispose()
        seen.add(fmt)
    assert seen == set(EXPORT_FORMATS) - {"mnre"}
