"""Records/s of `python -m model.predict` on CPU, against the bare model call measured in the same run.

Model: the offline default `objects` IFAformer (MiniLM-L6 text + EfficientNet-Lite0 visual stream; untrained fusion
and classifier weights, which cost the same as trained ones). Posts: synthetic image posts (model.synthetic, 224 px).
Rows, each timed over the same posts after a warm-up batch:

- bare model: prepare_examples + predict_probabilities on in-memory records with their image (what the app's batch
  step does), features computed fresh;
- model.predict without grounding: the same posts read from JSONL, parsed, predicted and written;
- model.predict with the CAM fallback grounder: + grounding and up to 3 crops per post fed to the model;
- model.predict, text-only posts (no image).

Streaming: resident memory after 1/10 of a long text-only run and at its end (constant memory means the two match).

    nice -n 10 python benchmarks/bench_predict.py [--posts 64] [--batch-size 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.batching import prepare_examples  # noqa: E402
from model.checkpoint import load_checkpoint  # noqa: E402
from model.encoders import build_model  # noqa: E402
from model.evaluate import predict_probabilities  # noqa: E402
from model.mnre_format import load_split  # noqa: E402
from model.predict import build_predictor, numbered_lines, predict_stream  # noqa: E402
from model.synthetic import MNRE_LABELS, generate  # noqa: E402
from model.visual_features import FeatureCache  # noqa: E402


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_posts(records, path: Path, with_image: bool = True) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for i, rec in enumerate(records):
            post = {
                "id": i,
                "tokens": rec.tokens,
                "head": [rec.head.start, rec.head.end],
                "tail": [rec.tail.start, rec.tail.end],
            }
            if with_image:
                post["image"] = str(rec.image_path)
            fh.write(json.dumps(post) + "\n")


def time_predict(predictor, path: Path, batch_size: int) -> tuple[float, int]:
    start = time.perf_counter()
    n = 0
    with open(os.devnull, "w") as sink:
        for result in predict_stream(predictor, numbered_lines(path), batch_size, path.parent):
            assert "error" not in result, result
            sink.write(json.dumps(result) + "\n")
            n += 1
    return time.perf_counter() - start, n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--posts", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stream-posts", type=int, default=2000, help="text-only posts of the memory run")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("predict.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = generate(tmp / "synthetic", {"test": args.posts + args.batch_size}, images_per_label=8, seed=0)
        records, _, _ = load_split(root, "test")
        # the synthetic set ships crops; the bare call gets the image only, like model.predict without grounding
        records = [replace(r, crop_paths=[]) for r in records]
        warm, timed = records[: args.batch_size], records[args.batch_size :]
        model, tokenizer = build_model("objects", MNRE_LABELS)
        model.save_pretrained(tmp / "ckpt", tokenizer)
        model, tokenizer = load_checkpoint(tmp / "ckpt")
        for name, recs, with_image in (("warm", warm, True), ("posts", timed, True), ("text", timed, False)):
            write_posts(recs, tmp / f"{name}.jsonl", with_image)

        def bare(recs) -> float:
            start = time.perf_counter()
            prepared = prepare_examples(recs, tokenizer, model.config, None, FeatureCache(None))
            predict_probabilities(model, prepared.examples, tokenizer.pad_token_id, args.batch_size)
            return time.perf_counter() - start

        plain = build_predictor(None, model, tokenizer, ground=False)
        grounded = build_predictor(None, model, tokenizer, ground=True)
        paths = [
            ("bare model call (prepare_examples + predict_probabilities), image", None, "posts"),
            ("model.predict, image, no grounding", plain, "posts"),
            ("model.predict, image + CAM-fallback grounding (crops fed to the model)", grounded, "posts"),
            ("model.predict, text-only posts (no image)", plain, "text"),
        ]

        def run(predictor, name) -> tuple[float, int]:
            if predictor is None:
                return bare(timed), len(timed)
            return time_predict(predictor, tmp / f"{name}.jsonl", args.batch_size)

        bare(warm)
        for _, predictor, _ in paths[1:]:
            time_predict(predictor, tmp / "warm.jsonl", args.batch_size)
        # interleaved repeats, median per path: the machine is shared, so load shifts during the run
        times: dict[str, list[float]] = {label: [] for label, _, _ in paths}
        counts: dict[str, int] = {}
        for _ in range(args.repeats):
            for label, predictor, name in paths:
                seconds, counts[label] = run(predictor, name)
                times[label].append(seconds)
        rows = [(label, statistics.median(times[label]), counts[label]) for label, _, _ in paths]
        bare_s = rows[0][1]

        # streaming memory: a long text-only run, resident memory after a tenth and at the end
        long = tmp / "long.jsonl"
        with open(long, "w", encoding="utf-8") as fh:
            for i in range(args.stream_posts):
                rec = timed[i % len(timed)]
                fh.write(
                    json.dumps(
                        {
                            "id": i,
                            "tokens": rec.tokens,
                            "head": [rec.head.start, rec.head.end],
                            "tail": [rec.tail.start, rec.tail.end],
                        }
                    )
                    + "\n"
                )
        marks = {}
        start = time.perf_counter()
        for k, _ in enumerate(predict_stream(plain, numbered_lines(long), args.batch_size), start=1):
            if k in (args.stream_posts // 10, args.stream_posts):
                marks[k] = rss_mib()
        stream_s = time.perf_counter() - start

    lines = [
        "# Prediction on new posts (`python -m model.predict`)",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()} "
        f"({os.cpu_count()} cores, shared with other jobs, run under nice), torch {torch.__version__}, "
        f"load average {os.getloadavg()[0]:.1f} at the end, "
        f"{args.threads} torch thread(s), batch {args.batch_size}, seed 0. Model: offline default `objects` "
        "IFAformer (MiniLM-L6 + EfficientNet-Lite0, visual MLP default), untrained fusion weights. Posts: "
        f"{len(timed)} synthetic image posts (`model.synthetic`, 224 px), after a warm-up batch; median of "
        f"{args.repeats} interleaved repeats. Command: "
        "`nice -n 10 python benchmarks/bench_predict.py`.",
        "",
        "| path | posts | seconds | records/s | vs bare model |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, seconds, n in rows:
        lines.append(f"| {label} | {n} | {seconds:.2f} | {n / seconds:.1f} | {bare_s / seconds:.2f}x |")
    first, last = args.stream_posts // 10, args.stream_posts
    lines += [
        "",
        f"Streaming: {last} text-only posts in {stream_s:.1f} s ({last / stream_s:.1f} records/s); resident memory "
        f"{marks.get(first, float('nan')):.0f} MiB after {first} posts and {marks.get(last, float('nan')):.0f} MiB "
        f"after {last} (input read and output written one batch at a time).",
        "",
    ]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
