"""Evaluation: accuracy over all records, micro P/R/F1 over the non-None labels, per-label table, confusion matrix.

python -m model.evaluate --model runs/objects/best --data ../shared/mnre --split val [--shuffle-images] --out m.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from model.batching import collate, length_bucketed_batches, prepare_examples
from model.checkpoint import checkpoint_preprocessing, load_checkpoint, preprocessing
from model.data import DataFormatError, Record, load_split
from model.visual_features import FeatureCache

NONE_LABEL = "None"


def compute_metrics(
    gold: list[int], pred: list[int], label_names: list[str], none_label: str = NONE_LABEL
) -> dict:
    """Acc over all records; micro P/R/F1 with correct = pred == gold != None, guessed = pred != None,
    gold = gold != None (the MNRE convention)."""
    if len(gold) != len(pred):
        raise ValueError("gold and pred differ in length")
    none_id = label_names.index(none_label)
    n = len(gold)
    correct = sum(g == p for g, p in zip(gold, pred, strict=True))
    tp = sum(g == p != none_id for g, p in zip(gold, pred, strict=True))
    guessed = sum(p != none_id for p in pred)
    actual = sum(g != none_id for g in gold)
    precision = tp / guessed if guessed else 0.0
    recall = tp / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    k = len(label_names)
    confusion = [[0] * k for _ in range(k)]  # rows gold, columns predicted
    for g, p in zip(gold, pred, strict=True):
        confusion[g][p] += 1
    per_label = {}
    for i, name in enumerate(label_names):
        support = sum(confusion[i])
        predicted = sum(row[i] for row in confusion)
        hit = confusion[i][i]
        p_i = hit / predicted if predicted else 0.0
        r_i = hit / support if support else 0.0
        per_label[name] = {
            "precision": p_i,
            "recall": r_i,
            "f1": 2 * p_i * r_i / (p_i + r_i) if p_i + r_i else 0.0,
            "support": support,
            "predicted": predicted,
        }
    return {
        "accuracy": correct / n if n else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "records": n,
        "per_label": per_label,
        "confusion": confusion,
        "labels": list(label_names),
    }


@torch.no_grad()
def predict_logits(model, examples, pad_id: int, batch_size: int = 64, device: str = "cpu") -> torch.Tensor:
    """(N, num_labels) raw logits in the order of `examples` (no decision bias)."""
    model.eval()
    order = length_bucketed_batches([len(e.input_ids) for e in examples], batch_size, seed=0, shuffle=False)
    logits = torch.zeros(len(examples), model.config.num_labels)
    for idx in order:
        batch = {
            k: v.to(device)
            for k, v in collate([examples[i] for i in idx], pad_id, model.config.vision_backbone).items()
        }
        batch.pop("labels")
        logits[idx] = model(**batch).logits.float().cpu()
    return logits


def decision_logits(logits: torch.Tensor, config, none_bias: float | None = None) -> torch.Tensor:
    """Logits with the model's decision bias added to "None" (preprocessing(config).none_bias unless given).

    Every prediction (evaluation, the app, explanations' predicted label) goes through this, so the stored bias is
    applied the same way everywhere; probabilities are the softmax of these logits.
    """
    bias = preprocessing(config).none_bias if none_bias is None else none_bias
    if not bias:
        return logits
    adjusted = logits.clone()
    adjusted[..., list(config.label_names).index(NONE_LABEL)] += bias
    return adjusted


def predict_probabilities(
    model, examples, pad_id: int, batch_size: int = 64, device: str = "cpu"
) -> torch.Tensor:
    """(N, num_labels) probabilities (softmax of decision_logits) in the order of `examples`."""
    return torch.softmax(
        decision_logits(predict_logits(model, examples, pad_id, batch_size, device), model.config), -1
    )


# candidate offsets on the "None" logit; logits of a trained model span a few units
NONE_BIAS_GRID = [round(0.1 * i, 1) for i in range(-60, 61)]


def tune_none_bias(logits: torch.Tensor, gold: list[int], label_names: list[str]) -> float:
    """The offset on the "None" logit that maximises micro-F1 on (val) logits; ties go to the smallest |offset|."""
    none_id = list(label_names).index(NONE_LABEL)
    gold_t = torch.tensor(gold)
    best_bias, best_f1 = 0.0, -1.0
    for bias in sorted(NONE_BIAS_GRID, key=abs):
        adjusted = logits.clone()
        adjusted[:, none_id] += bias
        pred = adjusted.argmax(-1)
        tp = int(((pred == gold_t) & (gold_t != none_id)).sum())
        guessed, actual = int((pred != none_id).sum()), int((gold_t != none_id).sum())
        p = tp / guessed if guessed else 0.0
        r = tp / actual if actual else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        if f1 > best_f1 + 1e-12:
            best_bias, best_f1 = bias, f1
    return best_bias


def metrics_from_logits(
    logits: torch.Tensor, gold: list[int], config, none_bias: float | None = None
) -> dict:
    """Metrics of the biased decision, with the plain-argmax figures under "without_bias" and the bias used."""
    bias = preprocessing(config).none_bias if none_bias is None else none_bias
    pred = decision_logits(logits, config, bias).argmax(-1).tolist()
    metrics = compute_metrics(gold, pred, config.label_names)
    plain = compute_metrics(gold, logits.argmax(-1).tolist(), config.label_names)
    metrics["none_bias"] = bias
    metrics["without_bias"] = {k: plain[k] for k in ("accuracy", "precision", "recall", "f1")}
    return metrics


def evaluate_examples(model, examples, pad_id: int, batch_size: int = 64, device: str = "cpu") -> dict:
    logits = predict_logits(model, examples, pad_id, batch_size, device)
    return metrics_from_logits(logits, [e.label for e in examples], model.config)


def evaluate_checkpoint(
    model_dir: str | Path,
    records: list[Record],
    shuffle_images_seed: int | None = None,
    feature_cache: str | Path | None = None,
    max_length: int | None = None,
    batch_size: int = 64,
    device: str = "cpu",
) -> dict:
    """Metrics of a checkpoint on records, built with the checkpoint's preprocessing (max_length None: its own)."""
    model, tokenizer = load_checkpoint(model_dir, device)
    prepared = prepare_examples(
        records, tokenizer, model.config, max_length, FeatureCache(feature_cache), shuffle_images_seed
    )
    metrics = evaluate_examples(model, prepared.examples, tokenizer.pad_token_id, batch_size, device)
    metrics["visual_inputs"] = dict(prepared.stats)
    metrics["model_version"] = model.config.version_id
    return metrics


def grounding_dir_for(model_dir: str | Path, requested: str | None) -> str | None:
    """The grounding folder to evaluate with: the one asked for ('none': the dataset's crops), else the model's."""
    if requested is not None:
        if requested.lower() == "none":
            return None
        if not Path(requested).is_dir():
            raise FileNotFoundError(f"--grounding-dir {requested}: no such folder")
        return requested
    stored = checkpoint_preprocessing(model_dir).grounding_dir
    if stored and not Path(stored).is_dir():
        raise FileNotFoundError(
            f"{model_dir} was trained with the grounding crops in {stored}, which is not here; "
            "pass --grounding-dir (or 'none' for the dataset's crops)"
        )
    return stored


def format_table(metrics: dict) -> str:
    lines = [f"{'label':32s} {'P':>6s} {'R':>6s} {'F1':>6s} {'support':>8s}"]
    for name, m in metrics["per_label"].items():
        lines.append(
            f"{name:32s} {100 * m['precision']:6.2f} {100 * m['recall']:6.2f} {100 * m['f1']:6.2f} "
            f"{m['support']:8d}"
        )
    lines.append(
        f"Acc {100 * metrics['accuracy']:.2f}  P {100 * metrics['precision']:.2f}  "
        f"R {100 * metrics['recall']:.2f}  micro-F1 {100 * metrics['f1']:.2f}  ({metrics['records']} records)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model.evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="checkpoint folder")
    ap.add_argument("--data", required=True, help="MNRE folder (DeepKE layout)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--shuffle-images", action="store_true", help="give each record another record's image")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-bad", action="store_true", help="skip malformed lines and report them")
    ap.add_argument("--feature-cache", default="var/features")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument(
        "--grounding-dir",
        help="crops from `python -m model.grounding` (default: the folder the checkpoint was trained with; "
        "'none': the dataset's img_vg crops)",
    )
    ap.add_argument("--out", help="write the metrics as JSON here")
    args = ap.parse_args(argv)
    try:
        records, _, report = load_split(args.data, args.split, skip_bad=args.skip_bad)
        print(report.summary(), file=sys.stderr)
        for msg in report.skipped:
            print(f"skipped: {msg}", file=sys.stderr)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        grounding_dir = grounding_dir_for(args.model, args.grounding_dir)
        if grounding_dir:
            from model.grounding import apply_grounding

            counts = apply_grounding(records, grounding_dir, args.split)
            print(f"grounding crops from {grounding_dir}: {counts}", file=sys.stderr)
        metrics = evaluate_checkpoint(
            args.model,
            records,
            args.seed if args.shuffle_images else None,
            args.feature_cache,
            batch_size=args.batch_size,
            device=device,
        )
    except (DataFormatError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    metrics["split"], metrics["shuffled_images"] = args.split, args.shuffle_images
    metrics["grounding_dir"] = grounding_dir
    print(format_table(metrics))
    plain = metrics["without_bias"]
    print(f"None bias {metrics['none_bias']:+.1f}; without it: micro-F1 {100 * plain['f1']:.2f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
