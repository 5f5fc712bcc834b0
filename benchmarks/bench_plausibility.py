"""Plausibility of every explanation method on the synthetic sets, whose evidence the generator knows.

    python benchmarks/bench_plausibility.py [--work runs/plausibility] [--limit 200] [--split test]
        [--objects-model RUN/best --image-data DIR] [--text-model RUN/best --text-data DIR]
        [--out benchmarks/plausibility.md]

1. Data: the image-decided set (python -m model.synthetic, seed 0; the deciding object's box is the evidence) and the
   text-decided set (--decided-by text, seed 0; the one trigger word is the evidence), 600 / 200 / 200 posts each,
   unless folders are given.
2. Models: an `objects` model on the image-decided set (configs/synthetic_default.yaml) and a `text_only` model on
   the text-decided set (configs/synthetic_text_decided.yaml), trained with `python -m model.train` (one torch
   thread) unless checkpoints are given.
3. explain.plausibility.plausibility_table (what `python -m explain.plausibility` prints) on the first --limit posts
   of --split of each set.

Floors (issue 25): pointing game >= 90 % for the best visual method on image-decided posts with the objects model;
token AUPRC >= 0.8 for the best token method on text-decided posts. A method below its floor is reported as such.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from explain.plausibility import RANDOM_MAP, RANDOM_TOKENS, plausibility_table  # noqa: E402
from model.data import load_split  # noqa: E402
from model.evaluate import load_checkpoint  # noqa: E402
from model.synthetic import generate, read_rationales  # noqa: E402

POINTING_FLOOR, AUPRC_FLOOR = 0.90, 0.80
SIZES = {"train": 600, "val": 200, "test": 200}


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def shown(path: Path) -> str:
    """A path as written in the report: relative to the repository when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ensure_data(folder: Path, decided_by: str, seed: int) -> Path:
    if not (folder / "rationales.jsonl").is_file():
        generate(folder, SIZES, images_per_label=30, seed=seed, decided_by=decided_by)
    return folder


def ensure_model(config: str, data: Path, out: Path, features: Path, seed: int) -> Path:
    """Train with the project's command (one torch thread) unless out/best is already there."""
    best = out / "best"
    if not (best / "config.json").is_file():
        cmd = [
            sys.executable,
            "-m",
            "model.train",
            "--config",
            config,
            "--data",
            str(data),
            "--seed",
            str(seed),
        ]
        cmd += ["--output-dir", str(out), "--feature-cache", str(features), "--no-progress"]
        env = {**os.environ, "TORCH_NUM_THREADS": "1"}
        print("running", " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=REPO, env=env, check=True)
    return best


def best_of(table, kind: str, metric: str) -> tuple[str, float]:
    rows = [r for r in table.rows if r.kind == kind and r.method not in (RANDOM_MAP, RANDOM_TOKENS)]
    row = max(rows, key=lambda r: r.metrics[metric])
    return row.method, row.metrics[metric]


def score(model_dir: Path, data: Path, split: str, limit: int, features: Path, seed: int, n_steps: int):
    model, tokenizer = load_checkpoint(model_dir)
    records, _, _ = load_split(data, split)
    start = time.process_time()
    table = plausibility_table(
        model,
        tokenizer,
        records,
        read_rationales(data, split),
        split,
        features,
        n_steps,
        seed=seed,
        limit=limit,
    )
    return table, time.process_time() - start, model.config.version_id


def floors_text(image_table, text_table) -> list[str]:
    lines = []
    method, value = best_of(image_table, "image", "pointing_game")
    verdict = "meets" if value >= POINTING_FLOOR else "MISSES"
    lines.append(
        f"- Image-decided, objects model: best visual method by pointing game = {method}, "
        f"{100 * value:.1f} % ({verdict} the floor of {100 * POINTING_FLOOR:.0f} %)."
    )
    for row in image_table.rows:
        if row.kind == "image" and row.method != RANDOM_MAP and row.metrics["pointing_game"] < POINTING_FLOOR:
            lines.append(f"  - below the floor: {row.method}, {100 * row.metrics['pointing_game']:.1f} %")
    method, value = best_of(text_table, "tokens", "auprc")
    verdict = "meets" if value >= AUPRC_FLOOR else "MISSES"
    lines.append(
        f"- Text-decided, text_only model: best token method by AUPRC = {method}, {value:.3f} "
        f"({verdict} the floor of {AUPRC_FLOOR:.1f})."
    )
    for row in text_table.rows:
        if row.kind == "tokens" and row.method != RANDOM_TOKENS and row.metrics["auprc"] < AUPRC_FLOOR:
            lines.append(f"  - below the floor: {row.method}, AUPRC {row.metrics['auprc']:.3f}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "plausibility")
    ap.add_argument("--image-data", type=Path, help="an image-decided synthetic folder (default: WORK/image)")
    ap.add_argument("--text-data", type=Path, help="a text-decided synthetic folder (default: WORK/text)")
    ap.add_argument("--objects-model", type=Path, help="a checkpoint folder (default: train WORK/objects)")
    ap.add_argument("--text-model", type=Path, help="a checkpoint folder (default: train WORK/text_only)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=200, help="posts scored per set (the first of the split)")
    ap.add_argument("--n-steps", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "plausibility.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    wall = time.perf_counter()
    cpu_start, children_start = time.process_time(), children_cpu()
    work, features = args.work, args.work / "features"
    image_data = args.image_data or ensure_data(work / "image", "image", args.seed)
    text_data = args.text_data or ensure_data(work / "text", "text", args.seed)
    objects = args.objects_model or ensure_model(
        "configs/synthetic_default.yaml", image_data, work / "objects", features, args.seed
    )
    text_only = args.text_model or ensure_model(
        "configs/synthetic_text_decided.yaml", text_data, work / "text_only", features, args.seed
    )
    train_cpu = children_cpu() - children_start
    image_table, image_cpu, objects_version = score(
        objects, image_data, args.split, args.limit, features, args.seed, args.n_steps
    )
    text_table, text_cpu, text_version = score(
        text_only, text_data, args.split, args.limit, features, args.seed, args.n_steps
    )
    total_cpu = time.process_time() - cpu_start + children_cpu() - children_start
    load = os.getloadavg()
    header = [
        "# Plausibility of the explanation methods on the synthetic sets",
        "",
        f"Written by `python benchmarks/bench_plausibility.py --limit {args.limit} --split {args.split}` on "
        f"{dt.date.today().isoformat()}; {cpu_name()} ({platform.machine()}), {os.cpu_count()} cores, torch "
        f"{torch.__version__}, one torch thread; load average at the end {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} (the machine is shared). Seed {args.seed} (data, training, random references).",
        "",
        f"CPU time: training {train_cpu:.0f} s (0 when checkpoints were reused), explanations {image_cpu:.0f} s "
        f"(image-decided) + {text_cpu:.0f} s (text-decided), whole run {total_cpu:.0f} s; wall "
        f"{time.perf_counter() - wall:.0f} s.",
        "",
        "Each method explains the model's predicted label; attention is read at the two opening entity markers "
        "(the classifier's inputs); maps are placed over the original image as the app draws them (bilinear from the "
        "7x7 grid of the global image). Metric definitions: README, section Explanations, Plausibility. Percentages; "
        "comprehensiveness and sufficiency (explain.faithfulness, over the top 10/20/50 % of units) in probability.",
        "",
        "## Floors",
        "",
        *floors_text(image_table, text_table),
    ]
    sections = []
    for title, table, model_dir, version, data in (
        ("Image-decided set, `objects` model", image_table, objects, objects_version, image_data),
        ("Text-decided set, `text_only` model", text_table, text_only, text_version, text_data),
    ):
        reference = "; ".join(f"{k}: {100 * v:.1f} %" for k, v in table.reference.items())
        skipped = ", ".join(f"{k}: {v}" for k, v in table.skipped.items()) or "none"
        sections += [
            "",
            f"## {title}",
            "",
            f"Model `{shown(model_dir)}` (version {version}), data `{shown(data)}`, split {args.split}, the first "
            f"{table.n_posts} posts ({table.n_with_box} scored against a box, {table.n_with_words} against words; "
            f"left out: {skipped}). Reference: {reference}.",
            "",
            table.markdown(),
        ]
    not_scored = image_table.settings["not scored"]
    footer = ["", "## Not scored", ""] + [f"- {name}: {why}" for name, why in not_scored.items()]
    footer += [
        "- attention over the text (token -> token): the app shows token -> object attention only, so the text-"
        "decided set is scored with the token attributions (LayerIG) alone.",
    ]
    args.out.write_text("\n".join(header + sections + footer) + "\n")
    (args.work / "plausibility.json").write_text(
        json.dumps({"image": image_table.to_json(), "text": text_table.to_json()}, indent=1)
    )
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
