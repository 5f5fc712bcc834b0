"""The hostile-input image loader: every refusal is an ImageError naming the file, and nothing blocks."""

from __future__ import annotations

import io
import os
import threading

import numpy as np
import pytest
from PIL import Image

from model.images import ImageError, load_image, load_image_file


def jpeg_bytes(optimize: bool = False, progressive: bool = False) -> bytes:
    rng = np.random.default_rng(0)
    pixels = (rng.random((120, 160, 3)) * 255).astype("uint8")
    pixels[:60] = 120
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90, optimize=optimize, progressive=progressive)
    return buffer.getvalue()


def scan_start(data: bytes) -> int:
    return data.index(b"\xff\xda")


def test_whole_images_load_fully_with_their_digest(tmp_path):
    path = tmp_path / "ok.jpg"
    path.write_bytes(jpeg_bytes())
    loaded = load_image_file(path)
    assert loaded.image.size == (160, 120)
    # decoded, not lazily bound to the file: pixel access works after the file is gone
    path.unlink()
    assert loaded.image.convert("RGB").getpixel((5, 5)) is not None
    assert len(loaded.sha256) == 64
    png = tmp_path / "ok.png"
    Image.new("L", (7, 5), 3).save(png)
    assert load_image(png).size == (7, 5)


def test_jpeg_cut_in_half_is_refused(tmp_path):
    data = jpeg_bytes()
    path = tmp_path / "half.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"half\.jpg: .*(damaged|cut short|corrupt)"):
        load_image(path)


@pytest.mark.parametrize("optimize,progressive", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("span", [(0.3, 0.5), (0.5, 0.9), (0.6, 0.62)])
def test_jpeg_with_zeroed_scan_data_is_refused(tmp_path, optimize, progressive, span):
    data = bytearray(jpeg_bytes(optimize, progressive))
    start = scan_start(data) + 20
    first, last = (start + int((len(data) - 2 - start) * f) for f in span)
    data[first:last] = bytes(last - first)
    path = tmp_path / "zeroed.jpg"
    path.write_bytes(bytes(data))
    # Pillow alone decodes this without complaint: the check must come from the strict JPEG pass
    with pytest.raises(ImageError, match=r"zeroed\.jpg: .*corrupt"):
        load_image(path)


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            load_image(fifo)
            outcome.append(None)
        except BaseException as err:  # recorded for the assertion below
            outcome.append(err)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=5)
    if worker.is_alive():  # unblock the reader so the test process can exit
        with open(fifo, "wb"):
            pass
        pytest.fail("load_image blocked on a FIFO")
    assert isinstance(outcome[0], ImageError) and "FIFO" in str(outcome[0])


def test_directory_and_device_are_refused(tmp_path):
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)
    with pytest.raises(ImageError, match="device"):
        load_image("/dev/zero")
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "missing.png")


def test_limits_on_bytes_and_pixels_and_bombs(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 200)).save(path)
    with pytest.raises(ImageError, match="byte limit"):
        load_image(path, max_bytes=100)
    with pytest.raises(ImageError, match="300x200 pixels is over the 50000 pixel limit"):
        load_image(path, max_pixels=50_000)
    # a 20000x20000 PNG of one colour: tiny on disk, 1.2 GB decoded
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)
    assert bomb.stat().st_size < 200_000
    with pytest.raises(ImageError, match="bomb"):
        load_image(bomb)


def test_errors_name_the_users_file_not_the_stored_path(tmp_path):
    stored = tmp_path / "3f9a0c1d2e.jpg"
    stored.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with pytest.raises(ImageError) as caught:
        load_image(stored, name="holiday photo.jpg")
    assert str(caught.value).startswith("holiday photo.jpg: ")
    assert "3f9a0c1d2e" not in str(caught.value)


def test_formats_outside_the_allowed_set_are_refused(tmp_path):
    path = tmp_path / "x.tiff"
    Image.new("RGB", (4, 4)).save(path)
    with pytest.raises(ImageError, match="format TIFF"):
        load_image(path)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(empty)


def test_every_model_side_image_reader_refuses_what_the_import_refuses(tmp_path):
    """The feature cache, the CLIP input and grounding read images too: a FIFO must not block them and a JPEG with
    zeroed scan data (which Pillow decodes silently) must count as unreadable, as it does for the import."""
    from model.grounding import IMAGE_ERRORS, load_crops
    from model.visual_features import FeatureCache, clip_visual_inputs

    good = tmp_path / "good.jpg"
    good.write_bytes(jpeg_bytes())
    data = bytearray(jpeg_bytes())
    start = scan_start(data) + 20
    data[start + 200 : start + 900] = bytes(700)
    zeroed = tmp_path / "zeroed.jpg"
    zeroed.write_bytes(bytes(data))
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    outcome: dict = {}

    def read_all() -> None:
        outcome["keys"] = FeatureCache(tmp_path / "features").keys([good, zeroed, fifo])
        outcome["clip_mask"] = clip_visual_inputs(good, [zeroed, fifo], max_crops=2, size=32)[1].tolist()
        outcome["crop_errors"] = []
        for path in (zeroed, fifo):
            try:
                load_crops([path])
            except IMAGE_ERRORS as err:
                outcome["crop_errors"].append(type(err).__name__)

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    reader.join(timeout=120)
    if reader.is_alive():
        # unblock the reader stuck on the FIFO so the test process can end
        with open(fifo, "wb"):
            pass
        pytest.fail("an image reader blocked on a FIFO")
    assert list(outcome["keys"]) == [good]
    assert outcome["clip_mask"] == [1.0, 0.0, 0.0]
    assert outcome["crop_errors"] == ["ImageError", "ImageError"]
