"""Export: the curated labels (corrections applied, rejected pairs dropped) in MNRE txt, JSONL, CSV, Parquet,
ERASER's folder layout with the rationales (one zip of the folder), Label Studio tasks (optionally one zip with the
images), or a Hugging Face dataset folder with its card (one zip of the folder)."""

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

EXTENSIONS = {
    "mnre": "txt",
    "jsonl": "jsonl",
    "csv": "csv",
    "parquet": "parquet",
    "eraser": "zip",
    "labelstudio": "json",
    "hf-dataset": "zip",
}
MIME = {
    "mnre": "text/plain",
    "jsonl": "application/jsonl",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "eraser": "application/zip",
    "labelstudio": "application/json",
    "hf-dataset": "application/zip",
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
    "with the rationales, as one zip; labelstudio: Label Studio tasks (JSON); hf-dataset: a Hugging Face dataset "
    "folder with its card, as one zip",
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
with_images = False
if fmt == "labelstudio":
    st.caption(
        "Label Studio: one JSON list of tasks for a project using `db/label_studio_config.xml`, every decision "
        "an annotation; `python -m db import-labelstudio` reads an export of it back."
    )
    with_images = st.checkbox(
        "With the images (one zip: tasks.json and images/, Label Studio's local files root = the unzipped folder)",
        key="export_images",
    )
if fmt == "hf-dataset":
    st.caption(
        "Hugging Face: a dataset folder, `<split>.parquet` with typed features and a dataset card `README.md` "
        "(provenance, label counts, agreement); `datasets.load_dataset(folder)` reads it. Offered as one zip."
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
    extension = "zip" if with_images else EXTENSIONS[fmt]
    name = f"{stem}-{dt.datetime.now():%Y%m%d-%H%M%S}.{extension}"
    try:
        report = export_files(sessions, fmt, name, export_filter, with_images)
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
    mime = "application/zip" if with_images else MIME[fmt]
    st.session_state["export_result"] = (files, report.rows, mime) if report.rows else None
    if not report.rows:
        st.info(
            "Nothing to export: no curated pair matches these filters (rejected and unlabelled pairs are left "
            "out). No file was written."
        )

result = st.session_state.get("export_result")
if result:
    files, rows, mime = result
    where = ", ".join(str(export_dir() / file_name) for file_name, _ in files)
    size = sum(len(data) for _, data in files)
    st.success(f"{count(rows, 'pair')} exported to {plain(where)} ({count(size, 'byte')}).")
    for k, (file_name, data) in enumerate(files):
        st.download_button(
            f"Download {file_name}",
            data,
            file_name=file_name,
            mime=mime,
            key=f"export_download_{k}",
            type="primary",
        )
