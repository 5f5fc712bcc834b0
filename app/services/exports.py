"""The curated labels exported as the Export page does it, without Streamlit: db.label_export.export_labels into a temporary
folder, read back as (file name, bytes) so the page can keep a copy in the export folder and offer the download.
A format that writes a folder (eraser: docs/ and <split>.jsonl; the Hugging Face dataset folder: <split>.parquet and
its card README.md) comes back as one zip of that folder. Label Studio tasks (db.label_studio_export) are one JSON
file, or with the images one zip: tasks.json and images/<img_id>, the tasks pointing at
/data/local-files/?d=images/<img_id> (Label Studio's local files, LOCAL_FILES_DOCUMENT_ROOT = the unzipped folder).

    export_files(sessions, fmt, name, export_filter, with_images=False) -> ExportedFiles
    export_and_keep(sessions, fmt, dataset, split, export_filter, with_images=False) -> KeptExport
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from db.eraser_export import ERASER_FORMAT
from db.export_rows import ExportFilter
from db.label_export import EXPORT_FORMATS as FILE_FORMATS
from db.label_export import export_labels
from db.label_studio_export import DEFAULT_IMAGE_PREFIX, export_label_studio
from db.label_studio_format import LABEL_STUDIO_FORMAT
from db.models import ANNOTATION_STATUSES
from model.safe_write import atomic_file

__all__ = [
    "ANNOTATION_STATUSES",
    "EXPORT_FORMATS",
    "ExportFilter",
    "ExportedFiles",
    "KeptExport",
    "export_and_keep",
    "export_files",
]

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


# format -> (file extension, MIME type) of what is offered for download
DOWNLOADS = {
    "mnre": ("txt", "text/plain"),
    "jsonl": ("jsonl", "application/jsonl"),
    "csv": ("csv", "text/csv"),
    "parquet": ("parquet", "application/vnd.apache.parquet"),
    ERASER_FORMAT: ("zip", "application/zip"),
    LABEL_STUDIO_FORMAT: ("json", "application/json"),
    HF_DATASET: ("zip", "application/zip"),
}


def utc_day(day: dt.date | None) -> dt.datetime | None:
    """A picked calendar day as its first instant in UTC (the filters' bounds); None stays None."""
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) if day else None


def export_name(dataset: str | None, split: str | None, extension: str, now: dt.datetime) -> str:
    """ "<dataset>-<split>-<YYYYmmdd-HHMMSS>.<extension>": names stored before the importers checked them may hold
    any character, so the file name keeps only plain ones (and never starts with a dot)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{dataset or 'all'}-{split or 'all'}").lstrip(".")[:120]
    return f"{stem}-{now:%Y%m%d-%H%M%S}.{extension}"


@dataclass(frozen=True)
class KeptExport:
    rows: int  # pairs written; 0: nothing matched and no file was written
    files: list[tuple[str, bytes]]  # (name, bytes) of each file kept in the export folder
    mime: str
    folder: Path  # the export folder the files were kept in


def export_and_keep(
    sessions: sessionmaker,
    fmt: str,
    dataset: str | None,
    split: str | None,
    export_filter: ExportFilter,
    with_images: bool = False,
    folder: Path | None = None,
) -> KeptExport:
    """export_files under a dated name, each file kept in the export folder (app.services.paths.export_dir, written
    atomically, never outside it); nothing is written when no pair matches. Raises LabelStoreError or
    model.safe_write.UnsafeTargetError."""
    from app.services.paths import export_dir

    folder = folder or export_dir()
    extension, mime = ("zip", "application/zip") if with_images else DOWNLOADS[fmt]
    name = export_name(dataset, split, extension, dt.datetime.now())
    report = export_files(sessions, fmt, name, export_filter, with_images)
    if report.rows:
        for file_name, data in report.files:
            atomic_file(folder / file_name, _bytes_writer(data), inside=folder, option="export")
    return KeptExport(report.rows, report.files if report.rows else [], mime, folder)


def _bytes_writer(data: bytes):
    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    return write


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
