"""Label Studio tasks and the Hugging Face dataset folder (with its card) from the Export page, each downloaded
from the page's button and read back; Label Studio optionally as one zip with the images."""

from __future__ import annotations

import io
import json
import zipfile

import pyarrow.parquet as pq
import pytest
import yaml

from tests.app.conftest import no_exceptions


@pytest.fixture
def media(monkeypatch) -> dict[str, bytes]:
    """Every file the app hands to Streamlit's media storage (a download button's data), by its file id: AppTest's
    storage lives for one run only."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    stored: dict[str, bytes] = {}
    real = MemoryMediaFileStorage.load_and_get_id

    def keep(self, path_or_data, mimetype, kind, filename=None):
        file_id = real(self, path_or_data, mimetype, kind, filename)
        if isinstance(path_or_data, bytes):
            stored[file_id] = path_or_data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", keep)
    return stored


def downloaded(at, media: dict[str, bytes]) -> tuple[str, bytes]:
    """The file behind the page's one download button, as the browser would get it: (file name, bytes)."""
    (button,) = at.get("download_button")
    file_id = button.proto.url.rsplit("/", 1)[-1].split(".", 1)[0]
    return button.proto.label.removeprefix("Download "), media[file_id]


def export(at, fmt: str, **options):
    at.selectbox(key="export_format").set_value(fmt).run()
    at.selectbox(key="export_split").set_value("val").run()
    for key, value in options.items():
        at.checkbox(key=key).set_value(value).run()
    at.button(key="export_run").click().run()
    no_exceptions(at)
    assert any("8 pairs exported" in s.value for s in at.success), [s.value for s in at.success]


def test_label_studio_tasks_download_and_read_back(make_app, seeded_url, media):
    at = make_app(seeded_url, "views/export.py")
    export(at, "labelstudio")
    name, data = downloaded(at, media)
    assert name.endswith(".json")
    tasks = json.loads(data)
    assert len(tasks) == 8
    assert all(t["data"]["mrelens"]["tokens"] and t["data"]["mrelens"]["head"] for t in tasks)
    assert all(t["data"]["text"] and "mrelens" in t["data"] for t in tasks)


def test_label_studio_with_images_is_one_zip_whose_tasks_point_at_its_images(make_app, seeded_url, media):
    at = make_app(seeded_url, "views/export.py")
    export(at, "labelstudio", export_images=True)
    name, data = downloaded(at, media)
    assert name.endswith(".zip")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        stem = name.removesuffix(".zip")
        tasks = json.loads(archive.read(f"{stem}/tasks.json"))
    assert len(tasks) == 8
    for task in tasks:
        image = task["data"]["image"]
        assert image.startswith("/data/local-files/?d=images/"), image
        assert f"{stem}/{image.split('?d=', 1)[1]}" in names, image


def test_hugging_face_dataset_folder_with_its_card(make_app, seeded_url, media):
    at = make_app(seeded_url, "views/export.py")
    export(at, "hf-dataset")
    name, data = downloaded(at, media)
    assert name.endswith(".zip")
    stem = name.removesuffix(".zip")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        card = archive.read(f"{stem}/README.md").decode()
        table = pq.read_table(io.BytesIO(archive.read(f"{stem}/val.parquet")))
    assert table.num_rows == 8 and "relation" in table.column_names
    header = yaml.safe_load(card.split("---")[1])
    assert header, card[:200]
    assert f"{stem}/val.parquet" in names
