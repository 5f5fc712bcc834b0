"""A tiny MNRE-layout dataset whose relation is decided by one word of the text: a small text model learns it in
seconds, so label-error tests can tell a model that saw a pair from one that did not."""

from __future__ import annotations

import json
import random
from pathlib import Path

TRIGGERS = {
    "None": "met",
    "/per/per/couple": "married",
    "/per/per/parent": "fathered",
    "/per/per/peer": "befriended",
    "/per/per/siblings": "twinned",
}
LABELS = list(TRIGGERS)


def write_text_decided(folder: Path, n_train: int = 200, n_val: int = 60, seed: int = 0) -> Path:
    """ours_rel2id.json + txt/ours_{train,val}.txt; every post names two people (unique names, which a model can
    memorise) around the trigger word of its relation."""
    rng = random.Random(seed)
    (folder / "txt").mkdir(parents=True, exist_ok=True)
    (folder / "ours_rel2id.json").write_text(json.dumps({label: k for k, label in enumerate(LABELS)}))
    serial = 0
    for split, n in (("train", n_train), ("val", n_val)):
        lines = []
        for _ in range(n):
            label = rng.choice(LABELS)
            serial += 1
            head, tail = f"Ann{serial}x", f"Bob{serial}y"
            filler = rng.sample(["today", "in", "the", "city", "after", "lunch", "again", "finally"], 3)
            tokens = [head, TRIGGERS[label], tail, *filler]
            record = {
                "token": tokens,
                "h": {"name": head, "pos": [0, 1]},
                "t": {"name": tail, "pos": [2, 3]},
                "img_id": f"post{serial}.jpg",
                "relation": label,
            }
            lines.append(repr(record))
        (folder / "txt" / f"ours_{split}.txt").write_text("\n".join(lines) + "\n")
    return folder
