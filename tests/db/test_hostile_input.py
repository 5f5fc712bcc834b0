"""Bad input to the label store: one clear error naming the file, line or field, and nothing stored changes."""

from __future__ import annotations

import os
import threading

import pytest
from sqlalchemy import func, select

from db.io import import_mnre, import_post
from db.models import EntityPair, Post
from model.data import DataFormatError
from tests.model.test_images import jpeg_bytes, scan_start


def _pairs(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(EntityPair))


def test_import_refuses_a_jpeg_cut_in_half(sessions, mini_mnre):
    image = mini_mnre / "img_org" / "train" / "img1.jpg"
    data = jpeg_bytes()
    image.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError) as caught, sessions.begin() as session:
        import_mnre(session, mini_mnre)
    assert "ours_train.txt:1:" in str(caught.value) and "'img_id'" in str(caught.value)
    assert _pairs(sessions) == 0


def test_import_refuses_a_jpeg_with_zeroed_scan_data(sessions, mini_mnre):
    data = bytearray(jpeg_bytes())
    start = scan_start(data) + 20
    middle = start + (len(data) - start) // 2
    data[middle : middle + 2000] = bytes(2000)
    (mini_mnre / "img_org" / "train" / "img1.jpg").write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match="corrupt JPEG data"), sessions.begin() as session:
        import_mnre(session, mini_mnre)
    # with --skip-bad the record is kept without an image, never with a damaged one
    with sessions.begin() as session:
        report = import_mnre(session, mini_mnre, skip_bad=True)
    assert report.with_image == 0 and any("corrupt JPEG" in s for s in report.skipped)


def _run_with_deadline(target, seconds: float = 5.0) -> list:
    outcome: list = []

    def attempt() -> None:
        try:
            outcome.append(target())
        except BaseException as err:  # handed to the test's assertions
            outcome.append(err)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=seconds)
    return outcome if not worker.is_alive() else []


def test_a_fifo_given_as_an_image_is_refused_without_hanging(sessions, mini_mnre, tmp_path):
    image = mini_mnre / "img_org" / "train" / "img1.jpg"
    image.unlink()
    os.mkfifo(image)
    pipe = tmp_path / "post.jpg"
    os.mkfifo(pipe)

    def import_folder():
        with sessions.begin() as session:
            return import_mnre(session, mini_mnre)

    def import_one_post():
        with sessions.begin() as session:
            return import_post(session, "Obama meets Merkel", (0, 1), (2, 3), pipe)

    for target, fifo in ((import_folder, image), (import_one_post, pipe)):
        outcome = _run_with_deadline(target)
        if not outcome:
            with open(fifo, "wb"):  # let the blocked reader go
                pass
            pytest.fail(f"{target.__name__} hung on a FIFO")
        if target is import_one_post:
            assert isinstance(outcome[0], DataFormatError) and "FIFO" in str(outcome[0])
            assert "post.jpg" in str(outcome[0])
    # the folder's reader treats a special file as a missing image: the record is stored without one
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Post).where(Post.has_image)) == 0
