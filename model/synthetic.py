"""A synthetic, visually grounded MNRE-layout dataset: the text is ambiguous and the image decides the relation.

Every post mentions two people in one of a few templates that say nothing about how they are related; the picture
holds one salient object whose shape and colour encode the relation (plus grey clutter). The object's bounding box is
saved as the post's grounding crop. A model that reads the image can be perfect; a text-only model is at chance on
these labels. Written in the DeepKE layout, so every command that reads MNRE reads it too.

The generator knows why each label holds, so every record comes with its evidence, written beside the MNRE files as
`rationales.jsonl` (one JSON object per record, source "synthetic"; model.rationale_file reads it): on the image-decided
set the deciding object's box in image pixels; on the text-decided variant (`--decided-by text`) the index of the one
trigger word that decides the label ("married", "coworkers", "mother", "twins", ...), while its pictures hold an
object drawn independently of the label (so the image carries no signal there). The image-decided set is the same,
byte for byte, as before rationales were written: only the side file is added.

    python -m model.synthetic OUT_DIR [--train 600 --val 200 --test 200 --images-per-label 30 --seed 0]
                                      [--decided-by image|text]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from model.data import SPLIT_FILES
from model.rationale_file import (  # noqa: F401  (read_rationales: this module's reader, re-exported)
    DECIDED_BY,
    RATIONALES_FILE,
    Rationale,
    read_rationales,
)

MNRE_LABELS = [
    "None",
    "/per/per/parent",
    "/per/per/siblings",
    "/per/per/couple",
    "/per/per/neighbor",
    "/per/per/peer",
    "/per/per/charges",
    "/per/per/alumi",
    "/per/per/alternate_names",
    "/per/org/member_of",
    "/per/loc/place_of_residence",
    "/per/loc/place_of_birth",
    "/org/org/alternate_names",
    "/org/org/subsidiary",
    "/org/loc/locate_at",
    "/loc/loc/contain",
    "/per/misc/present_in",
    "/per/misc/awarded",
    "/per/misc/race",
    "/per/misc/religion",
    "/per/misc/nationality",
    "/misc/misc/part_of",
    "/misc/loc/held_on",
]

# relation -> (shape, RGB colour) of the object that decides it
IMAGE_DECIDED = {
    "/per/per/couple": ("disc", (220, 30, 40)),
    "/per/per/peer": ("square", (30, 70, 220)),
    "/per/per/parent": ("triangle", (30, 170, 60)),
    "/per/per/siblings": ("stripes", (240, 200, 20)),
}
NAMES = [
    "Alex",
    "Sam",
    "Jordan",
    "Taylor",
    "Morgan",
    "Casey",
    "Riley",
    "Jamie",
    "Avery",
    "Quinn",
    "Robin",
    "Drew",
    "Kim",
    "Lee",
    "Pat",
    "Charlie",
    "Dana",
    "Eli",
    "Frankie",
    "Harper",
]
TEMPLATES = [
    "{a} and {b} spotted together today",
    "RT @news : {a} with {b} at the weekend",
    "Great evening with {a} and {b} !",
    "{a} , {b} and the whole crew # fun",
    "Photo of {a} next to {b} from last night",
]
IMAGE_SIZE = 224
# text-decided variant: relation -> the trigger words that decide it (one per post); none of them is a name or a
# template word
TRIGGERS = {
    "/per/per/couple": ["married", "spouses", "newlyweds", "engaged"],
    "/per/per/peer": ["colleagues", "coworkers", "teammates", "classmates"],
    "/per/per/parent": ["father", "mother", "dad", "mom"],
    "/per/per/siblings": ["brothers", "sisters", "twins", "siblings"],
}
TEXT_TEMPLATES = [
    "{a} and {b} , {t} , spotted together today",
    "RT @news : {a} with {b} ( {t} ) at the weekend",
    "Great evening with {a} and {b} , {t} forever !",
    "{t} {a} , {b} and the whole crew # fun",
    "Photo of {a} next to {b} from last night # {t}",
    "{a} says {b} and I are {t} now",
]


def _draw_object(d: ImageDraw.ImageDraw, shape: str, x0: int, y0: int, size: int, fill) -> None:
    box = (x0, y0, x0 + size, y0 + size)
    if shape == "disc":
        d.ellipse(box, fill=fill)
    elif shape == "square":
        d.rectangle(box, fill=fill)
    elif shape == "triangle":
        d.polygon([(x0 + size // 2, y0), (x0, y0 + size), (x0 + size, y0 + size)], fill=fill)
    else:
        for k in range(0, size, 14):
            d.rectangle([x0, y0 + k, x0 + size, y0 + k + 7], fill=fill)


def draw_post_image(
    relation: str, rng: random.Random
) -> tuple[Image.Image, tuple[int, int, int, int], tuple[int, int, int, int]]:
    """An image with the relation's object somewhere on a noisy background; returns it, the crop box the post's
    grounding crop is cut with, and the box of the object's drawn pixels (the evidence; PIL's getbbox, right and
    bottom exclusive: one pixel wider than the crop box, and for stripes the last stripe's full height)."""
    bg = tuple(rng.randint(150, 235) for _ in range(3))
    im = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), bg)
    d = ImageDraw.Draw(im)
    for _ in range(rng.randint(2, 5)):  # grey clutter that carries no signal
        x, y, s = rng.randint(0, 200), rng.randint(0, 200), rng.randint(10, 35)
        g = rng.randint(80, 140)
        d.rectangle([x, y, x + s, y + s // 2], fill=(g, g, g))
    shape, colour = IMAGE_DECIDED[relation]
    size = rng.randint(70, 110)
    x0, y0 = rng.randint(0, IMAGE_SIZE - size), rng.randint(0, IMAGE_SIZE - size)
    _draw_object(d, shape, x0, y0, size, colour)
    mask = Image.new("L", im.size, 0)
    _draw_object(ImageDraw.Draw(mask), shape, x0, y0, size, 255)
    return im, (x0, y0, x0 + size, y0 + size), mask.getbbox()


def make_record(relation: str, img_id: str, rng: random.Random) -> dict:
    a, b = rng.sample(NAMES, 2)
    template = rng.choice(TEMPLATES)
    words = template.format(a="\0A", b="\0B").split()
    tokens = [a if w == "\0A" else b if w == "\0B" else w for w in words]
    ia, ib = words.index("\0A"), words.index("\0B")
    return {
        "token": tokens,
        "h": {"name": a, "pos": [ia, ia + 1]},
        "t": {"name": b, "pos": [ib, ib + 1]},
        "img_id": img_id,
        "relation": relation,
    }


def make_text_record(relation: str, img_id: str, rng: random.Random) -> tuple[dict, int]:
    """A post whose one trigger word decides the relation; returns the record and the trigger's word index."""
    a, b = rng.sample(NAMES, 2)
    template = rng.choice(TEXT_TEMPLATES)
    trigger = rng.choice(TRIGGERS[relation])
    words = template.format(a="\0A", b="\0B", t="\0T").split()
    tokens = [a if w == "\0A" else b if w == "\0B" else trigger if w == "\0T" else w for w in words]
    ia, ib, it = words.index("\0A"), words.index("\0B"), words.index("\0T")
    record = {
        "token": tokens,
        "h": {"name": a, "pos": [ia, ia + 1]},
        "t": {"name": b, "pos": [ib, ib + 1]},
        "img_id": img_id,
        "relation": relation,
    }
    return record, it


def generate(
    out: str | Path,
    sizes: dict[str, int] | None = None,
    images_per_label: int = 30,
    seed: int = 0,
    decided_by: str = "image",
) -> Path:
    """Write the dataset and its rationales.jsonl; images are drawn per split (no picture is shared across splits).

    decided_by "image": the image's object decides the label (the text is neutral), evidence = its box.
    decided_by "text": one trigger word decides it, evidence = that word; each picture holds an object drawn for a
    relation chosen independently of the post's label (images_per_label pictures per relation, as for "image").
    """
    if decided_by not in DECIDED_BY:
        raise ValueError(f"decided_by must be one of {DECIDED_BY}, got {decided_by!r}")
    out = Path(out)
    sizes = sizes or {"train": 600, "val": 200, "test": 200}
    rng = random.Random(seed)
    (out / "txt").mkdir(parents=True, exist_ok=True)
    (out / "ours_rel2id.json").write_text(json.dumps({name: i for i, name in enumerate(MNRE_LABELS)}))
    relations = list(IMAGE_DECIDED)
    rationales: list[Rationale] = []
    for split, n in sizes.items():
        img_dir, crop_dir = out / "img_org" / split, out / "img_vg" / split / "crops"
        img_dir.mkdir(parents=True, exist_ok=True)
        crop_dir.mkdir(parents=True, exist_ok=True)
        pool = []  # several posts share a picture, as on social media
        for rel in relations:
            for k in range(images_per_label):
                name = f"{split}_{rel.split('/')[-1]}_{k}.png"
                im, crop_box, object_box = draw_post_image(rel, rng)
                im.save(img_dir / name)
                crop_name = f"{name[:-4]}_crop0.png"
                im.crop(crop_box).save(crop_dir / crop_name)
                pool.append((rel, name, crop_name, object_box, im.size))
        lines, crops = [], {}
        for i in range(n):
            rel = relations[i % len(relations)]  # balanced labels: chance is exactly 1 / len(relations)
            if decided_by == "image":
                _, name, crop_name, box, size = rng.choice([p for p in pool if p[0] == rel])
                lines.append(repr(make_record(rel, name, rng)))
                rationale = Rationale(split, i + 1, name, (), box, size, decided_by)
            else:
                _, name, crop_name, _box, size = rng.choice(pool)  # the picture says nothing about the label
                record, trigger = make_text_record(rel, name, rng)
                lines.append(repr(record))
                rationale = Rationale(split, i + 1, name, (trigger,), None, size, decided_by)
            rationales.append(rationale)
            crops[i] = [crop_name]
        txt_name, dict_name = SPLIT_FILES[split]
        (out / "txt" / txt_name).write_text("\n".join(lines) + "\n")
        torch.save(crops, out / "txt" / dict_name)
    (out / RATIONALES_FILE).write_text("".join(json.dumps(r.to_json()) + "\n" for r in rationales))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model.synthetic", description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=600)
    ap.add_argument("--val", type=int, default=200)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--images-per-label", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--decided-by",
        choices=DECIDED_BY,
        default="image",
        help="what decides each label: the image's object (default) or one trigger word in the text",
    )
    args = ap.parse_args(argv)
    path = generate(
        args.out,
        {"train": args.train, "val": args.val, "test": args.test},
        args.images_per_label,
        args.seed,
        args.decided_by,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
