"""The curated labels exported as the Export page does it, without Streamlit: db.io.export_labels into a temporary
folder, read back as (file name, bytes) so the page can keep a copy in the export folder and offer the download.

    export_files(sessions, fmt, name, export_filter) -> ExportedFiles
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from db.io import EXPORT_FORMATS, ExportFilter, export_labels
from db.models import ANNOTATION_STATUSES

__all__ = ["ANNOTATION_STATUSES", "EXPORT_FORMATS", "ExportFilter", "ExportedFiles", "export_files"]


@dataclass(frozen=True)
class ExportedFiles:
    rows: int  # pairs written; 0: nothing matched (the files hold no pair)
    files: list[tuple[str, bytes]]


def export_files(sessions: sessionmaker, fmt: str, name: str, export_filter: ExportFilter) -> ExportedFiles:
    with sessions() as session, tempfile.TemporaryDirectory() as tmp:
        report = export_labels(session, fmt, Path(tmp) / name, export_filter)
        return ExportedFiles(report.rows, [(path.name, path.read_bytes()) for path in report.paths])
