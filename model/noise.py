"""Noisy copies of an MNRE-layout folder: known label errors to measure how well a ranking finds them.

    python -m model.noise SRC DEST --rate 0.05 --kind uniform --seed 1 [--split train]

Two kinds of flips, each hitting exactly round(rate * records) records of the split, chosen with the seed:
- uniform: the label becomes any other label of the label map, each equally likely (the usual synthetic noise);
- confusable: the kind of error a person makes, to and from "None" (where TACRED's errors sit; "None" is ~60 % of
  MNRE's pairs): "None" becomes a relation; a relation becomes "None" half the time, otherwise another relation
  with the same entity-type signature (/per/per/parent -> /per/per/siblings).

Only the relation of a flipped line changes; every other line of every file is copied byte for byte, and the
image folders are linked, not copied. DEST/noise.json lists each flip (split, 1-based line, original and new
label), which is the ground truth a ranking is scored against. Imports no torch.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from model.mnre_format import SPLIT_FILES, DataFormatError, read_rel2id

NOISE_KINDS = ("uniform", "confusable")
NONE_LABEL = "None"
MANIFEST = "noise.json"


@dataclass(frozen=True)
class Flip:
    split: str
    line: int  # 1-based line in the split's txt file
    original: str
    noisy: str


def signature(label: str) -> str:
    """The entity-type part of a relation name: "/per/per/parent" -> "/per/per"; "None" has none."""
    return label.rsplit("/", 1)[0] if label.startswith("/") else ""


def flip_target(label: str, labels: list[str], kind: str, rng: random.Random) -> str:
    """The wrong label a record with `label` gets under this kind of noise (never `label` itself)."""
    others = [x for x in labels if x != label]
    if kind == "uniform":
        return rng.choice(others)
    if kind != "confusable":
        raise ValueError(f"kind: {kind!r} is not one of {', '.join(NOISE_KINDS)}")
    relations = [x for x in labels if x != NONE_LABEL]
    if label == NONE_LABEL:
        return rng.choice(relations)
    same_types = [x for x in relations if x != label and signature(x) == signature(label)]
    # half the flips of a relation go to "None"; the rest to a relation between the same entity types
    if not same_types or rng.random() < 0.5:
        return NONE_LABEL
    return rng.choice(same_types)


def relabel_line(line: str, old: str, new: str, where: str) -> str:
    """The same line with only its relation value replaced, checked by parsing it back (`where` names the line in
    errors)."""
    key = "'relation': "
    at = line.rfind(key + repr(old))
    if at < 0:
        key = '"relation": '
        at = line.rfind(key + json.dumps(old))
        value = json.dumps(new)
        old_len = len(json.dumps(old))
    else:
        value = repr(new)
        old_len = len(repr(old))
    if at < 0:
        raise DataFormatError(f"{where}: relation {old!r} not found as written")
    start = at + len(key)
    changed = line[:start] + value + line[start + old_len :]
    before, after = ast.literal_eval(line), ast.literal_eval(changed)
    if after.get("relation") != new or {k: v for k, v in after.items() if k != "relation"} != {
        k: v for k, v in before.items() if k != "relation"
    }:
        raise DataFormatError(f"{where}: could not replace the relation alone")
    return changed


def make_noisy_copy(
    src: str | Path,
    dest: str | Path,
    rate: float,
    kind: str = "uniform",
    seed: int = 1,
    splits: tuple[str, ...] = ("train",),
) -> list[Flip]:
    """Copy the MNRE folder `src` to `dest` (a new folder) with round(rate * n) labels of each split in `splits`
    flipped; returns the flips, also written to dest/noise.json."""
    src, dest = Path(src), Path(dest)
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind: {kind!r} is not one of {', '.join(NOISE_KINDS)}")
    if not 0 < rate < 1:
        raise ValueError(f"rate: {rate} is not between 0 and 1")
    if dest.exists():
        raise FileExistsError(f"{dest}: already exists; a noisy copy is written to a new folder")
    if src.resolve() in dest.resolve().parents:
        raise ValueError(f"{dest}: inside the source folder {src}")
    labels = list(read_rel2id(src / "ours_rel2id.json"))
    rng = random.Random(f"{seed}:{kind}:{rate}")
    staging = dest.with_name(dest.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    (staging / "txt").mkdir(parents=True)
    shutil.copy2(src / "ours_rel2id.json", staging / "ours_rel2id.json")
    flips: list[Flip] = []
    for split, (txt_name, dict_name) in SPLIT_FILES.items():
        txt = src / "txt" / txt_name
        if not txt.is_file():
            continue
        if (src / "txt" / dict_name).is_file():
            shutil.copy2(src / "txt" / dict_name, staging / "txt" / dict_name)
        data = txt.read_bytes()
        lines = data.decode("utf-8").split("\n")
        if split in splits:
            numbered = [k for k, line in enumerate(lines) if line.strip()]
            chosen = sorted(rng.sample(numbered, round(rate * len(numbered))))
            for k in chosen:
                where = f"{txt}:{k + 1}"
                old = ast.literal_eval(lines[k])["relation"]
                new = flip_target(old, labels, kind, rng)
                lines[k] = relabel_line(lines[k], old, new, where)
                flips.append(Flip(split, k + 1, old, new))
        (staging / "txt" / txt_name).write_bytes("\n".join(lines).encode("utf-8"))
    for folder in ("img_org", "img_vg"):
        if (src / folder).is_dir():
            os.symlink((src / folder).resolve(), staging / folder, target_is_directory=True)
    manifest = {
        "source": str(src.resolve()),
        "kind": kind,
        "rate": rate,
        "seed": seed,
        "splits": list(splits),
        "flips": [asdict(flip) for flip in flips],
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
    staging.rename(dest)
    return flips


def read_flips(folder: str | Path) -> list[Flip]:
    """The flips a noisy copy was made with (its noise.json)."""
    manifest = json.loads((Path(folder) / MANIFEST).read_text())
    return [Flip(**flip) for flip in manifest["flips"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.noise", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="MNRE-layout folder")
    parser.add_argument("dest", type=Path, help="new folder for the noisy copy")
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--kind", choices=NOISE_KINDS, default="uniform")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--split", action="append", choices=sorted(SPLIT_FILES), help="default: train")
    args = parser.parse_args(argv)
    try:
        flips = make_noisy_copy(
            args.src, args.dest, args.rate, args.kind, args.seed, tuple(args.split or ["train"])
        )
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"{args.dest}: {len(flips)} {args.kind} flips ({args.rate:.0%} of {', '.join(args.split or ['train'])})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
