"""Add post uploads: a refused image leaves nothing in the uploads folder, errors name the user's own file name
(never the hashed path), and nothing blocks on a FIFO."""

from __future__ import annotations

import io
import os
import threading

import pytest
from PIL import Image
from sqlalchemy import func, select

from app.services.store import UploadedImage, add_post
from db.models import Post
from db.schema import open_database
from model.data import DataFormatError


@pytest.fixture
def sessions(tmp_path):
    engine, sessions = open_database(f"sqlite:///{tmp_path / 'store.db'}", intent="create")
    yield sessions
    engine.dispose()


def png_bytes(color=(10, 20, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), color).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((64, 48), 60).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _files(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_a_refused_image_is_not_kept_and_the_error_names_the_users_file(sessions, tmp_path):
    uploads = tmp_path / "uploads"
    cut = jpeg_bytes()[:400]
    with pytest.raises(DataFormatError) as caught:
        add_post(
            sessions, "Obama meets Merkel", (0, 1), (2, 3), UploadedImage(cut, "My holiday.jpg"), uploads
        )
    message = str(caught.value)
    assert message.startswith("My holiday.jpg:") and str(uploads) not in message
    assert _files(uploads) == []


def test_uploads_over_the_size_limit_are_refused_before_anything_is_written(sessions, tmp_path):
    uploads = tmp_path / "uploads"
    with pytest.raises(DataFormatError, match=r"big\.png: .*upload limit"):
        add_post(
            sessions,
            "a b",
            (0, 1),
            (1, 2),
            UploadedImage(png_bytes(), "big.png"),
            uploads,
            max_upload_bytes=50,
        )
    assert _files(uploads) == []


def test_a_post_refused_after_its_image_was_saved_removes_only_its_own_file(sessions, tmp_path):
    uploads = tmp_path / "uploads"
    kept = add_post(
        sessions, "Obama meets Merkel", (0, 1), (2, 3), UploadedImage(png_bytes(), "a.png"), uploads
    )
    assert kept.created and _files(uploads) == [kept.image_path.name]
    # same image, bad span: the image file still belongs to the first post and stays
    with pytest.raises(DataFormatError, match="field 'tail'"):
        add_post(sessions, "Obama meets Merkel", (0, 1), (2, 9), UploadedImage(png_bytes(), "a.png"), uploads)
    assert _files(uploads) == [kept.image_path.name]
    # a new image with a bad span: its file is removed again
    with pytest.raises(DataFormatError, match="field 'tail'"):
        add_post(sessions, "x y", (0, 1), (1, 5), UploadedImage(png_bytes((200, 0, 0)), "b.png"), uploads)
    assert _files(uploads) == [kept.image_path.name]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Post)) == 1


def test_a_fifo_in_the_uploads_folder_never_blocks(sessions, tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    data = png_bytes((1, 2, 3))
    first = add_post(sessions, "p q", (0, 1), (1, 2), UploadedImage(data, "p.png"), uploads)
    first.image_path.unlink()
    os.mkfifo(first.image_path)  # a FIFO where the upload will be written
    outcome: list = []

    def attempt() -> None:
        try:
            outcome.append(add_post(sessions, "r s", (0, 1), (1, 2), UploadedImage(data, "p.png"), uploads))
        except BaseException as err:  # handed to the assertion below
            outcome.append(err)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=5)
    if worker.is_alive():
        with open(first.image_path, "rb"):
            pass
        pytest.fail("add_post blocked on a FIFO in the uploads folder")
    assert not isinstance(outcome[0], BaseException), outcome[0]
    assert first.image_path.is_file() and first.image_path.read_bytes() == data


def test_the_review_image_of_a_damaged_file_is_a_panel_not_an_exception(tmp_path):
    from app.ui.review_actions import boxed_image

    damaged = tmp_path / "damaged.jpg"
    damaged.write_bytes(jpeg_bytes()[:600])  # cut after import: the Review page must still render
    panel = boxed_image(str(damaged), ())
    assert panel.size == (480, 80)
    whole = tmp_path / "whole.png"
    whole.write_bytes(png_bytes())
    assert boxed_image(str(whole), ()).size == (32, 24)
