"""Model architectures by the name stored in a checkpoint's config.json ("architecture")."""

from __future__ import annotations

import importlib
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
    """The architecture a checkpoint folder's config.json names; CheckpointError for an unknown one."""
    from model.checkpoint import CONFIG_FILE, CheckpointError, read_checkpoint_config

    architecture = read_checkpoint_config(folder)["architecture"]
    if architecture not in ARCHITECTURES:
        raise CheckpointError(
            folder,
            CONFIG_FILE,
            "architecture",
            f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}",
        )
    return architecture


def load_model(folder: str | Path, device: str = "cpu"):
    """The model saved in `folder` (safetensors + config.json), in eval mode."""
    return model_class(checkpoint_architecture(folder)).from_pretrained(folder).to(device).eval()
