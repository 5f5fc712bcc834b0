"""Label store timings on the full MNRE train+val: import, re-import, export per format, review-queue queries.

    python benchmarks/bench_db.py [--mnre DIR] [--database-url URL] [--write benchmarks/db.md]

Baseline measured in the same run: parsing the same txt files with model.mnre_format.read_records and nothing else,
so the import figure reads as "database overhead on top of parsing". Uses a fresh SQLite file in a temporary
folder unless --database-url points elsewhere (that database must be empty).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select  # noqa: E402

from db.annotations import record_annotation  # noqa: E402
from db.io import available_splits, import_mnre  # noqa: E402
from db.label_export import EXPORT_FORMATS, export_labels  # noqa: E402
from db.models import EntityPair  # noqa: E402
from db.provenance import register_model_version, save_predictions, set_active  # noqa: E402
from db.review_queue import QueueFilter, review_queue  # noqa: E402
from db.schema import open_database  # noqa: E402
from model.mnre_format import SPLIT_FILES, labels_by_id, read_records, read_rel2id  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    """Median wall time of `repeat` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def synthetic_probabilities(labels: list[str], rng: random.Random) -> dict[str, float]:
    weights = [rng.gammavariate(0.3, 1.0) + 1e-9 for _ in labels]  # Dirichlet(0.3): mostly peaked, some flat
    total = sum(weights)
    return {label: w / total for label, w in zip(labels, weights, strict=True)}


def run(mnre: Path, url: str) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    splits = available_splits(mnre)
    labels = labels_by_id(read_rel2id(mnre / "ours_rel2id.json"))

    parse_s, parsed = timed(lambda: [read_records(mnre / "txt" / SPLIT_FILES[s][0]) for s in splits])
    n_records = sum(len(p) for p in parsed)
    rows.append(("baseline: parse txt only (read_records)", f"{parse_s:.2f} s", f"{n_records} records"))

    engine, sessions = open_database(url, intent="create")
    try:

        def do_import():
            with sessions.begin() as session:
                return import_mnre(session, mnre, splits)

        import_s, report = timed(do_import)
        rows.append(
            (
                "import MNRE " + "+".join(splits),
                f"{import_s:.2f} s",
                f"{report.new_pairs} pairs, {report.new_posts} posts; {import_s / parse_s:.1f}x parse-only",
            )
        )
        reimport_s, report = timed(do_import)
        rows.append(
            ("re-import (idempotent, no change)", f"{reimport_s:.2f} s", f"{report.new_pairs} pairs added")
        )

        rng = random.Random(0)
        with sessions() as session:
            pair_ids = list(session.scalars(select(EntityPair.id)))

        def do_predictions():
            with sessions.begin() as session:
                version = register_model_version(session, "bench-synthetic", "/bench", "synthetic")
                set_active(session, "bench-synthetic")
                return save_predictions(
                    session,
                    version.id,
                    [
                        {
                            "pair_id": pid,
                            "probabilities": synthetic_probabilities(labels, rng),
                            "image_reliance": rng.random(),
                        }
                        for pid in pair_ids
                    ],
                )

        pred_s, n_pred = timed(do_predictions)
        rows.append(("save synthetic predictions (23 labels each)", f"{pred_s:.2f} s", f"{n_pred} pairs"))

        # a review history on 10% of the pairs, so status filters and the current-state join have work to do
        with sessions.begin() as session:
            for pid in rng.sample(pair_ids, len(pair_ids) // 10):
                record_annotation(
                    session,
                    pid,
                    status=rng.choice(["accepted", "corrected", "rejected"]),
                    label=rng.choice(labels),
                    annotator=rng.choice(["ann", "bob"]),
                    expected_revision=0,
                )
        for title, sort, queue_filter in (
            ("queue: sort by uncertainty, first 50", "uncertainty", QueueFilter()),
            ("queue: unreviewed, sort by entropy, first 50", "entropy", QueueFilter(status="unreviewed")),
            ("queue: disagreement with gold, first 50", "disagreement", QueueFilter()),
            ("queue: text search 'trump', by uncertainty", "uncertainty", QueueFilter(text="trump")),
        ):

            def query(sort=sort, queue_filter=queue_filter):
                with sessions() as session:
                    return review_queue(session, queue_filter, sort, limit=50)

            query_s, items = timed(query, repeat=5)
            rows.append(
                (
                    title,
                    f"{query_s * 1000:.0f} ms",
                    f"{len(items)} rows of {len(pair_ids)} pairs (median of 5)",
                )
            )

        with tempfile.TemporaryDirectory() as out_dir:
            for fmt in EXPORT_FORMATS:
                out = Path(out_dir) / ("mnre" if fmt == "mnre" else f"labels.{fmt}")

                def do_export(fmt=fmt, out=out):
                    with sessions() as session:
                        return export_labels(session, fmt, out)

                export_s, exported = timed(do_export)
                rows.append((f"export {fmt}", f"{export_s:.2f} s", f"{exported.rows} records"))
    finally:
        engine.dispose()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--mnre", type=Path, default=Path(os.environ.get("MNRE_ROOT", REPO_ROOT.parent / "shared" / "mnre"))
    )
    parser.add_argument("--database-url", help="an empty database (default: a fresh SQLite file)")
    parser.add_argument("--write", type=Path, help="also write the Markdown report to this file")
    args = parser.parse_args()
    if not (args.mnre / "ours_rel2id.json").is_file():
        print(f"error: no MNRE folder at {args.mnre} (use --mnre or MNRE_ROOT)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        rows = run(args.mnre, url)
        engine_name = url.split(":", 1)[0]
    lines = [
        "# Label store benchmark (benchmarks/bench_db.py)",
        "",
        f"Date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}),"
        f" shared with other jobs; Python {platform.python_version()}; engine {engine_name}.",
        "",
        "| step | time | notes |",
        "|---|---|---|",
        *[f"| {step} | {t} | {notes} |" for step, t, notes in rows],
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        args.write.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
