"""Export: the curated labels (corrections applied, rejected pairs dropped) in MNRE txt, JSONL, CSV, Parquet,
ERASER's folder layout with the rationales (one zip of the folder), Label Studio tasks (optionally one zip with the
images), or a Hugging Face dataset folder with its card (one zip of the folder). The files are written by
app.services.exports and kept in the export folder; app.ui.export_panels draws the notes and the downloads."""

from __future__ import annotations

import streamlit as st

from app.services.errors import LabelStoreError
from app.services.exports import ANNOTATION_STATUSES, EXPORT_FORMATS, ExportFilter, export_and_keep, utc_day
from app.services.paths import export_dir
from app.services.store import dataset_names, store_filter_options
from app.ui.export_panels import FORMAT_HELP, exported_files, format_notes
from app.ui.render import plain
from app.ui.resources import get_sessions
from model.safe_write import UnsafeTargetError

st.title("Export curated labels")
sessions = get_sessions()
datasets = dataset_names(sessions)
options = store_filter_options(sessions)
if not datasets:
    st.info("Nothing to export yet: the label store is empty.")
    st.stop()

c1, c2, c3 = st.columns(3)
dataset = c1.selectbox("Dataset", [None, *datasets], format_func=lambda x: x or "all", key="export_dataset")
split = c2.selectbox("Split", [None, *options["split"]], format_func=lambda x: x or "all", key="export_split")
fmt = c3.selectbox("Format", EXPORT_FORMATS, key="export_format", help=FORMAT_HELP)
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
    "Keep rejected pairs (empty label)",
    key="export_rejected",
    disabled=fmt == "mnre",
    help=(
        "An MNRE line has no empty label: the MNRE format always leaves rejected pairs out. Pick another format "
        "to keep them."
        if fmt == "mnre"
        else "Write rejected pairs with an empty label instead of leaving them out."
    ),
)
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
with_images = format_notes(fmt, split)

if st.button("Export", type="primary", key="export_run"):
    try:
        kept = export_and_keep(sessions, fmt, dataset, split, export_filter, with_images)
    except (LabelStoreError, UnsafeTargetError) as err:
        st.error(f"Export failed: {plain(err)}")
        st.stop()
    st.session_state["export_result"] = (kept.files, kept.rows, kept.mime) if kept.rows else None
    if not kept.rows:
        # nothing selected: say so and write nothing (no empty file in the export folder, no green success)
        st.info(
            "Nothing to export: no curated pair matches these filters (rejected and unlabelled pairs are left "
            "out). No file was written."
        )

if result := st.session_state.get("export_result"):
    exported_files(*result, export_dir())
