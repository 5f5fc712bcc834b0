"""Model architectures by the name stored in a checkpoint's config.json ("architecture")."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

ARCHITECTURES = {
    "ifaformer": "model.ifaformer:IFAformerForRelationClassification",
    "mega": "model.mega:MegaForRelationClassification",
}


def model_class(architecture: str):
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
    module, name = ARCHITECTURES[architecture].split(":")
    return getattr(importlib.import_module(module), name)


def checkpoint_architecture(folder: str | Path) -> str:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a model checkpoint folder (config.json missing)")
    return json.loads(path.read_text()).get("architecture", "ifaformer")


def load_model(folder: str | Path, device: str = "cpu"):
    """The model saved in `folder` (safetensors + config.json), in eval mode."""
    return model_class(checkpoint_architecture(folder)).from_pretrained(folder).to(device).eval()
