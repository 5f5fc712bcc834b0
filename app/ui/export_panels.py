"""The Export page's drawing helpers: what each format writes (a caption per format, the images option of Label
Studio) and the last export's files with their download buttons."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.ui.render import count, plain

FORMAT_NOTES = {
    "csv": "CSV: the label columns hold JSON strings, so a plain `pandas.read_csv` keeps MNRE's relation "
    '`"None"` apart from no label (an empty cell); `json.loads` gives a label back.',
    "eraser": "ERASER (DeYoung et al., 2020): a folder, `docs/<docid>` per post and `<split>.jsonl` with each "
    "pair's evidence words as `evidences` and its evidence box as `image_evidence`; offered as one zip of the "
    "folder.",
    "labelstudio": "Label Studio: one JSON list of tasks for a project using `db/label_studio_config.xml`, every "
    "decision an annotation; `python -m db import-labelstudio` reads an export of it back.",
    "hf-dataset": "Hugging Face: a dataset folder, `<split>.parquet` with typed features and a dataset card "
    "`README.md` (provenance, label counts, agreement); `datasets.load_dataset(folder)` reads it. Offered as one "
    "zip.",
}
FORMAT_HELP = (
    "mnre: one ours_<split>.txt-style file; untouched records are written byte for byte; eraser: a folder with the "
    "rationales, as one zip; labelstudio: Label Studio tasks (JSON); hf-dataset: a Hugging Face dataset folder with "
    "its card, as one zip"
)


def format_notes(fmt: str, split: str | None) -> bool:
    """What the chosen format writes; returns whether Label Studio tasks come with their images (one zip)."""
    if fmt in FORMAT_NOTES:
        st.caption(FORMAT_NOTES[fmt])
    with_images = False
    if fmt == "labelstudio":
        with_images = st.checkbox(
            "With the images (one zip: tasks.json and images/, Label Studio's local files root = the unzipped "
            "folder)",
            key="export_images",
        )
    if fmt == "mnre" and split is None:
        st.caption(
            "MNRE with split **all**: pairs of several splits go to one file per split (`..._train.txt`, "
            "`..._val.txt`), never one mixed file; pairs of a single split to one file."
        )
    return with_images


def exported_files(files: list[tuple[str, bytes]], rows: int, mime: str, folder: Path) -> None:
    """Where the last export's files were kept, their size, and a download button for each."""
    where = ", ".join(str(folder / file_name) for file_name, _ in files)
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
