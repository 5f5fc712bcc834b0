"""Checkpoint folders shared by every architecture: config.json + model.safetensors + tokenizer files, no pickle.

The version id is derived from the saved weights, so two folders with the same id hold the same model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from torch import nn


def save_checkpoint(
    model: nn.Module, folder: str | Path, architecture: str, version_prefix: str, tokenizer=None
) -> str:
    """Write the folder, set model.config.version_id to f"{version_prefix}-{weights hash}" and return it."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    weights = folder / "model.safetensors"
    save_file(state, str(weights), metadata={"format": "pt"})
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
    model.config.version_id = f"{version_prefix}-{digest}"
    (folder / "config.json").write_text(
        json.dumps({"architecture": architecture, **asdict(model.config)}, indent=2)
    )
    if tokenizer is not None:
        tokenizer.save_pretrained(str(folder))
    return model.config.version_id


def read_config_dict(folder: str | Path, architecture: str) -> dict:
    """config.json of a checkpoint folder without its "architecture" key; clear errors for the wrong folder."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a model checkpoint folder (config.json missing)")
    raw = json.loads(path.read_text())
    found = raw.pop("architecture", "ifaformer")
    if found != architecture:
        raise ValueError(f"{path}: a {found!r} checkpoint, not {architecture!r}")
    return raw


def load_weights(model: nn.Module, folder: str | Path, map_location: str = "cpu") -> nn.Module:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(Path(folder) / "model.safetensors"), device=map_location))
    return model
