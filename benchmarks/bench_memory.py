"""Peak resident memory of training the offline default (`objects`: MiniLM-L6 + EfficientNet-Lite0 features), as the
corpus grows.

    python benchmarks/bench_memory.py [--data ../shared/mnre] [--steps 20] [--small 15000] [--out benchmarks/memory.md]

Each measurement is a fresh process that runs model.train.train (the real path: load, encode, visual features,
optimizer, training steps) and stops after --steps optimizer steps; its peak RSS (ru_maxrss) is what is reported:
1. MNRE v2 train (target < 2 GB);
2. a synthetic corpus of --small train records and one 10x larger, over the same images (target: within 10 %).
Loading, encoding and feature preparation happen before the first step, so a few steps reach the run's peak.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class StopAfterSteps(Exception):
    pass


def child(data: str, steps: int, feature_cache: str, out_dir: str) -> dict:
    """Train on `data` for `steps` steps in this process; the peak RSS of this process."""
    import torch

    torch.set_num_threads(1)
    from model.train import TrainConfig, train

    done = {"steps": 0}

    def stop_after(fraction: float, message: str) -> None:
        done["steps"] += 1
        if done["steps"] >= steps:
            raise StopAfterSteps

    cfg = TrainConfig(
        data=data,
        output_dir=out_dir,
        variant="objects",
        epochs=1,
        feature_cache=feature_cache,
        progress=False,
        limit_val=64,
    )
    started = time.time()
    # the benchmark's way of ending training after `steps` steps
    with contextlib.suppress(StopAfterSteps):
        train(cfg, progress_callback=stop_after)
    return {
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "steps": done["steps"],
        "seconds": time.time() - started,
    }


def measure(data: str, steps: int, feature_cache: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            data,
            "--steps",
            str(steps),
            "--feature-cache",
            feature_cache,
        ]
        cmd += ["--child-out", out]
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"{data}: {proc.stderr[-2000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def count_records(root: Path) -> tuple[int, int]:
    lines = [ln for ln in (root / "txt" / "ours_train.txt").read_text().splitlines() if ln.strip()]
    images = {ln.split("'img_id': '")[1].split("'")[0] for ln in lines if "'img_id': '" in ln}
    return len(lines), len(images)


def synthetic_corpus(folder: Path, train_records: int) -> Path:
    """The synthetic image-decided layout with `train_records` train records over a fixed set of images."""
    from model.synthetic import generate

    return generate(folder, {"train": train_records, "val": 64, "test": 16}, images_per_label=30, seed=0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "mnre"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--small", type=int, default=15000)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "memory.md"))
    ap.add_argument("--child")
    ap.add_argument("--child-out")
    ap.add_argument("--feature-cache", default="")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.feature_cache, args.child_out)))
        return 0

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpora = [("MNRE v2 train", Path(args.data))]
        for n in (args.small, 10 * args.small):
            corpora.append((f"synthetic, {n:,} train records", synthetic_corpus(Path(tmp) / f"syn{n}", n)))
        for name, root in corpora:
            records, images = count_records(root)
            # a feature cache per corpus: each run computes its own image features, so runs differ only in records
            result = measure(str(root), args.steps, str(root / "features"))
            rows.append({"corpus": name, "records": records, "distinct_images": images, **result})
            print(json.dumps(rows[-1]), flush=True)

    small, large = rows[1]["peak_rss_mib"], rows[2]["peak_rss_mib"]
    growth = large / small - 1
    lines = [
        "# Peak memory of training the offline default",
        "",
        f"`python benchmarks/bench_memory.py --steps {args.steps} --small {args.small}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()} with {os.cpu_count()} cores "
        "shared with other jobs, torch 1 thread. Each row is a fresh process running `model.train.train` "
        f"(variant `objects`, MiniLM-L6 + EfficientNet-Lite0 features, batch 32, seed 1) for {args.steps} optimizer "
        "steps; peak RSS is the process's `ru_maxrss`. The synthetic corpora (`model.synthetic`, 30 images per "
        "label) share one image set, so the larger one has 10x the records over the same pictures; each corpus has "
        "its own feature cache, so each run computes the same image features. MNRE's train records name 7,356 "
        "images; 49 records have theirs on this machine.",
        "",
        "| corpus | train records | distinct img_id named | peak RSS (MiB) | seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['corpus']} | {r['records']:,} | {r['distinct_images']:,} | {r['peak_rss_mib']:.0f} | "
            f"{r['seconds']:.0f} |"
        )
    lines += [
        "",
        f"MNRE train: {rows[0]['peak_rss_mib']:.0f} MiB (target < 2048). Synthetic 10x corpus / 1x corpus: "
        f"{large:.0f} / {small:.0f} MiB = {100 * growth:+.1f} % (target within 10 %).",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
