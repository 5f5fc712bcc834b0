"""The paper's visual-shuffle experiment (Table 1) for any variant or architecture.

    standard       train on matched image-text pairs, test on matched pairs
    shuffle_train  train with every record given another record's image, test on matched pairs
    shuffle_test   the standard model, tested with shuffled images

    python -m model.shuffle --config configs/objects.yaml --variants text_only objects --eval-split val --out runs/t1

A model that really uses the image loses accuracy under shuffling; one that ignores it scores the same.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from model.data import DataFormatError, load_split
from model.evaluate import evaluate_checkpoint
from model.train import TrainConfig, parse_config, train

SETTINGS = ("standard", "shuffle_train", "shuffle_test")


def run_shuffle_experiment(
    cfg: TrainConfig,
    variants: list[str],
    eval_split: str = "test",
    out: str | Path = "",
    architecture: str | None = None,
    progress_callback=None,
) -> list[dict]:
    """Train (standard and shuffled-train) and evaluate each variant; returns one row per variant and setting.

    progress_callback(fraction, message) goes to each model.train.train call (the worker's job progress)."""
    out = Path(out or cfg.output_dir)
    records, _, report = load_split(cfg.data, eval_split, skip_bad=cfg.skip_bad)
    if cfg.grounding_dir:
        from model.grounding import apply_grounding

        apply_grounding(records, cfg.grounding_dir, eval_split)
    rows = []
    for variant in variants:
        # "mega" names the scene-graph baseline; every other name is an IFAformer variant
        arch = "mega" if variant == "mega" else (architecture or cfg.architecture)
        variant = "objects" if variant == "mega" else variant
        name = variant if arch == "ifaformer" else arch
        standard = train(
            replace(
                cfg,
                variant=variant,
                architecture=arch,
                output_dir=str(out / name / "standard"),
                shuffle_train_images=False,
            ),
            progress_callback=progress_callback,
        )
        shuffled = train(
            replace(
                cfg,
                variant=variant,
                architecture=arch,
                output_dir=str(out / name / "shuffle_train"),
                shuffle_train_images=True,
            ),
            progress_callback=progress_callback,
        )
        runs = {
            "standard": (standard, None),
            "shuffle_train": (shuffled, None),
            "shuffle_test": (standard, cfg.seed),
        }
        for setting, (result, shuffle_seed) in runs.items():
            metrics = evaluate_checkpoint(result.best_dir, records, shuffle_seed, cfg.feature_cache)
            rows.append(
                {
                    "model": name,
                    "architecture": arch,
                    "variant": variant,
                    "setting": setting,
                    "eval_split": eval_split,
                    "model_version": result.version_id,
                    "records_with_image": report.with_image,
                    "records": report.records,
                    **{k: metrics[k] for k in ("accuracy", "precision", "recall", "f1")},
                }
            )
    out.mkdir(parents=True, exist_ok=True)
    (out / "shuffle_table.json").write_text(json.dumps(rows, indent=2))
    (out / "shuffle_table.md").write_text(format_shuffle_table(rows))
    return rows


def format_shuffle_table(rows: list[dict]) -> str:
    """Markdown in the layout of the paper's Table 1 (Acc / P / R / F1 per setting)."""
    models = list(dict.fromkeys(row["model"] for row in rows))
    head = "| model | " + " | ".join(f"{setting} Acc | P | R | F1" for setting in SETTINGS) + " |"
    lines = [head, "|" + "---|" * (1 + 4 * len(SETTINGS))]
    for model_name in models:
        cells = []
        for setting in SETTINGS:
            row = next(
                (run for run in rows if run["model"] == model_name and run["setting"] == setting), None
            )
            cells += [
                f"{100 * row[metric]:.2f}" if row else "-"
                for metric in ("accuracy", "precision", "recall", "f1")
            ]
        lines.append(f"| {model_name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model.shuffle", add_help=False)
    ap.add_argument("--variants", nargs="+", default=["objects"])
    ap.add_argument("--eval-split", default="test")
    ap.add_argument("--out", default="")
    known, rest = ap.parse_known_args(argv)
    try:
        cfg = parse_config(rest)
        rows = run_shuffle_experiment(cfg, known.variants, known.eval_split, known.out)
    except (DataFormatError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_shuffle_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
