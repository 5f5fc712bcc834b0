"""benchmarks/bench_browser.py reads Review's pair line as the page draws it, and its table says which floors are met."""

from __future__ import annotations

from benchmarks.bench_browser import FLOORS, PAIR_LINE, report, summary, verdict, write_section
from tests.app.conftest import no_exceptions

META = {
    "date": "2026-01-01",
    "command": "python benchmarks/bench_browser.py",
    "presses": 3,
    "read": 1.0,
    "seed": 0,
    "minutes": 4.0,
    "machine": "cpu",
    "cpus": 2,
    "pairs": 60,
    "model": "`m`",
    "load_start": "0.1 / 0.1 / 0.1",
    "load_end": "0.2 / 0.1 / 0.1",
    "shared": "",
    "jobs": [1],
    "while_training": "3 of 3",
    "job_status_end": "running",
    "quick": True,
}


def test_the_pair_line_the_benchmark_waits_for_is_the_one_review_draws(make_app, seeded_url):
    at = make_app(seeded_url, "views/review.py")
    no_exceptions(at)
    review = at.session_state["review"]
    at.button(key="review_skip").click().run()
    line = next(c.value for c in at.caption if c.value.startswith("Pair "))
    found = PAIR_LINE.match(line)
    assert found, line
    assert (int(found[1]), int(found[2]) - 1) == (review.queue[1], 1)


def test_a_floor_is_met_when_the_median_is_within_it_and_the_p95_within_twice_it():
    assert verdict(summary([(0.2, 1.0)] * 19 + [(0.5, 1.0)]), 0.3) == "pass"
    assert verdict(summary([(0.31, 1.0)] * 20), 0.3) == "**fail** (median)"
    assert verdict(summary([(0.2, 1.0)] * 18 + [(0.7, 1.0)] * 2), 0.3) == "**fail** (p95)"


def test_the_table_has_a_verdict_per_floor_and_replaces_only_its_own_section(tmp_path):
    results = {"idle": {"keyboard decision": [(0.1, 0.5)] * 3, "page switch": [(0.9, 1.0)] * 3}}
    text = report(results, META)
    rows = [line for line in text.splitlines() if line.startswith("| keyboard") or line.startswith("| page")]
    assert rows[0].endswith("| pass |") and rows[1].endswith("| **fail** (median) |")
    assert "1 of 2 floors met." in text
    assert ("keyboard decision", "training") in FLOORS
    out = tmp_path / "app.md"
    out.write_text("# Benchmarks\n\n## Browser: interaction latency\n\nold\n\n## AppTest\n\nkept\n")
    write_section(out, text)
    written = out.read_text()
    assert (
        "old" not in written and "kept" in written and written.count("## Browser: interaction latency") == 1
    )
