"""Review-app responsiveness on CPU, measured with Streamlit's AppTest (the server-side cost of each interaction).

    python benchmarks/bench_app.py [--model runs/mnre_objects/best] [--repeat 5] [--out benchmarks/app.md]

A temporary label store holds the synthetic demo data (120 pairs) and one model version: --model, else a fresh
IFAformer objects variant with the offline MiniLM-L6 text encoder and EfficientNet-Lite0 features (random
classifier; the compute is the real model's). Predictions are stored first, as app.prepare does.
Timed: the first render of Review and of Inspect in a new AppTest session (the baseline: the app's engine and all
Streamlit caches empty, modules already imported by the seeding step; Inspect computes attention, attributions,
faithfulness and reliance) against interactions on cached posts: next,
previous, accept (writes a row), and changing the attention layer / head on Inspect. Target: < 1 s each.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TORCH_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(int(os.environ["TORCH_NUM_THREADS"]))

from streamlit.testing.v1 import AppTest  # noqa: E402

MAIN = str(REPO / "app" / "main.py")


def seed_store(folder: Path, model_dir: Path | None) -> tuple[str, str]:
    from sqlalchemy import select

    from app.inference import predict_and_store
    from db.io import import_mnre
    from db.models import EntityPair
    from db.queries import register_checkpoint, set_active
    from db.schema import open_database
    from model.encoders import build_model
    from model.evaluate import load_checkpoint
    from model.synthetic import MNRE_LABELS, generate

    data = generate(folder / "synthetic", {"train": 80, "val": 40}, images_per_label=5, seed=0)
    if model_dir is None:
        model_dir = folder / "model"
        model, tokenizer = build_model("objects", MNRE_LABELS, "minilm")
        model.save_pretrained(model_dir, tokenizer)
    url = f"sqlite:///{folder / 'bench.db'}"
    engine, sessions = open_database(url)
    with sessions.begin() as s:
        import_mnre(s, data, dataset="synthetic")
        version = register_checkpoint(s, model_dir)
        set_active(s, version.version_id)
        version_pk, version_id = version.id, version.version_id
    model, tokenizer = load_checkpoint(model_dir)
    with sessions() as s:
        ids = list(s.scalars(select(EntityPair.id).order_by(EntityPair.id)))
    predict_and_store(sessions, model, tokenizer, version_pk, ids)
    engine.dispose()
    return url, version_id


def timed(action) -> float:
    t0 = time.perf_counter()
    at = action()
    elapsed = time.perf_counter() - t0
    if at.exception:
        raise RuntimeError([e.value for e in at.exception])
    return elapsed


def bench(url: str, repeat: int) -> dict[str, list[float]]:
    os.environ["DATABASE_URL"] = url
    times: dict[str, list[float]] = {
        k: []
        for k in (
            "first render: Review (new session)",
            "next (new post)",
            "previous (cached post)",
            "next (cached post)",
            "accept (saves, moves on)",
            "first render: Inspect (computes everything)",
            "Inspect: change layer",
            "Inspect: change head",
            "Inspect: rollout on",
        )
    }
    at = AppTest.from_file(MAIN, default_timeout=600)
    at.session_state["reviewer"] = "bench"
    at.run()
    at.switch_page("views/review.py")
    times["first render: Review (new session)"].append(timed(at.run))
    for _ in range(repeat):
        times["next (new post)"].append(timed(lambda: at.button(key="review_next").click().run()))
        times["previous (cached post)"].append(timed(lambda: at.button(key="review_prev").click().run()))
        times["next (cached post)"].append(timed(lambda: at.button(key="review_next").click().run()))
        times["accept (saves, moves on)"].append(timed(lambda: at.button(key="review_accept").click().run()))
    at.switch_page("views/inspect.py")
    times["first render: Inspect (computes everything)"].append(timed(at.run))
    layers = at.selectbox(key="inspect_layer").options
    heads = at.selectbox(key="inspect_head").options
    for k in range(repeat):
        layer = layers[1 + k % (len(layers) - 1)]
        times["Inspect: change layer"].append(
            timed(lambda layer=layer: at.selectbox(key="inspect_layer").set_value(layer).run())
        )
        head = heads[1 + k % (len(heads) - 1)]
        times["Inspect: change head"].append(
            timed(lambda head=head: at.selectbox(key="inspect_head").set_value(head).run())
        )
    times["Inspect: rollout on"].append(timed(lambda: at.toggle(key="inspect_rollout").set_value(True).run()))
    return times


def report(
    times: dict[str, list[float]], model: str, load: tuple[float, float, float], seconds: float
) -> str:
    base_review = times["first render: Review (new session)"][0]
    base_inspect = times["first render: Inspect (computes everything)"][0]
    lines = [
        "# Review app responsiveness (AppTest, CPU)",
        "",
        f"Measured {dt.date.today():%Y-%m-%d} by `python benchmarks/bench_app.py` on {platform.machine()} with "
        f"{os.cpu_count()} CPU cores (torch {torch.__version__}, {torch.get_num_threads()} torch thread). "
        f"The cores were shared with training runs: load average at the start "
        f"{load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f} (above 2 = contended), so expect +-30%. Model: {model}. "
        "Times are AppTest's full server-side rerun (script, database reads and writes, cached results, element "
        "tree), not the browser's paint; a fragment rerun in the browser does less than this whole-page rerun.",
        "",
        "| interaction | median s | max s | runs | ratio to its page's first render |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, values in times.items():
        base = base_inspect if "Inspect" in name else base_review
        lines.append(
            f"| {name} | {statistics.median(values):.3f} | {max(values):.3f} | {len(values)} | "
            f"{statistics.median(values) / base:.2f} |"
        )
    worst = max(max(v) for k, v in times.items() if not k.startswith("first render"))
    lines += [
        "",
        f"Slowest interaction on a cached post: {worst:.3f} s ({'meets' if worst < 1 else 'misses'} the < 1 s "
        f"target). Whole benchmark {seconds:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="checkpoint folder (default: a fresh MiniLM objects model)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "app.md")
    args = ap.parse_args(argv)
    load = os.getloadavg()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MRELENS_FEATURE_CACHE"] = str(Path(tmp) / "features")
        url, version = seed_store(Path(tmp), args.model)
        times = bench(url, args.repeat)
    text = report(
        times,
        f"`{version}`" + ("" if args.model else " (fresh MiniLM-L6 + EfficientNet-Lite0)"),
        load,
        time.perf_counter() - t0,
    )
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
