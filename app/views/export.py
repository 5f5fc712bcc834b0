"""Export: the curated labels (corrections applied, rejected pairs dropped) in MNRE txt, JSONL, CSV, Parquet, or
ERASER's folder layout with the rationales (one zip of the folder)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import streamlit as st

from app.services.errors import LabelStoreError
from app.services.exports import ANNOTATION_STATUSES, EXPORT_FORMATS, ExportFilter, export_files
from app.services.paths import export_dir
from app.services.store import dataset_names, filter_options
from app.ui.render import count, plain
from app.ui.resources import get_sessions
from model.safe_write import UnsafeTargetError, atomic_file

EXTENSIONS = {"mnre": "txt", "jsonl": "jsonl", "csv": "csv", "parquet": "parquet", "eraser": "zip"}
MIME = {
    "mnre": "text/plain",
    "jsonl": "application/jsonl",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "eraser": "application/zip",
}

st.title("Export curated labels")
sessions = get_sessions()
datasets = dataset_names(sessions)
with sessions() as session:
    options = filter_options(session)
if not datasets:
    st.info("Nothing to export yet: the label store is empty.")
    st.stop()

c1, c2, c3 = st.columns(3)
dataset = c1.selectbox("Dataset", [None, *datasets], format_func=lambda x: x or "all", key="export_dataset")
split = c2.selectbox("Split", [None, *options["split"]], format_func=lambda x: x or "all", key="export_split")
fmt = c3.selectbox(
    "Format",
    EXPORT_FORMATS,
    key="export_format",
    help="mnre: one ours_<split>.txt-style file; untouched records are written byte for byte; eraser: a folder "
    "with the rationales, as one zip",
)
c4, c5, c6 = st.columns(3)
statuses = c4.multiselect("Status", ANNOTATION_STATUSES, key="export_statuses", placeholder="any status")
annotator = c5.selectbox(
    "Annotator", [None, *options["annotator"]], format_func=lambda x: x or "anyone", key="export_annotator"
)
label = c6.selectbox(
    "Curated label", [None, *options["gold_label"]], format_func=lambda x: x or "any", key="export_label"
)
c7, c8, c9 = st.columns(3)
since = c7.date_input("Decided on or after", value=None, key="export_since")
until = c8.date_input("Decided before", value=None, key="export_until")
include_rejected = c9.checkbox(
    "Keep rejected pairs (empty label)", key="export_rejected", disabled=fmt == "mnre"
)


def utc_day(day: dt.date | None) -> dt.datetime | None:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) if day else None


export_filter = ExportFilter(
    dataset,
    split,
    statuses or None,
    annotator,
    label,
    utc_day(since),
    utc_day(until),
    include_rejected and fmt != "mnre",
)
if fmt == "csv":
    st.caption(
        "CSV: the label columns hold JSON strings, so a plain `pandas.read_csv` keeps MNRE's relation "
        '`"None"` apart from no label (an empty cell); `json.loads` gives a label back.'
    )
if fmt == "eraser":
    st.caption(
        "ERASER (DeYoung et al., 2020): a folder, `docs/<docid>` per post and `<split>.jsonl` with each pair's "
        "evidence words as `evidences` and its evidence box as `image_evidence`; offered as one zip of the folder."
    )
if fmt == "mnre" and split is None:
    st.caption(
        "MNRE with split **all**: one file per split (`..._train.txt`, `..._val.txt`), never one mixed file."
    )


def _bytes_writer(data: bytes):
    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    return write


if st.button("Export", type="primary", key="export_run"):
    # names stored before the importers checked them may hold any character: keep the file name plain
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{dataset or 'all'}-{split or 'all'}").lstrip(".")[:120]
    name = f"{stem}-{dt.datetime.now():%Y%m%d-%H%M%S}.{EXTENSIONS[fmt]}"
    try:
        report = export_files(sessions, fmt, name, export_filter)
        files = report.files
        # nothing selected: say so and write nothing (no empty file in the export folder, no green success)
        if report.rows:
            # the copies kept in the export folder: each file written atomically, never outside that folder
            for file_name, data in files:
                atomic_file(
                    export_dir() / file_name, _bytes_writer(data), inside=export_dir(), option="export"
                )
    except (LabelStoreError, UnsafeTargetError) as err:
        st.error(f"Export failed: {plain(err)}")
        st.stop()
    st.session_state["export_result"] = (files, report.rows, fmt) if report.rows else None
    if not report.rows:
        st.info(
            "Nothing to export: no curated pair matches these filters (rejected and unlabelled pairs are left "
            "out). No file was written."
        )

result = st.session_state.get("export_result")
if result:
    files, rows, result_fmt = result
    where = ", ".join(str(export_dir() / file_name) for file_name, _ in files)
    size = sum(len(data) for _, data in files)
    st.success(f"{count(rows, 'pair')} exported to {plain(where)} ({count(size, 'byte')}).")
    for k, (file_name, data) in enumerate(files):
        st.download_button(
            f"Download {file_name}",
            data,
            file_name=file_name,
            mime=MIME[result_fmt],
            key=f"export_download_{k}",
            type="primary",
        )
