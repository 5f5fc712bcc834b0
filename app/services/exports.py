"""The curated labels exported as the Export page does it, without Streamlit: db.io.export_labels into a temporary
folder, read back as (file name, bytes) so the page can keep a copy in the export folder and offer the download.
A format that writes a folder (eraser: docs/ and <split>.jsonl; the Hugging Face dataset folder: <split>.parquet and
its card README.md) comes back as one zip of that folder. Label Studio tasks (db.label_studio_export) are one JSON
file, or with the images one zip: tasks.json and images/<img_id>, the tasks pointing at
/data/local-files/?d=images/<img_id> (Label Studio's local files, LOCAL_FILES_DOCUMENT_ROOT = the unzipped folder).

    export_files(sessions, fmt, name, export_filter, with_images=False) -> ExportedFiles
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from db.eraser_export import ERASER_FORMAT
from db.io import EXPORT_FORMATS as FILE_FORMATS
from db.io import ExportFilter, export_labels
from db.label_studio_export import DEFAULT_IMAGE_PREFIX, export_label_studio
from db.label_studio_format import LABEL_STUDIO_FORMAT
from db.models import ANNOTATION_STATUSES

__all__ = ["ANNOTATION_STATUSES", "EXPORT_FORMATS", "ExportFilter", "ExportedFiles", "export_files"]

HF_DATASET = "hf-dataset"  # db.hf_dataset: a folder of <split>.parquet files and its dataset card
EXPORT_FORMATS = (*FILE_FORMATS, LABEL_STUDIO_FORMAT, HF_DATASET)
ZIPPED_IMAGES_PREFIX = f"{DEFAULT_IMAGE_PREFIX}images/"  # the tasks of a zip with its images point into it


@dataclass(frozen=True)
class ExportedFiles:
    rows: int  # pairs written; 0: nothing matched (the files hold no pair)
    files: list[tuple[str, bytes]]


FOLDER_FORMATS = (ERASER_FORMAT, HF_DATASET)  # written as a folder: offered as name.zip holding that folder


def export_files(
    sessions: sessionmaker, fmt: str, name: str, export_filter: ExportFilter, with_images: bool = False
) -> ExportedFiles:
    """`name`: the file's name; for a folder format (or Label Studio with images), the zip's (the folder inside is
    named by its stem)."""
    with sessions() as session, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / Path(name).stem.replace(".", "_")  # no suffix: db reads a suffix as "one file"
        if fmt == LABEL_STUDIO_FORMAT and with_images:
            folder.mkdir()
            report = export_label_studio(session, folder / "tasks.json", export_filter, ZIPPED_IMAGES_PREFIX)
            images = _task_images(report.paths[0], folder / "images")
            return ExportedFiles(report.rows, [(name, _zip(folder, [*report.paths, *images]))])
        if fmt == LABEL_STUDIO_FORMAT:
            report = export_label_studio(session, Path(tmp) / name, export_filter)
            return ExportedFiles(report.rows, [(name, report.paths[0].read_bytes())])
        if fmt in FOLDER_FORMATS:
            report = export_labels(session, "parquet" if fmt == HF_DATASET else fmt, folder, export_filter)
            return ExportedFiles(report.rows, [(name, _zip(folder, report.paths))])
        report = export_labels(session, fmt, Path(tmp) / name, export_filter)
        return ExportedFiles(report.rows, [(path.name, path.read_bytes()) for path in report.paths])


def _task_images(tasks_file: Path, images: Path) -> list[Path]:
    """Copy each task's image (its stored file, when on this machine) to images/<img_id>; the copies' paths."""
    copied = []
    images.mkdir(exist_ok=True)
    for task in json.loads(tasks_file.read_text(encoding="utf-8")):
        meta = task["data"]["mrelens"]
        source, img_id = meta.get("image_path"), meta.get("img_id")
        target = images / Path(img_id or "").name
        if source and img_id and Path(source).is_file() and not target.exists():
            shutil.copyfile(source, target)
            copied.append(target)
    return copied


def _zip(folder: Path, paths: list[Path]) -> bytes:
    """The folder's files in one zip, each under folder-name/relative-path (sorted: the same export, the same
    listing)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(paths):
            archive.write(path, (Path(folder.name) / path.relative_to(folder)).as_posix())
    return buffer.getvalue()
