"""benchmarks/bench_explain.py --only bundle: the whole-bundle row is replaced in place, its ratios taken against
the forward pass of the same run, and a table without exactly one such row is refused."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_explain.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_explain", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TABLE = """| step | wall s | ratio to one forward (wall) | CPU s | ratio (CPU) | target |
|---|---:|---:|---:|---:|---|
| image reliance, k = 5 | 0.170 | 4 | 0.170 | 4 |  |
| whole bundle (explain_post: encode, all of the above but IG visual, k = 5) | 4.135 | 101 | 4.088 | 101 | < 5.0 s: wall met, CPU met |

Bundle step times (last run): encode 0.002 s, predict 0.041 s.
"""


def test_only_the_bundle_row_changes_with_ratios_to_this_runs_forward(bench):
    text = bench.bundle_only(TABLE, (3.0, 2.0, 1.0), 0.050, 0.040, 2.5, 2.0, {"encode": 0.01, "total": 2.5})
    lines = text.splitlines()
    assert lines[2] == TABLE.splitlines()[2], "the other rows stay as measured"
    (row,) = [line for line in lines if line.startswith("| whole bundle")]
    assert "LayerIG 16 steps" in row and "| 2.500 | 50 | 2.000 | 50 | < 5.0 s: wall met, CPU met |" in row
    assert "Load average at the start: 3.0, 2.0, 1.0" in text and "50.0 ms wall, 40.0 ms CPU" in text
    assert [line for line in lines if line.startswith("Bundle step times")] == [
        "Bundle step times (last run; each attribution with its faithfulness): encode 0.010 s."
    ]
    # run again on its own output: still one row and one note
    again = bench.bundle_only(text, (1.0, 1.0, 1.0), 0.050, 0.040, 6.0, 5.5, {})
    assert again.count("| whole bundle") == 1 and again.count("re-measured alone") == 1
    assert "wall MISSED, CPU MISSED" in again


def test_a_table_without_one_bundle_row_is_refused(bench):
    with pytest.raises(ValueError, match="found 0"):
        bench.bundle_only("| step |\n", (0.0, 0.0, 0.0), 0.05, 0.04, 1.0, 1.0, {})


def test_the_peak_memory_sentence_is_replaced_by_this_runs_when_given(bench):
    table = TABLE + "\nPeak extra memory while explaining: **347 MiB** (old); resident before: 707 MiB.\n"
    memory = bench.peak_line(212.4, 650.0, True, "whole bundle with the defaults")
    assert memory.startswith(
        "Peak extra memory while explaining: **212 MiB** (whole bundle with the defaults;"
    )
    assert "target < 1 GB: met" in memory and "resident before: 650 MiB" in memory
    text = bench.bundle_only(table, (1.0, 1.0, 1.0), 0.05, 0.04, 2.5, 2.0, {}, memory)
    assert [line for line in text.splitlines() if line.startswith("Peak extra")] == [memory]
    assert "347 MiB" not in text and "peak memory above is from the same run" in text
    # without a new measurement the old sentence stays, and the note does not claim one
    kept = bench.bundle_only(table, (1.0, 1.0, 1.0), 0.05, 0.04, 2.5, 2.0, {})
    assert "**347 MiB** (old)" in kept and "peak memory above" not in kept
    assert "MISSED" in bench.peak_line(
        1100.0, 650.0, False, "x"
    ) and "VmHWM - VmRSS before" in bench.peak_line(1100.0, 650.0, False, "x")
    with pytest.raises(ValueError, match="Peak extra memory.*found 0"):
        bench.bundle_only(TABLE, (0.0, 0.0, 0.0), 0.05, 0.04, 1.0, 1.0, {}, memory)
