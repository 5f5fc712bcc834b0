"""One label -> key map per dataset, so a key means the same label on every pair and a hand can learn it.

Default: the dataset's labels in their label-map order take 1-9, then the letters no action uses (B D F G H I J L M
O Q V W Y Z), then nothing (a label without a key is still one E away). A dataset can move labels with a JSON file
`<MRELENS_LABEL_KEYS_DIR>/<dataset>.json` (default var/label_keys/) such as `{"None": "0", "/per/per/parent": "1"}`:
the labels it names take those keys, the others fill the keys left over in label order. A file rather than a new
label-map order: the label map's order is the model's label ids (checkpoints and exports rely on it), and a file
changes the keys without a migration, is shared by every reviewer of the server, and can be kept in git.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from app.services.paths import REPO_ROOT

# the keys of Review's actions (A accept, S skip, X reject, U undo, N/P next/previous, E picked label, T/K the
# audit's take/keep) and Streamlit's own C and R (reserved: clear cache, rerun)
RESERVED_KEYS = frozenset("ASXUNPETKCR")
TOP_LABEL_KEY = "Enter"  # the model's most likely label, on every pair
LABEL_KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "0", *"BDFGHIJLMOQVWYZ")
DEFAULT_KEYS = (
    LABEL_KEYS[:9] + LABEL_KEYS[10:]
)  # 0 only when a file asks for it: the default reads 1-9, then letters


class KeyMapError(ValueError):
    """A label-keys file that names an unknown label, an action's key, or one key twice."""


def label_keys(labels: Sequence[str], chosen: dict[str, str] | None = None) -> dict[str, str]:
    """Label -> key for a dataset's labels (in label order; a label past the last free key has none)."""
    chosen = {label: str(key).upper() for label, key in (chosen or {}).items()}
    unknown = sorted(set(chosen) - set(labels))
    if unknown:
        raise KeyMapError(f"not a label of this dataset: {', '.join(unknown)}")
    bad = sorted({key for key in chosen.values() if key not in LABEL_KEYS})
    if bad:
        raise KeyMapError(f"not a label key: {', '.join(bad)} (use 0-9 or one of {''.join(LABEL_KEYS[10:])})")
    if len(set(chosen.values())) < len(chosen):
        raise KeyMapError("one key is given to two labels")
    free = iter(key for key in DEFAULT_KEYS if key not in chosen.values())
    keys = {}
    for label in labels:
        key = chosen.get(label) or next(free, None)
        if key is not None:
            keys[label] = key
    return keys


def label_keys_file(dataset: str) -> Path:
    folder = Path(os.environ.get("MRELENS_LABEL_KEYS_DIR", REPO_ROOT / "var" / "label_keys"))
    return folder / f"{dataset}.json"


def load_label_keys(dataset: str, labels: Sequence[str]) -> dict[str, str]:
    """The dataset's map: its file when there is one (KeyMapError when the file is wrong), else the default."""
    path = label_keys_file(dataset)
    if not path.is_file():
        return label_keys(labels)
    try:
        chosen = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise KeyMapError(f"{path} cannot be read: {err}") from err
    if not isinstance(chosen, dict):
        raise KeyMapError(f"{path} must hold one object, label -> key")
    return label_keys(labels, chosen)
