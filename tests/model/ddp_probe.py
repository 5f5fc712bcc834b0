"""Run under torchrun by tests/model/test_train.py: trains with model.train.main and writes, per rank, which training
examples the rank was given and a digest of its weights before and after training (<output-dir>/rank<r>.json).

The probe wraps three of model.train's functions (building the model, preparing the examples, collating a batch) and
changes nothing they compute.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import torch

import model.train as train_module


def weights_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(argv: list[str]) -> int:
    built: dict = {}
    prepared: list = []
    batches: list[list[int]] = []
    build, prepare, collate = (
        train_module.build_fresh_model,
        train_module.prepare_examples,
        train_module.collate,
    )

    def recording_build(*args, **kwargs):
        model, tokenizer = build(*args, **kwargs)
        built["model"], built["initial"] = model, weights_digest(model)
        return model, tokenizer

    def recording_prepare(*args, **kwargs):
        split = prepare(*args, **kwargs)
        prepared.append(split.examples)  # the first call prepares the training split
        return split

    def recording_collate(examples, *args, **kwargs):
        position = {id(e): i for i, e in enumerate(prepared[0])}
        batches.append([position[id(e)] for e in examples])
        return collate(examples, *args, **kwargs)

    train_module.build_fresh_model = recording_build
    train_module.prepare_examples = recording_prepare
    train_module.collate = recording_collate
    code = train_module.main(argv)
    rank = int(os.environ.get("RANK", 0))
    out = Path(argv[argv.index("--output-dir") + 1])
    (out / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "batches": batches,
                "initial": built["initial"],
                "final": weights_digest(built["model"]),
                "train_examples": len(prepared[0]),
            }
        )
    )
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
