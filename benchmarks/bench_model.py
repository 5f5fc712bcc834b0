"""Training-step and inference throughput of `objects` vs `text_only` (offline default encoders, batch 32, CPU).

Visual features are cached EfficientNet-Lite0 grids (as in training), so the figure is the cost of the visual stream
and the cross-modal attention, not of the CNN. Both variants run interleaved, in the same process, on the same
batches of synthetic posts that all have an image and a crop; the ratio is what to read.

    python benchmarks/bench_model.py [--steps 6] [--threads 1] [--out benchmarks/model.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.batching import collate, prepare_examples  # noqa: E402
from model.data import load_split  # noqa: E402
from model.encoders import build_model  # noqa: E402
from model.synthetic import MNRE_LABELS, generate  # noqa: E402
from model.train import param_groups  # noqa: E402
from model.visual_features import FeatureCache  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6, help="timed steps per variant and mode")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument(
        "--mnre",
        default=str(Path(__file__).resolve().parents[2] / "shared" / "mnre"),
        help="MNRE folder whose val texts replace the synthetic ones (skipped when absent)",
    )
    ap.add_argument(
        "--vision-config", default=None, help="JSON vision_config of the objects model (default: the default)"
    )
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        root = generate(Path(tmp) / "syn", {"train": args.batch_size * 4}, images_per_label=4, seed=0)
        records, _, _ = load_split(root, "train")
        if args.mnre and (Path(args.mnre) / "txt" / "ours_val.txt").is_file():
            # real MNRE texts (realistic lengths: ~31 word pieces), each given a synthetic image and crop
            texts, _, _ = load_split(args.mnre, "val", check_images=False)
            for rec, text in zip(records, texts, strict=False):
                rec.tokens, rec.head, rec.tail = text.tokens, text.head, text.tail
        cache = FeatureCache(Path(tmp) / "features")
        setups = {}
        for variant in ("text_only", "objects"):
            model, tok = build_model(
                variant,
                MNRE_LABELS,
                vision_config=json.loads(args.vision_config) if args.vision_config else None,
            )
            data = prepare_examples(records, tok, model.config, 80, cache)
            batches = [
                collate(data.examples[i : i + args.batch_size], tok.pad_token_id)
                for i in range(0, len(data.examples), args.batch_size)
            ]
            opt = torch.optim.AdamW(param_groups(model, 0.01), lr=1e-5)
            setups[variant] = (model, batches, opt)

        def train_step(variant: str, batch) -> float:
            model, _, opt = setups[variant]
            model.train()
            t = time.perf_counter()
            loss = model(**batch).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            return time.perf_counter() - t

        @torch.no_grad()
        def infer_step(variant: str, batch) -> float:
            model = setups[variant][0].eval()
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            t = time.perf_counter()
            model(**inputs)
            return time.perf_counter() - t

        times = {(v, m): [] for v in setups for m in ("train", "infer")}
        for step in range(args.steps + 1):  # step 0 warms up
            for variant, (_, batches, _) in setups.items():
                batch = batches[step % len(batches)]
                tr, inf = train_step(variant, batch), infer_step(variant, batch)
                if step:
                    times[(variant, "train")].append(tr)
                    times[(variant, "infer")].append(inf)

    text_source = "MNRE val" if args.mnre and (Path(args.mnre) / "txt").is_dir() else "synthetic"
    mean_len = statistics.mean(
        int(b["attention_mask"].sum()) / len(b["attention_mask"]) for b in setups["text_only"][1]
    )
    rows = []
    for mode in ("train", "infer"):
        base = statistics.median(times[("text_only", mode)])
        for variant in setups:
            med = statistics.median(times[(variant, mode)])
            rows.append((mode, variant, med, args.batch_size / med, med / base))
    lines = [
        f"# IFAformer throughput, batch {args.batch_size}, CPU",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()} "
        f"({torch.get_num_threads()} torch thread(s), 2-core machine), median of {args.steps} steps after one "
        "warm-up; offline default encoders (MiniLM-L6 + cached EfficientNet-Lite0 features); every post has an image "
        f"and one crop (52 visual tokens for `objects`); texts: {text_source}; mean text length "
        f"{mean_len:.1f} word pieces.",
        "",
        "| mode | variant | s / batch | records / s | ratio to text_only |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [f"| {m} step | {v} | {s:.3f} | {r:.1f} | {x:.2f} |" for m, v, s, r, x in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
