"""MNRE data in the DeepKE / HVPNeT / MKGformer layout, entity markers and batching.

Layout (one folder)::

    ours_rel2id.json                 {"None": 0, "/per/per/parent": 1, ...}
    txt/ours_{train,val,test}.txt    one Python dict literal per line (read with ast.literal_eval)
    txt/mre_{train,dev,test}_dict.pth {line index: [crop file names]}   (torch.load, weights_only=True)
    img_org/{train,val,test}/        original images, named by the record's img_id
    img_vg/{train,val,test}/crops/   visual-grounding crops

A missing or unreadable image is "no image": the record keeps ``image_path=None`` and the loader counts it. Nothing is
ever replaced by another picture.
"""

from __future__ import annotations

import ast
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

ENTITY_MARKERS = ("<s>", "</s>", "<o>", "</o>")  # head open, head close, tail open, tail close
SPLIT_FILES = {
    "train": ("ours_train.txt", "mre_train_dict.pth"),
    "val": ("ours_val.txt", "mre_dev_dict.pth"),
    "test": ("ours_test.txt", "mre_test_dict.pth"),
}
MAX_CROPS = 3


class DataFormatError(ValueError):
    """A record that cannot be read; the message names the file, the line (1-based) and the field at fault."""

    def __init__(self, path: str | Path, line: int | None, field_name: str | None, problem: str):
        self.path, self.line, self.field, self.problem = str(path), line, field_name, problem
        where = f"{path}:{line}" if line is not None else str(path)
        what = f" field '{field_name}'" if field_name else ""
        super().__init__(f"{where}:{what} {problem}")


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


def read_rel2id(path: str | Path) -> dict[str, int]:
    path = Path(path)
    try:
        rel2id = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise DataFormatError(path, None, None, "file not found") from err
    except json.JSONDecodeError as err:
        raise DataFormatError(path, err.lineno, None, f"invalid JSON: {err.msg}") from err
    if not isinstance(rel2id, dict) or sorted(rel2id.values()) != list(range(len(rel2id))):
        raise DataFormatError(path, None, None, "must map each label to a distinct id 0..n-1")
    if "None" not in rel2id:
        raise DataFormatError(path, None, "None", "the negative label 'None' is missing")
    return rel2id


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


def parse_record(text: str, path: Path, line: int, labels: dict[str, int] | None = None) -> Record:
    """Parse one line of an ours_*.txt file; raise DataFormatError naming path:line and the field."""
    try:
        raw = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as err:
        raise DataFormatError(path, line, None, f"not a Python dict literal ({type(err).__name__})") from err
    if not isinstance(raw, dict):
        raise DataFormatError(path, line, None, f"expected a dict, got {type(raw).__name__}")
    tokens = raw.get("token")
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
        raise DataFormatError(path, line, "token", "must be a non-empty list of strings")
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
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.verify()
        return True
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError):
        return False


def read_records(
    path: str | Path,
    labels: dict[str, int] | None = None,
    skip_bad: bool = False,
    report: LoadReport | None = None,
) -> list[Record]:
    """Read an ours_*.txt file. A bad line raises DataFormatError, or with skip_bad is recorded in `report`."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, None, None, "file not found")
    records = []
    with path.open(encoding="utf-8") as fh:
        for line_no, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                records.append(parse_record(text, path, line_no, labels))
            except DataFormatError as err:
                if not skip_bad:
                    raise
                if report is not None:
                    report.skipped.append(str(err))
    return records


def load_split(
    root: str | Path,
    split: str,
    skip_bad: bool = False,
    check_images: bool = True,
) -> tuple[list[Record], dict[str, int], LoadReport]:
    """Load one split of an MNRE folder: records with resolved image and crop paths, the label map, a report."""
    root = Path(root)
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_FILES)}")
    txt_name, dict_name = SPLIT_FILES[split]
    labels = read_rel2id(root / "ours_rel2id.json")
    txt_path = root / "txt" / txt_name
    report = LoadReport(path=str(txt_path))
    records = read_records(txt_path, labels, skip_bad=skip_bad, report=report)

    crop_lists: dict[int, list[str]] = {}
    dict_path = root / "txt" / dict_name
    if dict_path.is_file():
        try:
            crop_lists = torch.load(dict_path, weights_only=True)
        except Exception as err:  # torch raises several types for a corrupt file; all mean "unreadable"
            raise DataFormatError(
                dict_path, None, None, f"cannot be read as a crop dictionary: {err}"
            ) from err
        if not isinstance(crop_lists, dict):
            raise DataFormatError(dict_path, None, None, "must hold a dict {line index: [crop names]}")

    image_dir, crop_dir = root / "img_org" / split, root / "img_vg" / split / "crops"
    # one listing per folder instead of a filesystem lookup per record (MNRE has ~10k records per split)
    image_names, crop_names = _file_names(image_dir), _file_names(crop_dir)
    for rec in records:
        if rec.img_id is not None:
            found = resolve_in_folder(image_dir, rec.img_id) if rec.img_id in image_names else None
            if found is not None and (not check_images or image_is_readable(found)):
                rec.image_path = found
                report.with_image += 1
            else:
                report.missing_image += 1
        # crop dictionaries are keyed by the 0-based line index of the record
        for name in crop_lists.get(rec.line - 1, [])[:MAX_CROPS]:
            if isinstance(name, str):
                try:
                    check_image_name(name, dict_path, None)
                except DataFormatError:
                    continue
                found = resolve_in_folder(crop_dir, name) if name in crop_names else None
                if found is not None and (not check_images or image_is_readable(found)):
                    rec.crop_paths.append(found)
        report.with_crops += bool(rec.crop_paths)
    report.records = len(records)
    return records, labels, report


def _file_names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def label_counts(records: list[Record]) -> Counter:
    return Counter(r.relation for r in records)


# ----------------------------------------------------------------------------------------------------------------
# Entity markers and truncation


def marked_words(tokens: list[str], head: Entity, tail: Entity) -> tuple[list[str], list[bool]]:
    """Insert <s> </s> around the head and <o> </o> around the tail, at word level.

    Works when an entity ends the sentence and for nested or overlapping spans: at one position, spans that end close
    first (the inner one first) and then spans that start open (the outer one first). Returns the words and a flag per
    word saying whether it is a marker.
    """
    opens: dict[int, list[tuple[int, int, str]]] = {}
    closes: dict[int, list[tuple[int, int, str]]] = {}
    # (sort key, tie-break, marker); head before tail when spans coincide
    for rank, (ent, open_m, close_m) in enumerate(((head, "<s>", "</s>"), (tail, "<o>", "</o>"))):
        opens.setdefault(ent.start, []).append((-ent.end, rank, open_m))  # outer (ends later) opens first
        closes.setdefault(ent.end, []).append(
            (-ent.start, -rank, close_m)
        )  # inner (started later) closes first
    words, is_marker = [], []
    for i in range(len(tokens) + 1):
        for _, _, m in sorted(closes.get(i, [])):
            words.append(m)
            is_marker.append(True)
        for _, _, m in sorted(opens.get(i, [])):
            words.append(m)
            is_marker.append(True)
        if i < len(tokens):
            words.append(tokens[i])
            is_marker.append(False)
    return words, is_marker


@dataclass
class EncodedText:
    input_ids: list[int]
    head_index: int  # position of <s>
    tail_index: int  # position of <o>
    word_index: list[int]  # per position: the source word index, -1 for markers and [CLS]/[SEP]
    truncated: bool


def encode_text(tokens: list[str], head: Entity, tail: Entity, tokenizer, max_length: int) -> EncodedText:
    """Word pieces of the marked sentence as [CLS] ... [SEP], at most max_length long.

    When too long, pieces are dropped by distance to the nearest marker, so both entities and all four markers stay
    and the kept text is a window around each entity.
    """
    words, is_marker = marked_words(tokens, head, tail)
    enc = tokenizer(words, is_split_into_words=True, add_special_tokens=False)
    ids, word_ids = enc["input_ids"], enc.word_ids()
    marker_ids = set(tokenizer.convert_tokens_to_ids(list(ENTITY_MARKERS)))
    marker_pos = [i for i, t in enumerate(ids) if t in marker_ids]
    if len(marker_pos) != 4:
        raise ValueError("the tokenizer does not know the entity markers; call add_entity_markers(tokenizer)")
    budget = max_length - 2
    keep = list(range(len(ids)))
    truncated = len(ids) > budget
    if truncated:
        if budget < 4:
            raise ValueError(f"max_length={max_length} cannot hold [CLS], [SEP] and four markers")
        h_open, h_close, t_open, t_close = (
            ids.index(tokenizer.convert_tokens_to_ids(m)) for m in ENTITY_MARKERS
        )
        inside = set(range(h_open, h_close + 1)) | set(range(t_open, t_close + 1))

        def priority(i: int) -> tuple[int, int]:
            if i in marker_pos:
                return (0, 0)
            dist = min(abs(i - m) for m in marker_pos)
            return (1 if i in inside else 2, dist)

        keep = sorted(sorted(range(len(ids)), key=priority)[:budget])
    # map word-level positions (with markers) back to source word indices
    src_index, w = [], 0
    for flag in is_marker:
        src_index.append(-1 if flag else w)
        w += not flag
    kept_ids = [ids[i] for i in keep]
    kept_words = [src_index[word_ids[i]] for i in keep]
    input_ids = [tokenizer.cls_token_id, *kept_ids, tokenizer.sep_token_id]
    word_index = [-1, *kept_words, -1]
    head_index = input_ids.index(tokenizer.convert_tokens_to_ids("<s>"))
    tail_index = input_ids.index(tokenizer.convert_tokens_to_ids("<o>"))
    return EncodedText(input_ids, head_index, tail_index, word_index, truncated)


def add_entity_markers(tokenizer) -> int:
    """Register <s> </s> <o> </o> as special tokens; returns how many were new."""
    missing = [m for m in ENTITY_MARKERS if m not in tokenizer.get_vocab()]
    if not missing:
        return 0
    return tokenizer.add_special_tokens({"additional_special_tokens": list(ENTITY_MARKERS)})


def shuffled_indices(n: int, seed: int) -> list[int]:
    """Record i takes the image of record perm[i]; Sattolo's algorithm, so no record keeps its own image (n > 1)."""
    g = torch.Generator().manual_seed(seed)
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = int(torch.randint(0, i, (1,), generator=g))
        perm[i], perm[j] = perm[j], perm[i]
    return perm
