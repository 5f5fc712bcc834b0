"""A synthetic, visually grounded MNRE-layout dataset: the text is ambiguous and the image decides the relation.

Every post mentions two people in one of a few templates that say nothing about how they are related; the picture
holds one salient object whose shape and colour encode the relation (plus grey clutter). The object's bounding box is
saved as the post's grounding crop. A model that reads the image can be perfect; a text-only model is at chance on
these labels. Written in the DeepKE layout, so every command that reads MNRE reads it too.

    python -m model.synthetic OUT_DIR [--train 600 --val 200 --test 200 --images-per-label 30 --seed 0]
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


def draw_post_image(relation: str, rng: random.Random) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """An image with the relation's object somewhere on a noisy background; returns it and the object's box."""
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
    box = (x0, y0, x0 + size, y0 + size)
    if shape == "disc":
        d.ellipse(box, fill=colour)
    elif shape == "square":
        d.rectangle(box, fill=colour)
    elif shape == "triangle":
        d.polygon([(x0 + size // 2, y0), (x0, y0 + size), (x0 + size, y0 + size)], fill=colour)
    else:
        for k in range(0, size, 14):
            d.rectangle([x0, y0 + k, x0 + size, y0 + k + 7], fill=colour)
    return im, box


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


def generate(
    out: str | Path, sizes: dict[str, int] | None = None, images_per_label: int = 30, seed: int = 0
) -> Path:
    """Write the dataset; images are drawn per split (no picture is shared across splits)."""
    out = Path(out)
    sizes = sizes or {"train": 600, "val": 200, "test": 200}
    rng = random.Random(seed)
    (out / "txt").mkdir(parents=True, exist_ok=True)
    (out / "ours_rel2id.json").write_text(json.dumps({name: i for i, name in enumerate(MNRE_LABELS)}))
    relations = list(IMAGE_DECIDED)
    for split, n in sizes.items():
        img_dir, crop_dir = out / "img_org" / split, out / "img_vg" / split / "crops"
        img_dir.mkdir(parents=True, exist_ok=True)
        crop_dir.mkdir(parents=True, exist_ok=True)
        pool = []  # several posts share a picture, as on social media
        for rel in relations:
            for k in range(images_per_label):
                name = f"{split}_{rel.split('/')[-1]}_{k}.png"
                im, box = draw_post_image(rel, rng)
                im.save(img_dir / name)
                crop_name = f"{name[:-4]}_crop0.png"
                im.crop(box).save(crop_dir / crop_name)
                pool.append((rel, name, crop_name))
        lines, crops = [], {}
        for i in range(n):
            rel = relations[i % len(relations)]  # balanced labels: chance is exactly 1 / len(relations)
            _, name, crop_name = rng.choice([p for p in pool if p[0] == rel])
            lines.append(repr(make_record(rel, name, rng)))
            crops[i] = [crop_name]
        txt_name, dict_name = SPLIT_FILES[split]
        (out / "txt" / txt_name).write_text("\n".join(lines) + "\n")
        torch.save(crops, out / "txt" / dict_name)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model.synthetic", description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=600)
    ap.add_argument("--val", type=int, default=200)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--images-per-label", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    path = generate(
        args.out, {"train": args.train, "val": args.val, "test": args.test}, args.images_per_label, args.seed
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
