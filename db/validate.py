"""The checks every record passes before it enters the label store, shared by every importer (the MNRE import, the
Label Studio import, `import-post` and the app's Add post through `db.io.import_post`).

- Names of datasets and splits come from a safe alphabet (`[A-Za-z0-9_.-]`, not "." or ".."), 64 characters for a
  dataset, 32 for a split (the column's size): they become parts of export file names.
- Strings fit their column (`db/models.py`: annotator and source key String(200), label String(100), img_id
  String(300)), so PostgreSQL never raises DataError on an insert; an identity (annotator) has no control characters
  (a newline would forge a line in `python -m db agreement`).
- Gold labels are in the dataset's label map.
- Image paths from a file being imported are used only inside the image folders allowed for it; the answer for a path
  outside them is the same whether or not it exists.

Errors are `DataFormatError(where, line, field, problem)`: the file (or "post", or the option) and the field.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

from model.mnre_format import DataFormatError

NAME_ALPHABET = re.compile(r"[A-Za-z0-9_.-]+")
MAX_DATASET_NAME = 64
MAX_SPLIT_NAME = 32  # EntityPair.split is String(32)
MAX_IDENTITY = 200  # Annotation.annotator, Job.started_by, ModelVersion.created_by: String(200)
MAX_SOURCE_KEY = 200  # EntityPair.source_key
MAX_LABEL = 100  # EntityPair.gold_label, Annotation.label: String(100)
MAX_IMG_ID = 300  # Post.img_id


def name_problem(value: Any, max_length: int) -> str | None:
    """Why `value` cannot be a dataset or split name, or None."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value or len(value) > max_length:
        return f"must be 1 to {max_length} characters, got {len(value)}"
    if not NAME_ALPHABET.fullmatch(value) or value in (".", ".."):
        return f"{value[:80]!r} may use only letters, digits, '_', '.' and '-' (and is not '.' or '..')"
    return None


def check_name(value: Any, where: str | Path, field: str, kind: str, line: int | None = None) -> str:
    """A dataset (`kind` "dataset") or split ("split") name, or DataFormatError naming `where` and `field`."""
    problem = name_problem(value, MAX_DATASET_NAME if kind == "dataset" else MAX_SPLIT_NAME)
    if problem:
        raise DataFormatError(where, line, field, f"{kind} name {problem}")
    return value


def check_string(
    value: Any,
    where: str | Path,
    field: str,
    max_length: int,
    line: int | None = None,
    optional: bool = False,
) -> str | None:
    """A string of at most `max_length` characters (its column's size)."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise DataFormatError(where, line, field, f"must be a string, got {type(value).__name__}")
    if len(value) > max_length:
        raise DataFormatError(where, line, field, f"is {len(value)} characters; at most {max_length} fit")
    return value


def identity_problem(value: Any) -> str | None:
    """Why `value` cannot be a stored identity (annotator, job owner), or None."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value.strip():
        return "is empty"
    if len(value) > MAX_IDENTITY:
        return f"is {len(value)} characters; at most {MAX_IDENTITY} fit"
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs"):
            return f"contains the control or format character U+{ord(char):04X}"
    return None


def check_identity(value: Any, where: str | Path, field: str, line: int | None = None) -> str:
    problem = identity_problem(value)
    if problem:
        raise DataFormatError(where, line, field, f"identity {problem}")
    return value


def check_gold_label(
    value: Any, label_map: dict[str, int] | None, where: str | Path, field: str, line: int | None = None
) -> str | None:
    """None (no label) or a label of the dataset's label map (any string that fits when it has none)."""
    if value is None:
        return None
    check_string(value, where, field, MAX_LABEL, line)
    if label_map is not None and value not in label_map:
        raise DataFormatError(where, line, field, f"{value[:80]!r} is not a label of the dataset's label map")
    return value


def mnre_label_map() -> dict[str, int]:
    """The 23 MNRE relations of the shipped Label Studio config (ours_rel2id.json order): the label map of a dataset
    that has none of its own (posts added with import-post or in the app)."""
    import xml.etree.ElementTree as ET

    root = ET.parse(Path(__file__).with_name("label_studio_config.xml")).getroot()
    return {rel.attrib["value"]: i for i, rel in enumerate(root.iter("Relation"))}


def inside_folders(path: str | Path, folders: list[Path]) -> Path | None:
    """The resolved `path` when it lies inside one of `folders` (resolved: links and ".." followed), else None.

    Nothing else is said about a path outside them: callers treat it exactly like a missing file.
    """
    resolved = Path(path).resolve()
    for folder in folders:
        root = folder.resolve()
        if root in resolved.parents:
            return resolved
    return None


def plain_file_name(value: Any) -> str | None:
    """`value` when it is a bare file name (no folder part, not "." or ".."), else None."""
    if not isinstance(value, str) or not value or len(value) > MAX_IMG_ID:
        return None
    if "/" in value or "\\" in value or "\x00" in value or value in (".", ".."):
        return None
    return value
