"""Load test of the label store: simulated reviewers, each a separate process, saving, undoing and exporting at once.

    python benchmarks/bench_load.py [--database-url URL | --postgres] [--reviewers 20] [--seconds 300]
                                    [--write benchmarks/load.md]

Every reviewer goes through the functions the app calls: app.services.store.load_review_state (what the Review page shows),
app.services.store.decide with the revision it showed, app.services.store.undo with the revision its own save created (as the Review
page's undo does), db.label_export.export_labels and db.review_queue.review_queue. Half of the reviews are Review's leased
queue: the next pair comes from app.services.leases.next_pair (db.leases.take_next, under the dataset's --overlap),
keep_lease renews it on every view, and the reviewer stays on it until a decision or skip is saved; the other half
open a pair picked on the Queue (no lease). A share of those picks falls on a few "hot" pairs, so several reviewers
decide on the same pair at the same moment; a short think time between showing and saving widens the race. Each
reviewer logs every write it was told succeeded and every pair it was handed.

Afterwards the store is checked against the logs: every acknowledged decision and undo is stored exactly once
(none lost, none duplicated, none unacknowledged), each pair's revisions run 1..n without a gap, every undo
restores the state before the decision it undid and only ever undid the undoer's own decision, skips carry the
previous label, and every export held each pair exactly once. No pair may be handed to more reviewers than the
overlap at once: from the logs, each reviewer holds a pair from the end of the take that handed it to the start of
the skip that gave it back (or of the undo of their decision on it; a decision keeps the slot), intervals inside
the true ones, so more than `overlap` of them overlapping is a pair handed out beyond the overlap. Save latency is
the time of app.services.store.decide.

Default store: a fresh SQLite file in a temporary folder; --postgres uses a fresh schema in $TEST_POSTGRES_URL.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LABELS = {
    "None": 0,
    "/per/per/peer": 1,
    "/per/org/member_of": 2,
    "/loc/loc/contain": 3,
    "/misc/misc/part_of": 4,
}
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "Berlin",
    "Paris",
    "Obama",
    "Merkel",
    "Messi",
    "Inter",
    "team",
    "city",
    "meets",
    "joins",
    "in",
    "at",
    "with",
    "from",
]
STATUSES = ("accepted", "corrected", "rejected", "skipped")


# ----------------------------------------------------------------------------------------------------------------
# Store and corpus


def write_corpus(root: Path, n_records: int, seed: int) -> Path:
    """An MNRE folder (train 80 %, val 20 %) of text-only records; imported with the same import the CLI uses."""
    rng = random.Random(seed)
    (root / "txt").mkdir(parents=True, exist_ok=True)
    (root / "ours_rel2id.json").write_text(json.dumps(LABELS), encoding="utf-8")
    lines: dict[str, list[str]] = {"train": [], "val": []}
    for index in range(n_records):
        tokens = [rng.choice(WORDS) for _ in range(rng.randint(5, 14))] + [f"w{index}"]
        head, tail = (0, 1), (2, 4)
        record = {
            "token": tokens,
            "h": {"name": " ".join(tokens[slice(*head)]), "pos": list(head)},
            "t": {"name": " ".join(tokens[slice(*tail)]), "pos": list(tail)},
            "img_id": f"img{index}.jpg",
            "relation": rng.choice(list(LABELS)),
        }
        lines["train" if index % 5 else "val"].append(repr(record))
    for split, split_lines in lines.items():
        (root / "txt" / f"ours_{split}.txt").write_text("\n".join(split_lines) + "\n", encoding="utf-8")
    return root


def postgres_schema_url(base_url: str) -> tuple[str, str]:
    """A fresh schema in the PostgreSQL database of `base_url`, and the URL that uses it."""
    from sqlalchemy import create_engine, text

    schema = f"load_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}options=-csearch_path%3D{schema}", schema


def drop_postgres_schema(base_url: str, schema: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(base_url)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def prepare_store(url: str, corpus: Path, overlap: int = 1) -> list[int]:
    from sqlalchemy import select

    from db.io import import_mnre
    from db.leases import set_team_settings
    from db.models import EntityPair
    from db.schema import open_database

    engine, sessions = open_database(url, intent="create")
    try:
        with sessions.begin() as session:
            import_mnre(session, corpus, dataset="load")
            set_team_settings(session, "load", overlap, 10)  # no lease lapses within a run
        with sessions() as session:
            return list(session.scalars(select(EntityPair.id).order_by(EntityPair.id)))
    finally:
        engine.dispose()


# ----------------------------------------------------------------------------------------------------------------
# One reviewer (a separate process)


@dataclass
class ReviewerPlan:
    index: int
    url: str
    pair_ids: list[int]
    hot_ids: list[int]
    hot_share: float
    seconds: float  # how long to act once every reviewer is ready
    seed: int
    log_path: str
    think_s: float
    export_dir: str
    n_pairs: int
    lease_share: float = 0.5  # of the reviews: Review's leased queue; the rest are Queue picks


def reviewer(plan: ReviewerPlan, ready) -> None:
    from sqlalchemy.exc import OperationalError

    from app.services.leases import keep_lease, next_pair
    from app.services.store import decide, load_review_state, undo
    from db.errors import ConcurrentEditError, LabelStoreError
    from db.export_rows import ExportFilter
    from db.label_export import export_labels
    from db.review_queue import QueueFilter, review_queue
    from db.schema import open_database

    rng = random.Random(plan.seed * 1000 + plan.index)
    name = f"reviewer{plan.index:02d}"
    engine, sessions = open_database(plan.url, intent="write")
    # start together once every process has imported and connected (spawned processes take seconds to start)
    ready.wait()
    deadline = time.time() + plan.seconds
    # pair -> revision this reviewer's own latest save created (what the Review page keeps for its undo button)
    own_saves: dict[int, int] = {}
    handed: list[int] = []  # the pairs the leased queue handed this reviewer (Review's session queue)
    leased_pair: int | None = None  # the leased pair on screen, until a decision or skip on it is saved
    with open(plan.log_path, "w", encoding="utf-8") as log:

        def write(entry: dict) -> None:
            log.write(json.dumps({"reviewer": name, **entry}) + "\n")

        while time.time() < deadline:
            roll = rng.random()
            pair_id = rng.choice(plan.hot_ids) if rng.random() < plan.hot_share else rng.choice(plan.pair_ids)
            try:
                if roll < 0.15 and own_saves:
                    pair_id = rng.choice(list(own_saves))
                    expected = own_saves.pop(pair_id)
                    started, at = time.perf_counter(), time.time()
                    try:
                        row = undo(sessions, pair_id, name, expected)
                    except ConcurrentEditError:
                        write({"kind": "undo_conflict", "pair": pair_id, "s": time.perf_counter() - started})
                        continue
                    write(
                        {
                            "kind": "undo",
                            "pair": pair_id,
                            "revision": row.revision,
                            "status": row.status,
                            "label": row.label,
                            "s": time.perf_counter() - started,
                            "t0": at,
                        }
                    )
                elif roll < 0.19:
                    started = time.perf_counter()
                    out = Path(plan.export_dir) / f"{name}.csv"
                    with sessions() as session:
                        report = export_labels(session, "csv", out, ExportFilter(include_rejected=True))
                    import pandas as pd

                    exported = pd.read_csv(out)
                    write(
                        {
                            "kind": "export",
                            "rows": report.rows,
                            "unique_pairs": int(exported["pair_id"].nunique()),
                            "file_rows": len(exported),
                            "s": time.perf_counter() - started,
                        }
                    )
                elif roll < 0.24:
                    started = time.perf_counter()
                    with sessions() as session:
                        review_queue(session, QueueFilter(dataset="load"), sort="source_order", limit=50)
                    write({"kind": "queue", "s": time.perf_counter() - started})
                else:
                    leased = leased_pair is not None or rng.random() < plan.lease_share
                    if leased and leased_pair is None:
                        started = time.perf_counter()
                        leased_pair = next_pair(sessions, name, exclude=handed)
                        write(
                            {
                                "kind": "take" if leased_pair is not None else "take_none",
                                "pair": leased_pair,
                                "t1": time.time(),
                                "s": time.perf_counter() - started,
                            }
                        )
                        if leased_pair is None:
                            leased = False  # nothing left for this reviewer: a Queue pick instead
                        else:
                            handed.append(leased_pair)
                    if leased:
                        pair_id = leased_pair
                        if keep_lease(sessions, pair_id, name) is not None:
                            write({"kind": "lease_warning", "pair": pair_id})
                    with sessions() as session:
                        shown = load_review_state(session, pair_id)
                    time.sleep(rng.uniform(0, plan.think_s))
                    status = rng.choice(STATUSES)
                    label = rng.choice(list(LABELS)) if status == "corrected" else None
                    started, at = time.perf_counter(), time.time()
                    try:
                        row = decide(sessions, pair_id, status, name, shown.revision, label, f"load {name}")
                    except ConcurrentEditError:
                        write({"kind": "save_conflict", "pair": pair_id, "s": time.perf_counter() - started})
                        continue
                    if leased:
                        leased_pair = None
                    own_saves[pair_id] = row.revision
                    write(
                        {
                            "kind": "save",
                            "pair": pair_id,
                            "revision": row.revision,
                            "status": row.status,
                            "label": row.label,
                            "s": time.perf_counter() - started,
                            "t0": at,
                            "leased": leased,
                        }
                    )
            except OperationalError as err:
                write({"kind": "busy", "error": str(err.orig).splitlines()[0]})
            except LabelStoreError as err:
                write({"kind": "refused", "error": str(err)})
            except Exception as err:  # reported as a failure of the run, never hidden
                write({"kind": "error", "error": f"{type(err).__name__}: {err}"})
    engine.dispose()


# ----------------------------------------------------------------------------------------------------------------
# Checks and figures


@dataclass
class LoadResult:
    backend: str
    reviewers: int
    seconds: float
    pairs: int
    hot_pairs: int
    overlap: int = 1
    counts: dict[str, int] = field(default_factory=dict)
    save_p50_ms: float = 0.0
    save_p95_ms: float = 0.0
    save_max_ms: float = 0.0
    undo_p50_ms: float = 0.0
    export_p50_ms: float = 0.0
    stored_rows: int = 0
    lost: int = 0  # acknowledged writes missing from the store
    unacknowledged: int = 0  # stored rows no reviewer was told about (duplicates or phantom writes)
    mismatched: int = 0  # stored row differs from what its writer was told
    gaps: int = 0  # pairs whose revisions do not run 1..n
    bad_undos: int = 0  # undo rows that restore the wrong state, or undid someone else's decision
    bad_skips: int = 0  # skips that did not carry the previous label
    bad_exports: int = 0  # exports that did not hold each pair exactly once
    pairs_handed: int = 0  # distinct pairs the leased queue handed out
    most_at_once: int = 0  # most reviewers holding one pair at the same time (from the logs)
    beyond_overlap: int = 0  # pairs held by more than `overlap` reviewers at once
    errors: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not (
            self.lost
            or self.unacknowledged
            or self.mismatched
            or self.gaps
            or self.bad_undos
            or self.bad_skips
            or self.bad_exports
            or self.beyond_overlap
            or self.errors
        )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def check_store(url: str, entries: list[dict], result: LoadResult) -> None:
    from sqlalchemy import select

    from db.annotations import current_state
    from db.models import Annotation
    from db.schema import open_database

    engine, sessions = open_database(url, intent="read")
    with sessions() as session:
        rows = list(session.scalars(select(Annotation).order_by(Annotation.pair_id, Annotation.revision)))
    engine.dispose()
    result.stored_rows = len(rows)
    acknowledged = {(e["pair"], e["revision"]): e for e in entries if e["kind"] in ("save", "undo")}
    stored = {(a.pair_id, a.revision): a for a in rows}
    result.lost = len(acknowledged.keys() - stored.keys())
    result.unacknowledged = len(stored.keys() - acknowledged.keys())
    for key in acknowledged.keys() & stored.keys():
        entry, row = acknowledged[key], stored[key]
        is_undo = row.undoes_id is not None
        if (entry["reviewer"], entry["status"], entry["label"], entry["kind"] == "undo") != (
            row.annotator,
            row.status,
            row.label,
            is_undo,
        ):
            result.mismatched += 1
    by_pair: dict[int, list] = {}
    for row in rows:
        by_pair.setdefault(row.pair_id, []).append(row)
    for history in by_pair.values():
        if [a.revision for a in history] != list(range(1, len(history) + 1)):
            result.gaps += 1
            continue
        by_id = {a.id: a for a in history}
        for position, row in enumerate(history):
            before = history[:position]
            if row.undoes_id is not None:
                target = by_id.get(row.undoes_id)
                restored = current_state([a for a in history if target and a.revision < target.revision])
                # the undone decision is the one right before (the undoer's own save, still current then)
                if (
                    target is None
                    or target.revision != row.revision - 1
                    or target.annotator != row.annotator
                    or target.undoes_id is not None
                    or (row.status, row.label) != (restored.status, restored.label)
                ):
                    result.bad_undos += 1
            elif row.status == "skipped" and row.label != current_state(before).label:
                result.bad_skips += 1
    for entry in entries:
        if entry["kind"] == "export" and not (
            entry["rows"] == entry["file_rows"] == entry["unique_pairs"] == result.pairs
        ):
            result.bad_exports += 1


def check_handed(entries: list[dict], result: LoadResult) -> None:
    """No pair held by more than `result.overlap` reviewers at once. Per reviewer (its log is in its own order) and
    pair: held from the end of the take that handed it (the lease is committed by then) until the start of the
    skip that gave it back while held, or of their undo once decided (db.leases.release_for; a decision keeps the
    slot); each interval lies inside the time the lease row really existed, so overlapping intervals are real."""
    intervals: dict[int, list[tuple[float, float]]] = {}
    state: dict[tuple[str, int], tuple[str, float]] = {}  # (reviewer, pair) -> ("held" | "decided", since)

    def close(key: tuple[str, int], at: float) -> None:
        _, since = state.pop(key)
        intervals.setdefault(key[1], []).append((since, at))

    for entry in entries:
        key = (entry["reviewer"], entry.get("pair"))
        kind, held = entry["kind"], state.get(key, ("", 0.0))[0]
        if kind == "take" and not held:
            state[key] = ("held", entry["t1"])
        elif kind == "save" and held == "held":
            if entry["status"] == "skipped":
                close(key, entry["t0"])
            else:
                state[key] = ("decided", state[key][1])
        elif kind == "undo" and held == "decided":
            close(key, entry["t0"])
    for key, (_, since) in list(state.items()):
        intervals.setdefault(key[1], []).append((since, float("inf")))
    result.pairs_handed = len(intervals)
    for spans in intervals.values():
        # sweep: an end at the same instant as a start is counted first (the slot was free by then)
        events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
        at_once = most = 0
        for _, step in events:
            at_once += step
            most = max(most, at_once)
        result.most_at_once = max(result.most_at_once, most)
        result.beyond_overlap += most > result.overlap


def run_load(
    url: str,
    *,
    backend: str,
    reviewers: int = 20,
    seconds: float = 300.0,
    n_records: int = 400,
    hot_pairs: int = 4,
    hot_share: float = 0.4,
    think_s: float = 0.02,
    seed: int = 0,
    overlap: int = 1,
) -> LoadResult:
    """Run the simulated reviewers against the store at `url` (a fresh store is built there) and check it."""
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(Path(tmp) / "corpus", n_records, seed)
        pair_ids = prepare_store(url, corpus, overlap)
        rng = random.Random(seed)
        hot_ids = rng.sample(pair_ids, hot_pairs)
        context = multiprocessing.get_context("spawn")
        ready = context.Barrier(reviewers)
        plans = [
            ReviewerPlan(
                index=i,
                url=url,
                pair_ids=pair_ids,
                hot_ids=hot_ids,
                hot_share=hot_share,
                seconds=seconds,
                seed=seed,
                log_path=str(Path(tmp) / f"reviewer{i:02d}.jsonl"),
                think_s=think_s,
                export_dir=tmp,
                n_pairs=len(pair_ids),
            )
            for i in range(reviewers)
        ]
        processes = [context.Process(target=reviewer, args=(plan, ready)) for plan in plans]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=seconds + 600)
        entries: list[dict] = []
        result = LoadResult(backend, reviewers, seconds, len(pair_ids), hot_pairs, overlap)
        for plan, process in zip(plans, processes, strict=True):
            if process.exitcode != 0:
                result.errors.append(f"reviewer {plan.index} exited with {process.exitcode}")
            if Path(plan.log_path).exists():
                with open(plan.log_path, encoding="utf-8") as log:
                    entries.extend(json.loads(line) for line in log)
    kinds = (
        "save",
        "save_conflict",
        "undo",
        "undo_conflict",
        "export",
        "queue",
        "take",
        "take_none",
        "lease_warning",
        "busy",
        "refused",
        "error",
    )
    result.counts = {kind: sum(e["kind"] == kind for e in entries) for kind in kinds}
    result.errors.extend(e["error"] for e in entries if e["kind"] == "error")
    if not result.counts["save"]:
        result.errors.append("no save was acknowledged")
    saves = [e["s"] * 1000 for e in entries if e["kind"] == "save"]
    result.save_p50_ms, result.save_p95_ms = percentile(saves, 0.5), percentile(saves, 0.95)
    result.save_max_ms = max(saves, default=float("nan"))
    result.undo_p50_ms = percentile([e["s"] * 1000 for e in entries if e["kind"] == "undo"], 0.5)
    result.export_p50_ms = percentile([e["s"] * 1000 for e in entries if e["kind"] == "export"], 0.5)
    check_store(url, entries, result)
    check_handed(entries, result)
    return result


def markdown_section(result: LoadResult, url_shown: str) -> str:
    c = result.counts
    attempts = c["save"] + c["save_conflict"]
    lines = [
        f"## {result.backend}: {result.reviewers} reviewers x {result.seconds:.0f} s, overlap {result.overlap}",
        "",
        f"Date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()}-core CPU ({platform.machine()}), shared "
        f"with other jobs, run under nice {os.nice(0)}; Python {platform.python_version()}; store {url_shown}; "
        f"{result.pairs} pairs, {result.hot_pairs} hot pairs take 40 % of the Queue picks; half the reviews take "
        f"their pair under a lease, overlap {result.overlap}; seed 0.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| saves acknowledged | {c['save']} ({c['save'] / result.seconds:.1f}/s) |",
        f"| saves refused as concurrent edits | {c['save_conflict']} ({c['save_conflict'] / max(attempts, 1):.1%} "
        "of attempts) |",
        f"| undos acknowledged / refused (someone saved after) | {c['undo']} / {c['undo_conflict']} |",
        f"| exports (each checked: every pair once) / queue reads | {c['export']} / {c['queue']} |",
        f"| leased takes / none left / lease warnings | {c['take']} / {c['take_none']} / {c['lease_warning']} |",
        f"| pairs handed out; most reviewers holding one pair at once; pairs beyond overlap {result.overlap} | "
        f"{result.pairs_handed}; {result.most_at_once}; {result.beyond_overlap} |",
        f"| database busy (OperationalError) / other refusals / errors | {c['busy']} / {c['refused']} / "
        f"{c['error']} |",
        f"| save latency p50 / p95 / max | {result.save_p50_ms:.1f} / {result.save_p95_ms:.1f} / "
        f"{result.save_max_ms:.1f} ms |",
        f"| undo latency p50; export p50 | {result.undo_p50_ms:.1f} ms; {result.export_p50_ms:.0f} ms |",
        f"| annotation rows stored | {result.stored_rows} |",
        f"| lost / unacknowledged / mismatched rows | {result.lost} / {result.unacknowledged} / "
        f"{result.mismatched} |",
        f"| pairs with a revision gap; bad undos; bad skips; bad exports | {result.gaps}; {result.bad_undos}; "
        f"{result.bad_skips}; {result.bad_exports} |",
        f"| verdict | {'consistent' if result.consistent else 'INCONSISTENT: ' + '; '.join(result.errors[:3])} |",
        "",
    ]
    return "\n".join(lines)


def write_section(path: Path, key: str, section: str) -> None:
    """Replace (or append) the section between <!-- load:KEY --> markers, keeping the others."""
    header = (
        "# Label store under load (benchmarks/bench_load.py)\n\n"
        "Simulated reviewers, each a separate process, through the app's own store functions; see the script's "
        "docstring for what is checked.\n"
    )
    text = path.read_text(encoding="utf-8") if path.exists() else header
    start, end = f"<!-- load:{key} -->", f"<!-- /load:{key} -->"
    block = f"{start}\n{section}{end}\n"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) + 1 :]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--database-url", help="an empty database to build the store in")
    where.add_argument("--postgres", action="store_true", help="a fresh schema in $TEST_POSTGRES_URL")
    parser.add_argument("--reviewers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--hot-pairs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overlap", type=int, default=1, help="reviewers per pair in the leased queue")
    parser.add_argument(
        "--write", type=Path, help="markdown file to put the figures in (e.g. benchmarks/load.md)"
    )
    args = parser.parse_args(argv)

    schema = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.postgres:
            base = os.environ.get("TEST_POSTGRES_URL")
            if not base:
                parser.error("--postgres needs TEST_POSTGRES_URL")
            url, schema = postgres_schema_url(base)
            backend, shown = "PostgreSQL", "PostgreSQL 15 on loopback (fresh schema)"
        else:
            url = args.database_url or f"sqlite:///{Path(tmp) / 'load.db'}"
            backend = "SQLite" if url.startswith("sqlite") else url.split(":", 1)[0]
            shown = "SQLite file (WAL) in a temporary folder" if not args.database_url else backend
        try:
            result = run_load(
                url,
                backend=backend,
                reviewers=args.reviewers,
                seconds=args.seconds,
                n_records=args.records,
                hot_pairs=args.hot_pairs,
                seed=args.seed,
                overlap=args.overlap,
            )
        finally:
            if schema:
                drop_postgres_schema(os.environ["TEST_POSTGRES_URL"], schema)
    section = markdown_section(result, shown)
    print(section)
    if args.write:
        key = f"{backend.lower()}-{args.reviewers}x{args.seconds:.0f}-overlap{args.overlap}"
        write_section(args.write, key, section)
    return 0 if result.consistent else 1


if __name__ == "__main__":
    raise SystemExit(main())
