"""Text encoders compared: cost per training step, per-post inference latency, and val quality of training runs.

    python benchmarks/bench_encoders.py cost [--encoders minilm mpnet] [--variants text_only objects] [--steps 3]
                                             [--threads 1] [--precisions fp32 bf16]
    python benchmarks/bench_encoders.py runs --section NAME --title TEXT RUN_DIR [RUN_DIR ...]

`cost` builds a text_only and an objects IFAformer per encoder (real weights; `mpnet` needs `make mpnet`) and, in one
process with the encoders interleaved step by step, times (1) a training step (forward + backward + AdamW step) on
a batch of 32 x 80 word pieces with no padding, (2) the same on 32 real MNRE val posts (padded to the longest, as
training batches them), (3) per-post inference through model.evaluate.predict_probabilities, the function the app
calls, one post at a time, on real MNRE val posts. objects steps give every post an image and 3 crops (random cached
features, so the EfficientNet cost, the same for every text encoder, is left out). With --precisions, each training
step is timed under each precision (model.train.training_autocast), interleaved too.
`runs` reads training run folders (model.train's history.json, train_config.json) and tabulates them (with
--per-epoch also every epoch of each run, as benchmarks/recipe_report.py prints them).

Each command rewrites only its own section of --out (default benchmarks/encoders.md), so CPU and GPU figures
measured by different sessions stay side by side.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from model.batching import collate, prepare_examples  # noqa: E402
from model.data import load_split  # noqa: E402
from model.encoders import build_model, resolve_text_encoder  # noqa: E402
from model.evaluate import predict_probabilities  # noqa: E402
from model.synthetic import MNRE_LABELS  # noqa: E402
from model.train import PRECISIONS, param_groups, training_autocast  # noqa: E402
from model.visual_features import FeatureCache  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from recipe_report import seed_table  # noqa: E402

DEFAULT_MNRE = REPO.parent / "shared" / "mnre"
DEFAULT_OUT = REPO / "benchmarks" / "encoders.md"
HEADER = "# Text encoders: cost and quality\n"


def replace_section(path: Path, name: str, body: str) -> None:
    """Write body as section `name` of the markdown file, keeping every other section as it is."""
    start, end = f"<!-- section: {name} -->", f"<!-- end: {name} -->"
    block = f"{start}\n{body.rstrip()}\n{end}\n"
    text = path.read_text(encoding="utf-8") if path.is_file() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    path.write_text(text, encoding="utf-8")


def parameter_count(model) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


# ---------------------------------------------------------------------------------------------------------------
# cost


def full_length_batch(vocab_size: int, special_ids: set[int], batch: int, length: int, seed: int) -> dict:
    """batch x length word pieces, no padding; head at position 1, tail at 5 (the cost does not depend on them)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, vocab_size - 10, (batch, length), generator=g)
    ids = torch.where(torch.isin(ids, torch.tensor(sorted(special_ids))), 1000, ids)
    return {
        "input_ids": ids,
        "attention_mask": torch.ones(batch, length, dtype=torch.long),
        "head_index": torch.full((batch,), 1),
        "tail_index": torch.full((batch,), 5),
        "labels": torch.randint(0, len(MNRE_LABELS), (batch,), generator=g),
    }


def with_images(batch: dict, crops: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    b = batch["input_ids"].size(0)
    return {
        **batch,
        "visual_features": torch.randn(b, 49 + crops, 1280, generator=g),
        "image_mask": torch.ones(b, 1 + crops),
    }


def measure_cost(args) -> str:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_before = os.getloadavg()[0]
    device = torch.device(args.device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def to_device(batch: dict) -> dict:
        return {k: v.to(device) for k, v in batch.items()}

    texts, _, _ = load_split(args.mnre, "val", check_images=False)
    posts = texts[: args.batch_size]
    latency_posts = texts[args.batch_size : args.batch_size + args.posts]
    setups = {}
    for encoder in args.encoders:
        for variant in args.variants:
            model, tok = build_model(variant, MNRE_LABELS, encoder)
            # real posts: text only (no image here), encoded exactly as training and the app encode them
            real = prepare_examples(posts, tok, model.config, 80, FeatureCache(None))
            real_batch = collate(real.examples, tok.pad_token_id)
            single = prepare_examples(latency_posts, tok, model.config, 80, FeatureCache(None)).examples
            special = set(tok.all_special_ids)
            full = full_length_batch(len(tok), special, args.batch_size, 80, seed=0)
            if variant == "objects":
                full, real_batch = with_images(full, 3, 1), with_images(real_batch, 3, 2)
            model.to(device)
            opt = torch.optim.AdamW(param_groups(model, 0.01), lr=1e-5)
            setups[(encoder, variant)] = {
                "model": model,
                "opt": opt,
                "full": to_device(full),
                "real": to_device(real_batch),
                "single": single,
                "pad": tok.pad_token_id,
                "params": parameter_count(model),
            }
            print(f"built {encoder} {variant}: {parameter_count(model):.1f}M parameters", flush=True)

    def train_step(s, batch, precision: str) -> float:
        model, opt = s["model"], s["opt"]
        model.train()
        sync()
        t = time.perf_counter()
        # the same context as model.train's loop (autocast computes the loss in float32)
        with training_autocast(device, precision):
            loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync()
        return time.perf_counter() - t

    def latency(s) -> list[float]:
        model = s["model"].eval()
        out = []
        for example in s["single"]:
            t = time.perf_counter()
            predict_probabilities(model, [example], s["pad"], batch_size=1, device=str(device))
            out.append(time.perf_counter() - t)
        return out

    times: dict = {}
    for step in range(args.steps + 1):  # step 0 warms up
        for key, s in setups.items():
            for precision in args.precisions:
                for kind in ("full", "real"):
                    took = train_step(s, s[kind], precision)
                    if step:
                        times.setdefault((key, precision, kind), []).append(took)
            print(f"step {step}: {key} done", flush=True)
    for key, s in setups.items():
        if key[1] == "text_only" or args.objects_latency:
            latency(s)  # warm-up
            times[(key, "latency")] = latency(s)

    mean_len = statistics.mean(
        len(e.input_ids) for e in setups[(args.encoders[0], args.variants[0])]["single"]
    )
    base = args.encoders[0]
    if device.type == "cuda":
        where = f"on {torch.cuda.get_device_name(device)}"
    else:
        # other work on the machine inflates the seconds, not the ratios (steps interleaved in one process)
        where = (
            f"on {platform.machine()} with {os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s), "
            f"1-minute load average {load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end"
        )
    lines = [
        f"## Cost on the {'GPU' if device.type == 'cuda' else 'CPU'}"
        + (f": {' against '.join(args.precisions)}" if len(args.precisions) > 1 else ""),
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC with `python benchmarks/bench_encoders.py cost "
        f"--encoders {' '.join(args.encoders)} --variants {' '.join(args.variants)} --steps {args.steps} "
        f"--threads {args.threads} --device {args.device} --precisions {' '.join(args.precisions)}` {where}. "
        f"torch {torch.__version__}. "
        f"Training step = forward + backward + AdamW step, median of {args.steps} after one warm-up; objects steps "
        "give every post an image and 3 crops (52 visual tokens; cached features, so the CNN is not included). "
        "Precision as model.train's `precision`: bf16 = the forward under bfloat16 autocast, float32 weights and "
        f"optimizer. Ratios against {base} {args.precisions[0]}, same variant.",
        "",
        "| text encoder | variant | precision | parameters | train step 32 x 80 (s) | ratio "
        "| train step 32 real posts (s) | ratio |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for (encoder, variant), s in setups.items():
        full0 = statistics.median(times[((base, variant), args.precisions[0], "full")])
        real0 = statistics.median(times[((base, variant), args.precisions[0], "real")])
        for precision in args.precisions:
            full = statistics.median(times[((encoder, variant), precision, "full")])
            real = statistics.median(times[((encoder, variant), precision, "real")])
            lines.append(
                f"| {encoder} | {variant} | {precision} | {s['params']:.1f}M | {full:.2f} | {full / full0:.1f}x "
                f"| {real:.2f} | {real / real0:.1f}x |"
            )
    real_len = setups[(base, args.variants[0])]["real"]["input_ids"].shape[1]
    lines += [
        "",
        f"32 real posts: MNRE val records 1-32, padded to the longest ({real_len} word pieces for {base}).",
        "",
        f"Per-post inference (model.evaluate.predict_probabilities on one post, as the app calls it; MNRE val "
        f"records {args.batch_size + 1}-{args.batch_size + args.posts}, mean {mean_len:.1f} word pieces, no image):",
        "",
        "| text encoder | variant | median (ms) | 90th percentile (ms) | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for key in setups:
        if (key, "latency") not in times:
            continue
        lat = sorted(times[(key, "latency")])
        base_med = statistics.median(times[((base, key[1]), "latency")])
        med = statistics.median(lat)
        p90 = lat[min(len(lat) - 1, int(0.9 * len(lat)))]
        lines.append(f"| {key[0]} | {key[1]} | {1000 * med:.0f} | {1000 * p90:.0f} | {med / base_med:.1f}x |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# training runs


def encoder_name(cfg: dict) -> str:
    name = cfg.get("text_encoder", "")
    return Path(name).name if "/" in name else name


def runs_table(run_dirs: list[Path], title: str, note: str) -> str:
    rows, by_group = [], {}
    for run in run_dirs:
        history = json.loads((run / "history.json").read_text())
        cfg = json.loads((run / "train_config.json").read_text())
        best = max(history, key=lambda e: e["f1"])
        limit = cfg.get("limit_train")
        what = (
            f"{cfg['epochs']} ep, lr {cfg['lr']:g}, batch {cfg['batch_size']}"
            + (f", first {limit} train records" if limit else ", full train")
            + (f", first {cfg['limit_val']} val" if cfg.get("limit_val") else "")
            + (", bf16 autocast" if cfg.get("precision") == "bf16" else "")
            + (", word embeddings fixed" if cfg.get("freeze_word_embeddings") else "")
        )
        rows.append(
            f"| {encoder_name(cfg)} | {cfg['variant']} | {cfg['seed']} | {what} | {best['epoch']} "
            f"| {100 * best['accuracy']:.2f} | {100 * best['precision']:.2f} | {100 * best['recall']:.2f} "
            f"| {100 * best['f1']:.2f} | {100 * best['f1_without_bias']:.2f} "
            f"| {sum(e['epoch_seconds'] for e in history):.0f} |"
        )
        # seeds of the same setting are averaged; runs that differ in anything else are not
        by_group.setdefault((encoder_name(cfg), cfg["variant"], what), {})[cfg["seed"]] = 100 * best["f1"]
    lines = [
        f"## {title}",
        "",
        note,
        "",
        "Metric: MNRE v2 val; accuracy over all records, micro P/R/F1 over the non-None labels, at the best epoch by "
        "val F1. F1 uses the offset on the None logit that model.train tunes on val after each epoch (so it is "
        "optimistic by that tuning); the next column is without it.",
        "",
        "| text encoder | variant | seed | what was run | best epoch | Acc | P | R | F1 | F1 without None offset "
        "| train + eval s |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    if any(len(v) > 1 for v in by_group.values()):
        lines += [
            "",
            "| text encoder | variant | what was run | seeds | mean F1 |",
            "|---|---|---|---:|---:|",
        ]
        lines += [
            f"| {enc} | {variant} | {what} | {len(f1s)} | {statistics.mean(f1s.values()):.2f} |"
            for (enc, variant, what), f1s in by_group.items()
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    sub = ap.add_subparsers(dest="command", required=True)
    cost = sub.add_parser("cost")
    cost.add_argument("--encoders", nargs="+", default=["minilm", "mpnet"])
    cost.add_argument(
        "--variants", nargs="+", choices=["text_only", "objects"], default=["text_only", "objects"]
    )
    cost.add_argument("--steps", type=int, default=3)
    cost.add_argument("--threads", type=int, default=1)
    cost.add_argument("--batch-size", type=int, default=32)
    cost.add_argument("--posts", type=int, default=20, help="posts timed one by one for the latency")
    cost.add_argument("--objects-latency", action="store_true", help="also time objects models per post")
    cost.add_argument("--mnre", type=Path, default=DEFAULT_MNRE)
    cost.add_argument("--device", default="cpu")
    cost.add_argument(
        "--precisions",
        nargs="+",
        choices=PRECISIONS,
        default=["fp32"],
        help="training-step precisions to time",
    )
    cost.add_argument("--section", default=None, help="default: cost-cpu or cost-cuda")
    runs = sub.add_parser("runs")
    runs.add_argument("run_dirs", nargs="+", type=Path)
    runs.add_argument("--section", required=True)
    runs.add_argument("--title", required=True)
    runs.add_argument("--note", default="", help="what was run, where, on which machine")
    runs.add_argument("--per-epoch", action="store_true", help="also each run's per-epoch val table")
    args = ap.parse_args(argv)
    if args.command == "cost":
        for encoder in args.encoders:
            resolve_text_encoder(encoder)  # a clear error before minutes of work
        body = measure_cost(args)
        args.section = args.section or f"cost-{torch.device(args.device).type}"
    else:
        missing = [str(d) for d in args.run_dirs if not (d / "history.json").is_file()]
        if missing:
            print(f"error: no history.json in {', '.join(missing)}", file=sys.stderr)
            return 2
        body = runs_table(args.run_dirs, args.title, args.note)
        if args.per_epoch:
            body += "\n\n" + "\n".join(seed_table(run)[0] for run in args.run_dirs)
    print(body)
    replace_section(args.out, args.section, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
