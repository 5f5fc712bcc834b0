"""Curated labels as a Hugging Face dataset: typed features, one file per split, and a dataset card.

`export_labels(..., "parquet" | "jsonl", out)` comes here. `out` with a suffix (labels.parquet) is one file; `out`
without one (or an existing folder) becomes a dataset folder::

    out/README.md              dataset card: YAML header (features, splits -> files) + label set, counts, agreement,
                               provenance
    out/<split>.parquet|jsonl  one file per split

Features: the columns of the other exports, plus `relation` (ClassLabel over the dataset's label map: the 23 MNRE
relations for MNRE; the curated label) and `image` (Image: the post's image file where it exists on this machine,
else null; the path is stored, not the bytes). Spans and lines are int32.

How the features travel: a Parquet file carries them itself, as Hugging Face's "huggingface" schema metadata, so
`load_dataset("parquet", data_files=...)` gives ClassLabel and Image without further help. JSON cannot carry them:
`load_dataset("<folder>")` reads them from the card's YAML header, and `load_dataset("json", data_files=...,
features=hf_features_of(folder))` takes them explicitly (in JSONL, `relation` is the label name, which ClassLabel
casts to its id; `image` is the path).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import export_rows
from db.agreement import agreement
from db.errors import LabelStoreError
from db.export_rows import ROW_COLUMNS, ExportReport, atomic_write, public_rows
from db.label_studio_format import config_relations
from db.models import Dataset, EntityPair, ModelVersion, Post, Prediction
from db.provenance import DEFAULT_PREDICTION_METHOD, active_model_version
from model.mnre_format import labels_by_id
from model.safe_write import Sources, atomic_files

HF_FORMATS = {"parquet": "parquet", "jsonl": "json"}  # export format -> datasets builder name
CARD = "README.md"
INT32_COLUMNS = ("source_line", "head_start", "head_end", "tail_start", "tail_end", "revision")
# rationale columns (db.export_rows): word indices and image size as lists of int32, the box as 4 float64 pixels
LIST_COLUMNS = {
    "tokens": "string",
    "rationale_tokens": "int32",
    "rationale_box": "float64",
    "rationale_image_size": "int32",
}


def is_dataset_folder(out: Path) -> bool:
    return out.is_dir() or out.suffix == ""


def label_names(session: Session, rows: list[dict[str, Any]]) -> list[str]:
    """ClassLabel names: the exported dataset's label map in id order; with no map or several different maps, the
    23 MNRE relations followed by any other label the rows use."""
    maps = {
        json.dumps(label_map, sort_keys=True)
        for label_map in session.scalars(
            select(Dataset.label_map).where(Dataset.name.in_({row["dataset"] for row in rows}))
        )
        if label_map
    }
    # the dataset's own label order, else the 23 MNRE relations
    names = labels_by_id(json.loads(maps.pop())) if len(maps) == 1 else config_relations()
    extra = sorted({row["label"] for row in rows if row["label"] is not None} - set(names))
    if len(maps) == 1 and extra:
        raise LabelStoreError(f"labels {extra} are not in the dataset's label map; cannot type them")
    return names + extra


def column_types() -> dict[str, str]:
    """Each exported column's type: int64, int32, bool, string, list<string|int32|float64>, class_label or image."""
    types = {}
    for column in ROW_COLUMNS:
        if column.startswith("_"):
            continue
        if column in LIST_COLUMNS:
            types[column] = f"list<{LIST_COLUMNS[column]}>"
        elif column == "pair_id":
            types[column] = "int64"
        elif column in INT32_COLUMNS:
            types[column] = "int32"
        elif column in ("has_image", "spans_edited"):
            types[column] = "bool"
        else:
            types[column] = "string"
    return {**types, "relation": "class_label", "image": "image"}


# The features are written without importing `datasets` (several seconds to import): in the serialisation that
# datasets.Features.to_dict / from_dict use; tests/db/test_hf_dataset.py checks it against the real package.
def features_dict(names: list[str]) -> dict[str, Any]:
    """datasets.Features.to_dict() of an export whose relation ClassLabel has `names`."""
    out: dict[str, Any] = {}
    for column, kind in column_types().items():
        if kind.startswith("list<"):
            out[column] = {"feature": {"dtype": kind[5:-1], "_type": "Value"}, "_type": "List"}
        elif kind == "class_label":
            out[column] = {"names": list(names), "_type": "ClassLabel"}
        elif kind == "image":
            out[column] = {"_type": "Image"}
        else:
            out[column] = {"dtype": kind, "_type": "Value"}
    return out


def yaml_features(names: list[str]) -> list[dict[str, Any]]:
    """The `dataset_info.features` list of a dataset card (what DatasetInfo._to_yaml_dict writes)."""
    out: list[dict[str, Any]] = []
    for column, kind in column_types().items():
        if kind.startswith("list<"):
            out.append({"name": column, "list": kind[5:-1]})
        elif kind == "class_label":
            out.append(
                {
                    "name": column,
                    "dtype": {"class_label": {"names": {str(i): n for i, n in enumerate(names)}}},
                }
            )
        else:
            out.append({"name": column, "dtype": kind})
    return out


def arrow_schema(names: list[str]):
    """The Parquet schema, with the "huggingface" metadata that load_dataset("parquet") reads features from."""
    import pyarrow as pa

    arrow = {
        "int64": pa.int64(),
        "int32": pa.int32(),
        "bool": pa.bool_(),
        "string": pa.string(),
        "list<string>": pa.list_(pa.string()),
        "list<int32>": pa.list_(pa.int32()),
        "list<float64>": pa.list_(pa.float64()),
        "class_label": pa.int64(),
        "image": pa.struct({"bytes": pa.binary(), "path": pa.string()}),
    }
    fields = [pa.field(column, arrow[kind]) for column, kind in column_types().items()]
    metadata = {"huggingface": json.dumps({"info": {"features": features_dict(names)}})}
    return pa.schema(fields, metadata=metadata)


def hf_features(names: list[str]):
    """datasets.Features of an export whose relation ClassLabel has `names` (needs the datasets package)."""
    from datasets import Features

    return Features.from_dict(features_dict(names))


def hf_features_of(folder: str | Path):
    """The features a dataset folder's card declares (for `load_dataset("json", ..., features=...)`)."""
    import yaml
    from datasets import DatasetInfo

    text = (Path(folder) / CARD).read_text(encoding="utf-8")
    header = yaml.safe_load(text.split("---\n")[1])
    return DatasetInfo._from_yaml_dict(header["dataset_info"]).features


def _image_paths(session: Session, pair_ids: list[int]) -> dict[int, str]:
    """pair id -> image file, only where the post has an image and the file is on this machine."""
    found: dict[int, str] = {}
    for start in range(0, len(pair_ids), 5000):
        for pair_id, path in session.execute(
            select(EntityPair.id, Post.image_path)
            .join(Post, Post.id == EntityPair.post_id)
            .where(EntityPair.id.in_(pair_ids[start : start + 5000]), Post.has_image)
        ):
            if path and Path(path).is_file():
                found[pair_id] = path
    return found


def hf_rows(session: Session, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The public columns plus `relation` (label name) and `image` (file path or None)."""
    images = _image_paths(session, [row["pair_id"] for row in rows])
    return [
        {**row, "relation": row["label"], "image": images.get(row["pair_id"])} for row in public_rows(rows)
    ]


def _parquet_writer(rows: list[dict[str, Any]], names: list[str]) -> Callable[[Path], None]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = {name: i for i, name in enumerate(names)}
    columns = {}
    for name in column_types():
        values = [row[name] for row in rows]
        if name == "relation":  # ClassLabel is stored as its id
            values = [ids[value] if value is not None else None for value in values]
        elif name == "image":  # Image is stored as {bytes, path}
            values = [{"bytes": None, "path": value} if value is not None else None for value in values]
        columns[name] = values
    table = pa.Table.from_pydict(columns, schema=arrow_schema(names))
    return lambda tmp: pq.write_table(table, tmp)


def _jsonl_writer(rows: list[dict[str, Any]]) -> Callable[[Path], None]:
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    return export_rows.write_text_lines(lines)  # looked up at call time, like every text export


def export_hf(
    session: Session, fmt: str, rows: list[dict[str, Any]], out: str | Path, sources: Sources = ()
) -> ExportReport:
    """Write `rows` (db.export_rows.curated_rows) as Parquet or JSONL: one file, or a dataset folder with a card (all its
    files written as one export, db.safe_write.atomic_files). Never into one of `sources`."""
    if fmt not in HF_FORMATS:
        raise LabelStoreError(f"not a Hugging Face export format: {fmt!r}")
    out = Path(out)
    typed = hf_rows(session, rows)
    names = label_names(session, rows)

    def writer(part: list[dict[str, Any]]) -> Callable[[Path], None]:
        return _parquet_writer(part, names) if fmt == "parquet" else _jsonl_writer(part)

    if not is_dataset_folder(out):
        atomic_write(out, writer(typed), sources)
        return ExportReport(len(rows), [out])
    by_split: dict[str, list[dict[str, Any]]] = {}
    for row in typed:
        by_split.setdefault(row["split"], []).append(row)
    files = {f"{split}.{fmt}": writer(part) for split, part in by_split.items()}
    card = dataset_card(
        session, rows, fmt, names, {split: len(split_rows) for split, split_rows in by_split.items()}
    )
    files[CARD] = lambda tmp: tmp.write_text(card, encoding="utf-8")
    return ExportReport(len(rows), atomic_files(out, files, sources=sources))


# ----------------------------------------------------------------------------------------------------------------
# Dataset card


def _yaml_header(fmt: str, names: list[str], splits: list[str]) -> str:
    import yaml

    meta = {
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": split, "path": f"{split}.{fmt}"} for split in splits],
            }
        ],
        "dataset_info": {"features": yaml_features(names)},
        "task_categories": ["text-classification"],
        "language": ["en"],
        "tags": ["relation-extraction", "multimodal", "mnre"],
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"


def _provenance(session: Session, rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for dataset_row in session.scalars(
        select(Dataset).where(Dataset.name.in_({row["dataset"] for row in rows}))
    ):
        lines.append(
            f"- source dataset `{dataset_row.name}`: {dataset_row.source_path or 'posts added in MRE Lens'}"
        )
    version = active_model_version(session)
    if version is None:
        lines.append(
            "- pre-annotation: no model version is active, so no predictions were shown to reviewers"
        )
        return lines
    pair_ids = [row["pair_id"] for row in rows]
    scored = 0
    for start in range(0, len(pair_ids), 5000):
        scored += session.scalar(
            select(func.count())
            .select_from(Prediction)
            .where(
                Prediction.model_version_id == version.id,
                Prediction.method == DEFAULT_PREDICTION_METHOD,
                Prediction.pair_id.in_(pair_ids[start : start + 5000]),
            )
        )
    parent = session.get(ModelVersion, version.parent_id) if version.parent_id else None
    lines.append(
        f"- pre-annotation: model version `{version.version_id}` ({version.variant}"
        + (f", fine-tuned from `{parent.version_id}`" if parent else "")
        + f"), predictions for {scored} of the {len(rows)} exported pairs"
    )
    return lines


def _agreement_lines(session: Session, rows: list[dict[str, Any]]) -> list[str]:
    datasets = sorted({row["dataset"] for row in rows})
    lines = []
    for name in datasets:
        report = agreement(session, name)
        if report.items == 0:
            lines.append(f"- `{name}`: no pair was rated by two or more annotators")
            continue
        lines.append(f"- `{name}`: " + report.format().replace("\n", "\n  "))
    return lines


def dataset_card(
    session: Session,
    rows: list[dict[str, Any]],
    fmt: str,
    names: list[str],
    split_counts: dict[str, int],
) -> str:
    """README.md of an exported dataset folder."""
    per_split_label: dict[str, Counter] = {split: Counter() for split in split_counts}
    statuses: Counter = Counter()
    for row in rows:
        per_split_label[row["split"]][row["label"]] += 1
        statuses[row["status"]] += 1
    splits = list(split_counts)
    builder, first = HF_FORMATS[fmt], splits[0] if splits else "train"
    out = [
        _yaml_header(fmt, names, splits),
        "# MRE Lens curated relation labels",
        "",
        "Multimodal relation extraction: a social-media post (tokens + one image), a head and a tail entity (word "
        "spans `[start, end)`), and one relation. `label` / `relation` is the curated label: the reviewer's "
        "correction if any, else the source label. Exported by MRE Lens on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        'ds = load_dataset("path/to/this/folder")  # features (ClassLabel, Image) from this card',
        *(
            []
            if fmt == "parquet"
            else [
                'features = db.hf_dataset.hf_features_of("path/to/this/folder")  # or from this YAML header'
            ]
        ),
        f'ds = load_dataset("{builder}", data_files={{"{first}": "{first}.{fmt}"}}'
        + (")  # features from the Parquet schema" if fmt == "parquet" else ", features=features)"),
        "```",
        "",
        "## Counts per split",
        "",
        "| split | pairs |",
        "|---|---:|",
        *[f"| {split} | {n} |" for split, n in split_counts.items()],
        f"| **all** | {len(rows)} |",
        "",
        "Review status of the exported pairs: "
        + ", ".join(f"{status} {n}" for status, n in sorted(statuses.items())),
        "",
        "## Label set",
        "",
        f"`relation` is a ClassLabel over {len(names)} names (id: name); `None` is the negative class.",
        "",
        "| id | relation | " + " | ".join(splits) + " |",
        "|---:|---|" + "---:|" * len(splits),
        *[
            f"| {i} | `{name}` | " + " | ".join(str(per_split_label[s][name]) for s in splits) + " |"
            for i, name in enumerate(names)
        ],
        "",
        "## Annotator agreement",
        "",
        "Cohen's kappa per annotator pair and Krippendorff's alpha (nominal) over each annotator's latest decision "
        "still in effect (`python -m db agreement`):",
        "",
        *_agreement_lines(session, rows),
        "",
        "## Provenance",
        "",
        *_provenance(session, rows),
        "- images: `image` holds the file path on the exporting machine where the file exists (not the bytes)",
        "",
    ]
    return "\n".join(out)
