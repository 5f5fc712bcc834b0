"""Reading image files that may be hostile: one loader for every place that opens a post's image or crop.

`load_image` refuses, with an ImageError naming the file, anything that is not a whole, decodable image of a sane
size: special files (FIFOs, devices, directories; checked on the open descriptor, so a FIFO never blocks), files over
`max_bytes`, images over `max_pixels` (decompression bombs included), formats outside ALLOWED_IMAGE_FORMATS, and
images whose data is cut short or corrupt. The image is fully decoded (`Image.load()`): `Image.verify()` does not
decode JPEG scan data, so a JPEG cut in half would pass it and fail later in a page.

Pillow ignores libjpeg's "corrupt data" warnings, so a JPEG with part of its scan data zeroed or overwritten decodes
to a damaged picture without an error; JPEGs are therefore also decoded once by libjpeg-turbo (simplejpeg) with
warnings as errors, at 1/8 scale (the whole entropy-coded stream is still read, the pixels cost 1/64).

Torch-free on purpose: the label store (db/) and the app's upload page import it.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

ALLOWED_IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP")
# Tweet images are ~0.5M pixels and well under 5 MB; these bounds leave room for photos without letting one
# image take gigabytes of memory.
DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
_READ_CHUNK = 1 << 20


class ImageError(ValueError):
    """An image file that is refused; the message names the file (the user's own name for uploads)."""

    def __init__(self, name: str | Path, problem: str):
        self.name, self.problem = str(name), problem
        super().__init__(f"{name}: {problem}")


@dataclass(frozen=True)
class LoadedImage:
    image: Image.Image  # fully decoded, detached from the file
    sha256: str  # of the file's bytes
    size_bytes: int


def read_image_bytes(
    path: str | Path, *, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES, name: str | None = None
) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; anything else is an ImageError (never blocks)."""
    shown = name or str(path)
    try:
        before = os.stat(path)
    except FileNotFoundError as err:
        raise ImageError(shown, "file not found") from err
    except OSError as err:
        raise ImageError(shown, f"cannot be read ({err.strerror})") from err
    if not stat.S_ISREG(before.st_mode):
        raise ImageError(shown, f"is {file_kind(before.st_mode)}, not a regular image file")
    if before.st_size > max_bytes:
        raise ImageError(shown, f"{before.st_size} bytes is over the {max_bytes} byte limit for an image")
    # O_NONBLOCK: if the path was swapped for a FIFO after the stat, opening it must not wait for a writer
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        reason = "is a FIFO or device" if err.errno == errno.ENXIO else f"cannot be read ({err.strerror})"
        raise ImageError(shown, reason) from err
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise ImageError(shown, f"is {file_kind(opened.st_mode)}, not a regular image file")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, _READ_CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise ImageError(shown, f"more than {max_bytes} bytes is over the byte limit for an image")
            chunks.append(chunk)
    except OSError as err:
        raise ImageError(shown, f"cannot be read ({err.strerror})") from err
    finally:
        os.close(fd)
    return b"".join(chunks)


def file_kind(mode: int) -> str:
    """What a path that is not a regular file is, in words (image loading and model.safe_write both say it)."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def decode_image(
    data: bytes,
    *,
    name: str,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    formats: tuple[str, ...] = ALLOWED_IMAGE_FORMATS,
) -> Image.Image:
    """Fully decode image bytes (first frame); ImageError names `name` when they are not a whole, sane image."""
    if not data:
        raise ImageError(name, "is empty (0 bytes)")
    try:
        # Pillow's own bomb guard warns or raises on its global limit; ours is checked below on the header
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        if image.format not in formats:
            raise ImageError(name, f"format {image.format} is not one of {', '.join(formats)}")
        width, height = image.size
        if width <= 0 or height <= 0:
            raise ImageError(name, f"has no pixels ({width}x{height})")
        if width * height > max_pixels:
            raise ImageError(
                name,
                f"{width}x{height} pixels is over the {max_pixels} pixel limit (decompression bomb guard)",
            )
        image.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(name, f"refused as a decompression bomb ({err})") from err
    except UnidentifiedImageError as err:
        raise ImageError(name, "is not an image file Pillow can identify") from err
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as err:
        raise ImageError(name, f"is damaged or cut short ({err})") from err
    if image.format == "JPEG":
        _check_jpeg_stream(data, name)
    return image


def _check_jpeg_stream(data: bytes, name: str) -> None:
    """Decode the JPEG with libjpeg warnings as errors: zeroed or overwritten scan data is caught here."""
    import simplejpeg

    try:
        _, _, colorspace, _ = simplejpeg.decode_jpeg_header(data)
        target = {"Gray": "GRAY", "CMYK": "CMYK", "YCCK": "CMYK"}.get(colorspace, "RGB")
        simplejpeg.decode_jpeg(data, colorspace=target, min_factor=8, strict=True)
    except ValueError as err:
        raise ImageError(name, f"has corrupt JPEG data ({err})") from err


def load_image_file(
    path: str | Path,
    *,
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    name: str | None = None,
    formats: tuple[str, ...] = ALLOWED_IMAGE_FORMATS,
) -> LoadedImage:
    """load_image plus the file's sha256 and size (what the label store records), from one read of the file."""
    data = read_image_bytes(path, max_bytes=max_bytes, name=name)
    image = decode_image(data, name=name or str(path), max_pixels=max_pixels, formats=formats)
    return LoadedImage(image=image, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def load_image(
    path: str | Path,
    *,
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    name: str | None = None,
    formats: tuple[str, ...] = ALLOWED_IMAGE_FORMATS,
) -> Image.Image:
    """The fully decoded image at `path`, or ImageError naming `name` (default: the path) with the reason.

    Convert the result yourself (`.convert("RGB")`); the file is closed when this returns.
    """
    return load_image_file(path, max_bytes=max_bytes, max_pixels=max_pixels, name=name, formats=formats).image
