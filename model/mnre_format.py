"""The MNRE file format (DeepKE / HVPNeT / MKGformer layout): reading records, label maps and crop lists.

This module imports no torch, so the label store (db/) and its command line read MNRE folders without loading a
deep-learning stack. Encoding for a model (entity markers, word pieces, truncation) is in model.data.

Layout (one folder)::

    ours_rel2id.json                 {"None": 0, "/per/per/parent": 1, ...}
    txt/ours_{train,val,test}.txt    one Python dict literal per line (read with ast.literal_eval)
    txt/mre_{train,dev,test}_dict.pth {line index: [crop file names]}   (a torch.save file of plain data)
    img_org/{train,val,test}/        original images, named by the record's img_id
    img_vg/{train,val,test}/crops/   visual-grounding crops

Hostile input is refused with a DataFormatError naming the file, the line and the field:
- limits (ReaderLimits; defaults, or MRELENS_MAX_LINE_BYTES / MRELENS_MAX_FILE_BYTES / MRELENS_MAX_POST_TOKENS):
  a line longer than the limit is never read whole into memory, a file over the limit is refused before reading;
- text must be UTF-8 (a UTF-8 byte order mark and CRLF line ends are accepted); UTF-16, Latin-1 and binary lines
  are errors at their line, and skip_bad skips them like any other bad line;
- the crop dictionary is unpickled with no globals and no tensor storages allowed: plain dicts, lists and strings.

A missing or unreadable image is "no image": the record keeps ``image_path=None`` and the loader counts it. Nothing is
ever replaced by another picture.
"""

from __future__ import annotations

import ast
import io
import json
import os
import pickle
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

SPLIT_FILES = {
    "train": ("ours_train.txt", "mre_train_dict.pth"),
    "val": ("ours_val.txt", "mre_dev_dict.pth"),
    "test": ("ours_test.txt", "mre_test_dict.pth"),
}
MAX_CROPS = 3
MAX_LABEL_MAP_BYTES = 1 << 20  # ours_rel2id.json of MNRE is 534 bytes
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# first pickle of a torch.save file written without the zip format
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class DataFormatError(ValueError):
    """A record that cannot be read; the message names the file, the line (1-based) and the field at fault."""

    def __init__(self, path: str | Path, line: int | None, field_name: str | None, problem: str):
        self.path, self.line, self.field, self.problem = str(path), line, field_name, problem
        where = f"{path}:{line}" if line is not None else str(path)
        what = f" field '{field_name}'" if field_name else ""
        super().__init__(f"{where}:{what} {problem}")


@dataclass(frozen=True)
class ReaderLimits:
    """Bounds on what one MNRE file may hold. The defaults are far above MNRE itself (longest line 414 bytes,
    longest post 35 tokens, largest file 3.9 MB) and far below what exhausts memory."""

    max_line_bytes: int = 65_536
    max_file_bytes: int = 256 * 1024 * 1024
    max_post_tokens: int = 1_000

    ENV = {
        "max_line_bytes": "MRELENS_MAX_LINE_BYTES",
        "max_file_bytes": "MRELENS_MAX_FILE_BYTES",
        "max_post_tokens": "MRELENS_MAX_POST_TOKENS",
    }

    def __post_init__(self):
        for limit in fields(self):
            value = getattr(self, limit.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"reader limit {limit.name} must be a positive integer, got {value!r}")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ReaderLimits:
        """The defaults, overridden by the MRELENS_MAX_* environment variables that are set."""
        environ = os.environ if environ is None else environ
        values = {}
        for name, var in cls.ENV.items():
            raw = environ.get(var)
            if raw is None or not raw.strip():
                continue
            # a DataFormatError, so every command that reports bad data reports a bad limit as one error line
            try:
                values[name] = int(raw.strip().replace("_", ""))
            except ValueError as err:
                raise DataFormatError(
                    f"environment variable {var}", None, None, f"{raw!r} is not a positive integer"
                ) from err
            if values[name] < 1:
                raise DataFormatError(
                    f"environment variable {var}", None, None, f"{raw!r} is not a positive integer"
                )
        return cls(**values)


def resolve_limits(limits: ReaderLimits | None) -> ReaderLimits:
    return limits if limits is not None else ReaderLimits.from_env()


@dataclass(frozen=True)
class Entity:
    name: str
    start: int  # first word
    end: int  # one past the last word


@dataclass
class Record:
    tokens: list[str]
    head: Entity
    tail: Entity
    relation: str
    img_id: str | None = None
    line: int = 0  # 1-based line in the source file
    image_path: Path | None = None  # resolved original image, None when it is not available here
    crop_paths: list[Path] = field(default_factory=list)  # existing grounding crops (at most MAX_CROPS)
    source: dict | None = None  # the record as parsed
    raw_line: str = ""  # the line exactly as read (without its newline), for byte-exact export

    @property
    def text(self) -> str:
        return " ".join(self.tokens)


@dataclass
class LoadReport:
    """What a load found: counts a user should see before training on a split."""

    path: str
    records: int = 0
    with_image: int = 0
    missing_image: int = 0  # img_id given but the file is absent or unreadable
    with_crops: int = 0
    skipped: list[str] = field(default_factory=list)  # error messages of lines skipped with skip_bad

    def summary(self) -> str:
        return (
            f"{self.path}: {self.records} records, {self.with_image} with image, {self.missing_image} "
            f"without (no image), {self.with_crops} with crops, {len(self.skipped)} skipped"
        )


# ----------------------------------------------------------------------------------------------------------------
# Label map


def read_rel2id(path: str | Path) -> dict[str, int]:
    """ours_rel2id.json: every label mapped to a distinct id 0..n-1, "None" among them."""
    path = Path(path)
    data = _read_small_file(path, MAX_LABEL_MAP_BYTES)
    try:
        rel2id = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise DataFormatError(path, None, None, _not_utf8(data, err)) from err
    except json.JSONDecodeError as err:
        raise DataFormatError(path, err.lineno, None, f"invalid JSON: {err.msg}") from err
    if not isinstance(rel2id, dict):
        raise DataFormatError(path, None, None, f"must be a JSON object, got {type(rel2id).__name__}")
    for name, label_id in rel2id.items():
        if isinstance(label_id, bool) or not isinstance(label_id, int):
            raise DataFormatError(path, None, name, f"id must be an integer, got {label_id!r}")
    if sorted(rel2id.values()) != list(range(len(rel2id))):
        raise DataFormatError(path, None, None, "must map each label to a distinct id 0..n-1")
    if "None" not in rel2id:
        raise DataFormatError(path, None, "None", "the negative label 'None' is missing")
    return rel2id


def labels_by_id(rel2id: dict[str, int]) -> list[str]:
    """The labels in id order (index = label id): the one place that turns a label map into a label list."""
    return [name for name, _ in sorted(rel2id.items(), key=lambda item: item[1])]


def _read_small_file(path: Path, max_bytes: int) -> bytes:
    try:
        if not path.is_file():
            raise DataFormatError(path, None, None, "file not found")
        size = path.stat().st_size
        if size > max_bytes:
            raise DataFormatError(path, None, None, f"{size} bytes is over the {max_bytes} byte limit")
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as err:
        raise DataFormatError(path, None, None, f"cannot be read ({err.strerror or err})") from err
    if len(data) > max_bytes:
        raise DataFormatError(path, None, None, f"over the {max_bytes} byte limit")
    return data


# ----------------------------------------------------------------------------------------------------------------
# Records


def _entity(raw: object, field_name: str, n_tokens: int, path: Path, line: int) -> Entity:
    if not isinstance(raw, dict):
        raise DataFormatError(
            path, line, field_name, f"must be a dict with 'name' and 'pos', got {type(raw).__name__}"
        )
    name, pos = raw.get("name"), raw.get("pos")
    if not isinstance(name, str):
        raise DataFormatError(path, line, f"{field_name}.name", "must be a string")
    if not isinstance(pos, list | tuple) or len(pos) != 2 or not all(isinstance(p, int) for p in pos):
        raise DataFormatError(path, line, f"{field_name}.pos", f"must be [start, end_exclusive], got {pos!r}")
    start, end = pos
    if not 0 <= start < end <= n_tokens:
        raise DataFormatError(
            path, line, f"{field_name}.pos", f"span {pos} does not fit 0 <= start < end <= {n_tokens} tokens"
        )
    return Entity(name, start, end)


def parse_record(
    text: str,
    path: Path,
    line: int,
    labels: dict[str, int] | None = None,
    limits: ReaderLimits | None = None,
) -> Record:
    """Parse one line of an ours_*.txt file; raise DataFormatError naming path:line and the field."""
    limits = resolve_limits(limits)
    # characters never outnumber UTF-8 bytes, so the exact byte count is needed only near the limit
    if len(text) > limits.max_line_bytes or (
        4 * len(text) > limits.max_line_bytes and len(text.encode("utf-8")) > limits.max_line_bytes
    ):
        raise DataFormatError(path, line, None, _line_too_long(limits))
    if "\x00" in text:
        raise DataFormatError(path, line, None, _NUL_BYTES)
    try:
        raw = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as err:
        raise DataFormatError(path, line, None, f"not a Python dict literal ({type(err).__name__})") from err
    if not isinstance(raw, dict):
        raise DataFormatError(path, line, None, f"expected a dict, got {type(raw).__name__}")
    tokens = raw.get("token")
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
        raise DataFormatError(path, line, "token", "must be a non-empty list of strings")
    if len(tokens) > limits.max_post_tokens:
        raise DataFormatError(
            path,
            line,
            "token",
            f"{len(tokens)} tokens is over the {limits.max_post_tokens} token limit "
            f"({ReaderLimits.ENV['max_post_tokens']})",
        )
    head = _entity(raw.get("h"), "h", len(tokens), path, line)
    tail = _entity(raw.get("t"), "t", len(tokens), path, line)
    relation = raw.get("relation")
    if not isinstance(relation, str):
        raise DataFormatError(path, line, "relation", "must be a string")
    if labels is not None and relation not in labels:
        raise DataFormatError(path, line, "relation", f"unknown label {relation!r}")
    img_id = raw.get("img_id")
    if img_id is not None and not isinstance(img_id, str):
        raise DataFormatError(path, line, "img_id", "must be a file name string")
    if img_id is not None:
        check_image_name(img_id, path, line)
    return Record(
        tokens=tokens,
        head=head,
        tail=tail,
        relation=relation,
        img_id=img_id,
        line=line,
        source=raw,
        raw_line=text.rstrip("\r\n"),
    )


_UTF16 = "the file is UTF-16 (it starts with a UTF-16 byte order mark): convert it to UTF-8"
_NUL_BYTES = "contains NUL bytes: the file looks like UTF-16 or binary data; convert it to UTF-8"


def _line_too_long(limits: ReaderLimits) -> str:
    return (
        f"line is over the {limits.max_line_bytes} byte limit ({ReaderLimits.ENV['max_line_bytes']}); "
        "it was not read"
    )


def _not_utf8(data: bytes, err: UnicodeDecodeError) -> str:
    return (
        f"not UTF-8 text (byte 0x{data[err.start]:02x} at byte {err.start + 1}); the file may be Latin-1, "
        "Windows-1252 or UTF-16: convert it to UTF-8"
    )


def iter_lines(path: Path, limits: ReaderLimits) -> Iterator[tuple[int, str | DataFormatError]]:
    """(line number, text without its line end) for every line of a UTF-8 text file, or (line number, error) for a
    line that is too long or not UTF-8. A too-long line is skipped in bounded chunks, never held whole. Errors that
    concern the whole file (missing, over the size limit, UTF-16) are raised."""
    try:
        if not path.is_file():
            raise DataFormatError(path, None, None, "file not found")
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise DataFormatError(path, None, None, _file_too_large(size, limits))
        with path.open("rb") as fh:
            total, line_no, utf16 = 0, 0, False
            while True:
                chunk = fh.readline(limits.max_line_bytes + 1)
                if not chunk:
                    return
                line_no += 1
                total += len(chunk)
                if line_no == 1 and chunk.startswith(UTF16_BOMS):
                    utf16 = True
                if line_no == 1 and chunk.startswith(UTF8_BOM):
                    chunk = chunk[len(UTF8_BOM) :]
                content = chunk.rstrip(b"\r\n")
                if len(content) > limits.max_line_bytes:
                    # read past the rest of the line in bounded pieces
                    while not chunk.endswith(b"\n"):
                        chunk = fh.readline(1 << 16)
                        if not chunk:
                            break
                        total += len(chunk)
                        if total > limits.max_file_bytes:
                            raise DataFormatError(path, None, None, _file_too_large(total, limits))
                    yield line_no, DataFormatError(path, line_no, None, _line_too_long(limits))
                    continue
                if total > limits.max_file_bytes:
                    raise DataFormatError(path, None, None, _file_too_large(total, limits))
                if utf16:
                    # split at b"\n", UTF-16 leaves a NUL byte at each end of a line: those alone are no line
                    if content.strip(b"\x00 \t\r\n"):
                        yield line_no, DataFormatError(path, line_no, None, _UTF16)
                    continue
                try:
                    yield line_no, content.decode("utf-8")
                except UnicodeDecodeError as err:
                    yield line_no, DataFormatError(path, line_no, None, _not_utf8(content, err))
    except OSError as err:
        raise DataFormatError(path, None, None, f"cannot be read ({err.strerror or err})") from err


def _file_too_large(size: int, limits: ReaderLimits) -> str:
    return f"{size} bytes is over the {limits.max_file_bytes} byte file limit ({ReaderLimits.ENV['max_file_bytes']})"


def read_records(
    path: str | Path,
    labels: dict[str, int] | None = None,
    skip_bad: bool = False,
    report: LoadReport | None = None,
    limits: ReaderLimits | None = None,
) -> list[Record]:
    """Read an ours_*.txt file. A bad line raises DataFormatError, or with skip_bad is recorded in `report`."""
    path, limits = Path(path), resolve_limits(limits)
    records = []
    for line_no, text in iter_lines(path, limits):
        try:
            if isinstance(text, DataFormatError):
                raise text
            if not text.strip():
                continue
            records.append(parse_record(text, path, line_no, labels, limits))
        except DataFormatError as err:
            if not skip_bad:
                raise
            if report is not None:
                report.skipped.append(str(err))
    return records


def check_image_name(img_id: str, path: str | Path = "<input>", line: int | None = None) -> None:
    """Reject names that would leave the image folder (absolute paths, '..', separators)."""
    p = Path(img_id)
    if (
        not img_id
        or p.is_absolute()
        or ".." in p.parts
        or len(p.parts) != 1
        or "\\" in img_id
        or "\x00" in img_id
    ):
        raise DataFormatError(
            path, line, "img_id", f"{img_id!r} must be a plain file name inside the image folder"
        )


def resolve_in_folder(folder: Path, name: str) -> Path | None:
    """The file `name` inside `folder` if it exists there (and does not escape it), else None."""
    candidate = (folder / name).resolve()
    if folder.resolve() not in candidate.parents:
        return None
    return candidate if candidate.is_file() else None


def image_is_readable(path: Path) -> bool:
    """The image decodes whole within model.images' limits. A full decode, not Image.verify(): verify does not read
    JPEG scan data, so a JPEG cut in half would count as "with image" and fail later, in training or in a page."""
    from model.images import ImageError, load_image

    try:
        load_image(path)
        return True
    except ImageError:
        return False


# ----------------------------------------------------------------------------------------------------------------
# Crop dictionaries: torch.save files of {line index: [crop names]}, read without torch and without running code


class _PlainDataUnpickler(pickle.Unpickler):
    """Builds dicts, lists, tuples, strings and numbers only: any global (class, function) or tensor storage is
    refused, so a crafted file cannot run code or allocate tensors."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(
            f"refers to {module}.{name}; only plain data (dict, list, str) is allowed"
        )

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("holds tensor data; only plain data (dict, list, str) is allowed")


def _unpickle_plain(data: bytes) -> object:
    stream = io.BytesIO(data)
    first = _PlainDataUnpickler(stream).load()
    # legacy torch.save: magic, protocol version, system info, then the object
    if first == TORCH_LEGACY_MAGIC:
        _PlainDataUnpickler(stream).load()
        _PlainDataUnpickler(stream).load()
        return _PlainDataUnpickler(stream).load()
    return first


def read_crop_dict(path: str | Path, limits: ReaderLimits | None = None) -> dict[int, list[str]]:
    """{0-based line index: [crop file names]} from a torch.save file (zip or legacy format) or a plain pickle."""
    path, limits = Path(path), resolve_limits(limits)
    data = _read_small_file(path, limits.max_file_bytes)
    try:
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                entries = [i for i in archive.infolist() if i.filename.endswith("data.pkl")]
                if len(entries) != 1:
                    raise pickle.UnpicklingError("a torch.save archive holds exactly one data.pkl")
                if entries[0].file_size > limits.max_file_bytes:
                    raise pickle.UnpicklingError(f"data.pkl unpacks to over {limits.max_file_bytes} bytes")
                raw = _unpickle_plain(archive.read(entries[0]))
        else:
            raw = _unpickle_plain(data)
    # a corrupt or hostile pickle raises many exception types; every one of them means "cannot be read"
    except Exception as err:
        raise DataFormatError(path, None, None, f"cannot be read as a crop dictionary: {err}") from err
    if not isinstance(raw, dict):
        raise DataFormatError(path, None, None, "must hold a dict {line index: [crop names]}")
    for key, names in raw.items():
        if isinstance(key, bool) or not isinstance(key, int):
            raise DataFormatError(path, None, f"[{key!r}]", "keys must be 0-based line indices (integers)")
        if not isinstance(names, list | tuple):
            raise DataFormatError(
                path, None, f"[{key}]", f"must be a list of crop file names, got {type(names).__name__}"
            )
    return raw


# ----------------------------------------------------------------------------------------------------------------
# One split


def load_split(
    root: str | Path,
    split: str,
    skip_bad: bool = False,
    check_images: bool = True,
    limits: ReaderLimits | None = None,
) -> tuple[list[Record], dict[str, int], LoadReport]:
    """Load one split of an MNRE folder: records with resolved image and crop paths, the label map, a report."""
    root, limits = Path(root), resolve_limits(limits)
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_FILES)}")
    txt_name, dict_name = SPLIT_FILES[split]
    labels = read_rel2id(root / "ours_rel2id.json")
    txt_path = root / "txt" / txt_name
    report = LoadReport(path=str(txt_path))
    records = read_records(txt_path, labels, skip_bad=skip_bad, report=report, limits=limits)

    dict_path = root / "txt" / dict_name
    crop_lists = read_crop_dict(dict_path, limits) if dict_path.is_file() else {}

    image_dir, crop_dir = root / "img_org" / split, root / "img_vg" / split / "crops"
    # one listing per folder instead of a filesystem lookup per record (MNRE has ~10k records per split)
    image_names, crop_names = _file_names(image_dir), _file_names(crop_dir)
    checked: dict[Path, bool] = {}  # records share pictures: decode each file once

    def readable(path: Path) -> bool:
        if path not in checked:
            checked[path] = image_is_readable(path)
        return checked[path]

    for record in records:
        if record.img_id is not None:
            found = resolve_in_folder(image_dir, record.img_id) if record.img_id in image_names else None
            if found is not None and (not check_images or readable(found)):
                record.image_path = found
                report.with_image += 1
            else:
                report.missing_image += 1
        # crop dictionaries are keyed by the 0-based line index of the record
        for name in crop_lists.get(record.line - 1, [])[:MAX_CROPS]:
            if isinstance(name, str):
                try:
                    check_image_name(name, dict_path, None)
                except DataFormatError:
                    continue
                found = resolve_in_folder(crop_dir, name) if name in crop_names else None
                if found is not None and (not check_images or readable(found)):
                    record.crop_paths.append(found)
        report.with_crops += bool(record.crop_paths)
    report.records = len(records)
    return records, labels, report


def _file_names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def label_counts(records: list[Record]) -> Counter:
    return Counter(r.relation for r in records)
