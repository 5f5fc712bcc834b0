"""Folders the app writes to, under var/ by default; environment variables move them (tests use tmp folders)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _folder(variable: str, default: str) -> Path:
    return Path(os.environ.get(variable, REPO_ROOT / "var" / default))


def feature_cache_dir() -> Path:
    """EfficientNet feature cache shared with training (MRELENS_FEATURE_CACHE)."""
    return _folder("MRELENS_FEATURE_CACHE", "features")


def export_dir() -> Path:
    """Where the Export page keeps a copy of every export (MRELENS_EXPORT_DIR)."""
    return _folder("MRELENS_EXPORT_DIR", "exports")


def upload_dir() -> Path:
    """Uploaded images and their grounded crops (MRELENS_UPLOAD_DIR)."""
    return _folder("MRELENS_UPLOAD_DIR", "uploads")


def runs_dir() -> Path:
    """Checkpoints the app trains (retraining from the Models page) go under here (MRELENS_RUNS_DIR)."""
    return Path(os.environ.get("MRELENS_RUNS_DIR", REPO_ROOT / "runs"))
