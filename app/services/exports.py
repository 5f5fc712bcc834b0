"""The curated labels exported as the Export page does it, without Streamlit: db.io.export_labels into a temporary
folder, read back as (file name, bytes) so the page can keep a copy in the export folder and offer the download.
A format that writes a folder (eraser: docs/ and <split>.jsonl) comes back as one zip of that folder.

    export_files(sessions, fmt, name, export_filter) -> ExportedFiles
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from db.eraser_export import ERASER_FORMAT
from db.io import EXPORT_FORMATS, ExportFilter, export_labels
from db.models import ANNOTATION_STATUSES

__all__ = ["ANNOTATION_STATUSES", "EXPORT_FORMATS", "ExportFilter", "ExportedFiles", "export_files"]


@dataclass(frozen=True)
class ExportedFiles:
    rows: int  # pairs written; 0: nothing matched (the files hold no pair)
    files: list[tuple[str, bytes]]


FOLDER_FORMATS = (ERASER_FORMAT,)  # written as a folder: offered as name.zip holding that folder


def export_files(sessions: sessionmaker, fmt: str, name: str, export_filter: ExportFilter) -> ExportedFiles:
    """`name`: the file's name; for a folder format, the zip's (the folder inside is named by its stem)."""
    with sessions() as session, tempfile.TemporaryDirectory() as tmp:
        if fmt in FOLDER_FORMATS:
            folder = Path(tmp) / Path(name).stem
            report = export_labels(session, fmt, folder, export_filter)
            return ExportedFiles(report.rows, [(name, _zip(folder, report.paths))])
        report = export_labels(session, fmt, Path(tmp) / name, export_filter)
        return ExportedFiles(report.rows, [(path.name, path.read_bytes()) for path in report.paths])


def _zip(folder: Path, paths: list[Path]) -> bytes:
    """The folder's files in one zip, each under folder-name/relative-path (sorted: the same export, the same
    listing)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(paths):
            archive.write(path, (Path(folder.name) / path.relative_to(folder)).as_posix())
    return buffer.getvalue()
