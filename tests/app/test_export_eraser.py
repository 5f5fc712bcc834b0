"""The Export page writes the ERASER format (a folder: docs/ and <split>.jsonl) as one zip of that folder, kept in
the export folder and offered for download; the rationales are in it."""

from __future__ import annotations

import io
import json
import zipfile

from tests.app.conftest import no_exceptions


def test_export_page_writes_eraser_as_a_zip_of_the_folder(make_app, seeded_url, tmp_path):
    at = make_app(seeded_url, "views/export.py")
    at.selectbox(key="export_format").set_value("eraser").run()
    at.selectbox(key="export_split").set_value("val").run()
    no_exceptions(at)
    assert any("ERASER" in c.value for c in at.caption)
    at.button(key="export_run").click().run()
    no_exceptions(at)
    assert any("8 pairs exported" in s.value for s in at.success)
    kept = list((tmp_path / "exports").iterdir())
    assert len(kept) == 1 and kept[0].suffix == ".zip"
    with zipfile.ZipFile(io.BytesIO(kept[0].read_bytes())) as archive:
        names = archive.namelist()
        stem = kept[0].stem
        assert f"{stem}/val.jsonl" in names
        docs = [n for n in names if n.startswith(f"{stem}/docs/post_")]
        lines = [json.loads(line) for line in archive.read(f"{stem}/val.jsonl").decode().splitlines()]
    assert len(lines) == 8 and docs
    # the synthetic set's own evidence (a box each) while the label is still the gold label
    assert all(line["image_evidence"]["box"] for line in lines)
    assert {line["docids"][0] for line in lines} <= {n.rsplit("/", 1)[1] for n in docs}
    download = at.get("download_button")
    assert len(download) == 1
