"""Dataset-level tables from stored evaluation runs: the visual shuffle (paper Table 1) and the variant ablation
(paper Table 2). Runs are dicts like the rows model/shuffle.py writes: model, architecture, variant, setting
(standard | shuffle_train | shuffle_test), accuracy, precision, recall, f1, eval_split, model_version, and the
run's purpose when one was stored. Several runs of one model and setting (seeds) are averaged, and their count and
spread are kept. Runs stored for another purpose than the experiments (OUTSIDE_TABLES: a retraining's before/after
evaluations) are left out of both tables: a fine-tuned objects model would otherwise become Table 2's full model."""

from __future__ import annotations

import numpy as np

SETTINGS = ("standard", "shuffle_train", "shuffle_test")
# the purposes app.services.retrain stores its two evaluations under
RETRAIN_BASELINE, RETRAIN_RESULT = "retrain baseline", "retrain result"
OUTSIDE_TABLES = frozenset({RETRAIN_BASELINE, RETRAIN_RESULT})
METRICS = ("accuracy", "precision", "recall", "f1")
# the paper's Table 2 order, full model last
VARIANT_ORDER = (
    "text_only",
    "vanilla",
    "no_text_attn",
    "objects",
)
# The paper's Table 2 F1 (bert-base + CLIP on MNRE test), for reference beside our own numbers.
PAPER_F1 = {"text_only": 59.32, "mega": 66.41, "vanilla": 68.99, "no_text_attn": 64.23, "objects": 81.67}
PAPER_NAMES = {
    "text_only": "BERT (text only)",
    "mega": "MEGA",
    "vanilla": "Vanilla IFAformer",
    "no_text_attn": "w/o Text Attn",
    "objects": "w/ Visual Objects",
}


def _check(run: dict) -> None:
    missing = [k for k in ("model", "setting", *METRICS) if k not in run]
    if missing:
        raise ValueError(f"evaluation run lacks {missing}: {run}")


def _group(runs: list[dict]) -> dict[tuple[str, str, str], list[dict]]:
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for run in runs:
        if run.get("purpose") in OUTSIDE_TABLES:
            continue
        _check(run)
        groups.setdefault((run["model"], run.get("eval_split", ""), run["setting"]), []).append(run)
    return groups


def _mean(rows: list[dict], metric: str) -> float:
    return float(np.mean([row[metric] for row in rows]))


def shuffle_table(runs: list[dict]) -> list[dict]:
    """One row per (model, eval_split): mean metrics per setting (`standard_f1`, `shuffle_test_accuracy`, ...),
    `n_<setting>` run counts, `f1_std_<setting>`, and the drops `f1_drop_shuffle_train` / `f1_drop_shuffle_test`
    (standard - shuffled; a model that uses the image drops, one that ignores it does not). Missing settings are
    None."""
    groups = _group(runs)
    keys = list(dict.fromkeys((group_model, group_split) for group_model, group_split, _ in groups))
    table = []
    for model, split in keys:
        first = next(
            group_runs[0]
            for (group_model, group_split, _), group_runs in groups.items()
            if (group_model, group_split) == (model, split)
        )
        row = {
            "model": model,
            "architecture": first.get("architecture", ""),
            "variant": first.get("variant", ""),
            "eval_split": split,
        }
        for setting in SETTINGS:
            setting_runs = groups.get((model, split, setting), [])
            row[f"n_{setting}"] = len(setting_runs)
            row[f"f1_std_{setting}"] = (
                float(np.std([run["f1"] for run in setting_runs])) if setting_runs else None
            )
            for metric in METRICS:
                row[f"{setting}_{metric}"] = _mean(setting_runs, metric) if setting_runs else None
            row[f"{setting}_model_versions"] = [run.get("model_version", "") for run in setting_runs]
        for setting in ("shuffle_train", "shuffle_test"):
            std, shuffled = row["standard_f1"], row[f"{setting}_f1"]
            row[f"f1_drop_{setting}"] = std - shuffled if std is not None and shuffled is not None else None
        table.append(row)
    return table


def ablation_table(runs: list[dict]) -> list[dict]:
    """One row per (model, eval_split) from the `standard` runs, in the paper's Table 2 order: mean metrics,
    `n_runs`, `f1_vs_full` (F1 minus the full `objects` model's F1 on the same split, None without one), and the
    paper's F1 for the same variant (`paper_f1`, `paper_name`) for reference."""
    groups = {
        group_key: group_runs for group_key, group_runs in _group(runs).items() if group_key[2] == "standard"
    }
    rows = []
    for (model, split, _), group_runs in groups.items():
        variant = group_runs[0].get("variant", "")
        key = "mega" if group_runs[0].get("architecture") == "mega" or model == "mega" else variant
        row = {
            "model": model,
            "architecture": group_runs[0].get("architecture", ""),
            "variant": variant,
            "eval_split": split,
            "n_runs": len(group_runs),
            **{metric: _mean(group_runs, metric) for metric in METRICS},
            "f1_std": float(np.std([run["f1"] for run in group_runs])),
            "model_versions": [run.get("model_version", "") for run in group_runs],
            "paper_name": PAPER_NAMES.get(key, ""),
            "paper_f1": PAPER_F1.get(key),
        }
        rows.append(row)
    full = {
        table_row["eval_split"]: table_row["f1"]
        for table_row in rows
        if table_row["variant"] == "objects" and table_row["architecture"] != "mega"
    }
    for table_row in rows:
        table_row["f1_vs_full"] = (
            table_row["f1"] - full[table_row["eval_split"]] if table_row["eval_split"] in full else None
        )

    def order(table_row: dict) -> tuple[int, str]:
        if table_row["architecture"] == "mega" or table_row["model"] == "mega":
            return (0, table_row["model"])  # baselines first, as in the paper
        rank = VARIANT_ORDER.index(table_row["variant"]) + 1 if table_row["variant"] in VARIANT_ORDER else 0
        return (rank, table_row["model"])

    return sorted(rows, key=order)
