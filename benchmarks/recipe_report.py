"""Per-epoch val figures of the default recipe's seed runs, from their history.json files, as markdown tables.

python -m model.train --config configs/default.yaml --seed 1 --output-dir runs/recipe/seed1   (and seed 2)
python benchmarks/recipe_report.py runs/recipe/seed1 runs/recipe/seed2
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def seed_table(run: Path) -> tuple[str, dict]:
    history = json.loads((run / "history.json").read_text())
    config = json.loads((run / "train_config.json").read_text())
    best = max(history, key=lambda h: h["f1"])
    lines = [
        f"### seed {config['seed']} (`{run}`; {config['epochs']} epochs scheduled, {len(history)} finished)",
        "",
        "| epoch | train loss | val Acc | P | R | micro-F1 | None offset | micro-F1 without it | wall s (train + val) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for h in history:
        f1 = f"**{100 * h['f1']:.2f}**" if h is best else f"{100 * h['f1']:.2f}"
        lines.append(
            f"| {h['epoch']} | {h['train_loss']:.4f} | {100 * h['accuracy']:.2f} | {100 * h['precision']:.2f} | "
            f"{100 * h['recall']:.2f} | {f1} | {h['none_bias']:+.1f} | {100 * h['f1_without_bias']:.2f} | "
            f"{h['epoch_seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n", {"seed": config["seed"], "best": best}


def main(argv: list[str]) -> int:
    tables, bests = [], []
    for run in argv:
        table, best = seed_table(Path(run))
        tables.append(table)
        bests.append(best)
    mean = sum(b["best"]["f1"] for b in bests) / len(bests)
    mean_plain = sum(b["best"]["f1_without_bias"] for b in bests) / len(bests)
    print("\n".join(tables))
    print(
        f"Mean over seeds {', '.join(str(b['seed']) for b in bests)} of the best epoch's val micro-F1: "
        f"{100 * mean:.2f} with the tuned None offset, {100 * mean_plain:.2f} without it (same epochs)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
