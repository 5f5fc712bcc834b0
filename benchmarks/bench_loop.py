"""The annotation loop measured: val micro-F1 per reviewed pair for each review order (app.services.annotation_loop).

    nice -n 10 python benchmarks/bench_loop.py run --seed 1 [--strategies random margin ...] [--dataset mnre]
    python benchmarks/bench_loop.py report        # writes benchmarks/loop.md, loop.json and loop.png

`run` simulates the loop for each strategy with one seed: a seed set of 500 random MNRE v2 train pairs (the
Queue's random order), 8 rounds of 250 pairs picked by the strategy through the Queue's own query and revealed as
accepted decisions in a label store, the model retrained after each round (model.train.train: round 0 the first
model's recipe, configs/first_model.yaml, for 4 epochs on the seed set; later rounds warm-started from the previous
round's model for one epoch over every labelled pair). Each finished strategy x seed is kept under --work and read
back, so an interrupted run continues where it stopped; two processes (different seeds) use the 2-core machine.
`--dataset synthetic` runs the same loop on the synthetic image-decided set (model.synthetic, objects model,
configs/synthetic_first_model.yaml) with a seed set of 50, rounds of 25 and a pool sample of 200 (image reliance
swaps 5 images into each sampled post).

`report` reads every finished curve, summarises them (app.services.annotation_loop.summarize_curves: mean curve over seeds,
area under the learning curve, labels to reach random's final F1, the winner by the rule of winning_strategy) and
writes the markdown table, the figure and benchmarks/loop.json, which the Loop page reads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TORCH_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(int(os.environ["TORCH_NUM_THREADS"]))

from app.services.annotation_loop import (  # noqa: E402
    QUERY_STRATEGIES,
    TEXT_STRATEGIES,
    LoopCurve,
    LoopSettings,
    load_loop_data,
    simulate,
    summarize_curves,
    winning_strategy,
)

WORK = REPO / "var" / "bench_loop"
OUT = REPO / "benchmarks"
DATASETS = {
    # dataset -> (data folder, training recipe, loop settings)
    "mnre": (REPO.parent / "shared" / "mnre", REPO / "configs" / "first_model.yaml", LoopSettings()),
    "synthetic": (
        WORK / "synthetic_data",
        REPO / "configs" / "synthetic_first_model.yaml",
        LoopSettings(seed_size=50, batch=25, seed_epochs=2, pool_sample=200),
    ),
}


def log(msg: str) -> None:
    print(f"[{dt.datetime.now(dt.UTC):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def recipe(path: Path, data: Path):
    from model.train import parse_config

    cfg = parse_config(["--config", str(path)])
    return replace(cfg, data=str(data), progress=False, feature_cache=str(REPO / "var" / "features"))


def ensure_synthetic(folder: Path) -> None:
    if (folder / "txt" / "ours_train.txt").is_file():
        return
    from model.synthetic import main as synthetic_main

    if synthetic_main([str(folder), "--seed", "0"]) != 0:
        raise SystemExit(f"could not write the synthetic set to {folder}")


def cmd_run(args) -> None:
    data_folder, recipe_path, settings = DATASETS[args.dataset]
    if args.dataset == "synthetic":
        ensure_synthetic(data_folder)
    settings = replace(settings, seed=args.seed)
    # smaller settings for a smoke run (kept apart with --work)
    for name in ("rounds", "seed_size", "batch", "pool_sample"):
        if getattr(args, name) is not None:
            settings = replace(settings, **{name: getattr(args, name)})
    data = load_loop_data(data_folder)
    cfg = recipe(recipe_path, data_folder)
    work = (args.work or WORK) / args.dataset
    strategies = args.strategies or (
        list(QUERY_STRATEGIES) if args.dataset == "synthetic" else list(TEXT_STRATEGIES)
    )
    for strategy in strategies:
        started, cpu = time.monotonic(), time.process_time()
        curve = simulate(strategy, cfg, data, settings, work, log)
        log(
            f"{args.dataset} {strategy} seed {args.seed}: final val micro-F1 {100 * curve.f1[-1]:.2f} "
            f"({time.monotonic() - started:.0f} s wall, {time.process_time() - cpu:.0f} s CPU in this call)"
        )


def finished_curves(dataset: str) -> list[LoopCurve]:
    return [
        LoopCurve.from_json(json.loads(path.read_text()))
        for path in sorted((WORK / dataset).glob("*-s*/curve.json"))
    ]


def write_figure(summaries: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for name, summary in sorted(summaries.items()):
        mean = [100 * v for v in summary.mean_f1]
        std = [100 * v for v in summary.std_f1]
        ax.plot(
            summary.labels, mean, marker="o", markersize=3, label=f"{name} (AUC {100 * summary.mean_auc:.2f})"
        )
        ax.fill_between(
            summary.labels,
            [m - s for m, s in zip(mean, std, strict=True)],
            [m + s for m, s in zip(mean, std, strict=True)],
            alpha=0.12,
        )
    ax.set_xlabel("labelled pairs")
    ax.set_ylabel("val micro-F1 (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def dataset_section(dataset: str) -> tuple[list[str], dict]:
    curves = finished_curves(dataset)
    if not curves:
        return [f"No finished runs for {dataset} yet.", ""], {}
    summaries = summarize_curves(curves)
    winner = winning_strategy(summaries)
    settings = curves[0].settings
    cpu = sum(r.cpu_seconds for c in curves for r in c.rounds[1:])
    seed_cpu = {c.settings.seed: c.rounds[0].cpu_seconds for c in curves}
    cpu += sum(seed_cpu.values())
    lines = [
        f"Seed set {settings.seed_size} random train pairs, {settings.rounds} rounds of {settings.batch} "
        f"(to {settings.seed_size + settings.rounds * settings.batch} labels), pool sample "
        f"{settings.pool_sample or 'all'} per round; seeds {sorted({c.settings.seed for c in curves})}. "
        f"CPU time of every run together: {cpu / 3600:.2f} CPU-hours.",
        "",
        "| strategy | seeds | val micro-F1 after each round (mean over seeds, %) | final F1 | AUC (mean F1 over the "
        "budget) | AUC - random's on the same seed | labels to reach random's final F1 | CPU-min per run |",
        "|---|---|---|---:|---:|---|---:|---:|",
    ]
    random_auc = (
        dict(zip(summaries["random"].seeds, summaries["random"].auc, strict=True))
        if "random" in summaries
        else {}
    )
    cpu_per_run = {
        name: sum(r.cpu_seconds for c in curves if c.strategy == name for r in c.rounds[1:])
        / 60
        / len(summaries[name].seeds)
        for name in summaries
    }
    for name, summary in sorted(summaries.items(), key=lambda item: -item[1].mean_auc):
        curve = " ".join(f"{100 * v:.1f}" for v in summary.mean_f1)
        final = sum(summary.final_f1) / len(summary.final_f1)
        diffs = ", ".join(
            f"{100 * (auc - random_auc[s]):+.2f} (seed {s})"
            for s, auc in zip(summary.seeds, summary.auc, strict=True)
            if s in random_auc and name != "random"
        )
        reach = summary.labels_to_random_final
        lines.append(
            f"| {name}{' (winner)' if name == winner else ''} | {', '.join(map(str, summary.seeds))} | {curve} | "
            f"{100 * final:.2f} | {100 * summary.mean_auc:.2f} | {diffs or '-'} | "
            f"{reach if reach is not None else 'not within the budget'} | {cpu_per_run[name]:.1f} |"
        )
    lines += [
        "",
        f"Winner by the rule (highest mean AUC among strategies that ran every seed random ran and beat its AUC on each): "
        f"**{winner}**.",
        "",
    ]
    payload = {
        "dataset": dataset,
        "settings": asdict(settings),
        "winner": winner,
        "queue_sort": QUERY_STRATEGIES.get(winner),
        "cpu_hours": cpu / 3600,
        "strategies": {
            name: asdict(summary) | {"mean_auc": summary.mean_auc} for name, summary in summaries.items()
        },
    }
    write_figure(
        summaries, OUT / f"loop_{dataset}.png", f"Annotation loop on {dataset} (val micro-F1, mean ± sd)"
    )
    return lines, payload


def cmd_report(args) -> None:
    sections, payloads = [], {}
    for dataset in ("mnre", "synthetic"):
        lines, payload = dataset_section(dataset)
        sections += [f"## {dataset}", "", *lines]
        if payload:
            sections += [f"![learning curves](loop_{dataset}.png)", ""]
            payloads[dataset] = payload
    header = [
        "# The annotation loop, measured",
        "",
        f"`python benchmarks/bench_loop.py report`, {dt.date.today()}, {platform.machine()} CPU "
        f"({os.cpu_count()} cores), one torch thread per run. Regenerate with the `run` commands in the "
        "script's docstring. Val micro-F1 is each round's model on the val split (its \"None\" offset tuned on val, "
        "as for every model); the seed set is shared by every strategy of a seed.",
        "",
    ]
    (OUT / "loop.md").write_text("\n".join(header + sections) + "\n")
    (OUT / "loop.json").write_text(json.dumps(payloads, indent=1) + "\n")
    log(f"wrote {OUT / 'loop.md'} and loop.json")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--dataset", choices=sorted(DATASETS), default="mnre")
    run.add_argument("--seed", type=int, default=1)
    run.add_argument(
        "--strategies", nargs="+", default=list(QUERY_STRATEGIES), choices=list(QUERY_STRATEGIES)
    )
    run.add_argument("--rounds", type=int)
    run.add_argument("--seed-size", type=int)
    run.add_argument("--batch", type=int)
    run.add_argument("--pool-sample", type=int)
    run.add_argument("--work", type=Path, help=f"default {WORK}")
    run.set_defaults(func=cmd_run)
    report = sub.add_parser("report")
    report.set_defaults(func=cmd_report)
    args = ap.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
