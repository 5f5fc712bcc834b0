"""Model architectures by the name stored in a checkpoint's config.json ("architecture"). Loading a checkpoint
folder is model.checkpoint.load_checkpoint (and load_model), which looks its class up here."""

from __future__ import annotations

import importlib

ARCHITECTURES = {
    "ifaformer": "model.ifaformer:IFAformerForRelationClassification",
    "mega": "model.mega:MegaForRelationClassification",
}


def model_class(architecture: str):
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
    module, name = ARCHITECTURES[architecture].split(":")
    return getattr(importlib.import_module(module), name)
