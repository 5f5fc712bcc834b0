"""Import MNRE/DeepKE folders and single posts (exports: db.label_export).

Imports parse and validate everything (records with model.data, images with PIL) before the first row is written,
then write with bulk inserts inside the caller's transaction: a failure leaves the database as it was. Re-importing
the same data changes nothing (posts are keyed by content, pairs by dataset + split + source line).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from db.datasets import get_or_create_dataset
from db.errors import LabelStoreError
from db.models import EntityPair, GroundedCrop, Post
from db.rationales import RATIONALES_FILE, import_synthetic_rationales
from db.roles import Actor, require_admin
from db.validate import check_gold_label, check_name, mnre_label_map
from model.images import (
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageError,
    load_image_file,
)
from model.mnre_format import (
    SPLIT_FILES,
    DataFormatError,
    ReaderLimits,
    Record,
    load_split,
    parse_record,
)

INSERT_CHUNK = 2000  # rows per bulk insert: below SQLite's and PostgreSQL's bound-parameter limits
MAX_IMAGE_BYTES = DEFAULT_MAX_IMAGE_BYTES
# well under PIL's own bomb limit (89M): tweet images are ~0.5M pixels
MAX_IMAGE_PIXELS = DEFAULT_MAX_IMAGE_PIXELS


@dataclass(frozen=True)
class InputLimits:
    """Bounds on what an import reads. None takes the default: for text, model.mnre_format.ReaderLimits (its
    MRELENS_MAX_* environment variables); for images, MAX_IMAGE_BYTES / MAX_IMAGE_PIXELS here."""

    max_line_bytes: int | None = None
    max_file_bytes: int | None = None
    max_post_tokens: int | None = None
    max_image_bytes: int | None = None
    max_image_pixels: int | None = None

    def reader(self) -> ReaderLimits:
        try:
            defaults = ReaderLimits.from_env()
        except ValueError as err:  # a bad MRELENS_MAX_* variable: name it, as for a bad option
            raise LabelStoreError(str(err)) from err
        return ReaderLimits(
            max_line_bytes=self.max_line_bytes or defaults.max_line_bytes,
            max_file_bytes=self.max_file_bytes or defaults.max_file_bytes,
            max_post_tokens=self.max_post_tokens or defaults.max_post_tokens,
        )

    def image_bytes(self) -> int:
        return self.max_image_bytes or MAX_IMAGE_BYTES

    def image_pixels(self) -> int:
        return self.max_image_pixels or MAX_IMAGE_PIXELS


# ----------------------------------------------------------------------------------------------------------------
# Images and text files


def validate_image(path: str | Path, limits: InputLimits | None = None, name: str | None = None) -> str:
    """Fully decode an image file (model.images.load_image_file) and return its sha256.

    Raises DataFormatError(name or path, field 'image') describing the problem: special files, size and pixel
    limits, formats, cut or corrupt data. `name` is what the user knows the file as (an upload's own name).
    """
    limits = limits or InputLimits()
    shown = name or str(path)
    try:
        loaded = load_image_file(
            path, max_bytes=limits.image_bytes(), max_pixels=limits.image_pixels(), name=shown
        )
    except ImageError as err:
        raise DataFormatError(shown, None, "image", err.problem) from err
    loaded.image.close()
    return loaded.sha256


def content_key(tokens: list[str], image_identity: str | None) -> str:
    return hashlib.sha256(json.dumps([tokens, image_identity], ensure_ascii=False).encode()).hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# Import


@dataclass
class ImportReport:
    dataset: str
    records: int = 0
    new_pairs: int = 0
    existing_pairs: int = 0  # already in the store, identical: left alone
    new_posts: int = 0
    with_image: int = 0
    without_image: int = 0  # no image file here: stored as "no image", never replaced
    new_crops: int = 0
    new_rationales: int = 0  # synthetic evidence from the folder's rationales.jsonl (db.rationales)
    skipped: list[str] = field(default_factory=list)  # problems passed over with skip_bad

    def summary(self) -> str:
        return (
            f"dataset {self.dataset!r}: {self.records} records read, {self.new_pairs} pairs added, "
            f"{self.existing_pairs} already present, {self.new_posts} posts added, {self.with_image} with image, "
            f"{self.without_image} without image, {self.new_crops} crops added, "
            + (f"{self.new_rationales} synthetic rationales added, " if self.new_rationales else "")
            + f"{len(self.skipped)} skipped"
        )


def available_splits(root: str | Path) -> list[str]:
    root = Path(root)
    return [split for split, (txt, _) in SPLIT_FILES.items() if (root / "txt" / txt).is_file()]


def bulk_insert(session: Session, model, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), INSERT_CHUNK):
        session.execute(insert(model), rows[start : start + INSERT_CHUNK])


def import_mnre(
    session: Session,
    root: str | Path,
    splits: Sequence[str] | None = None,
    dataset: str = "mnre",
    skip_bad: bool = False,
    actor: Actor | None = None,
    limits: InputLimits | None = None,
) -> ImportReport:
    """Import the given splits (default: all present) of an MNRE/DeepKE folder into `dataset`.

    Importing or re-importing a dataset is an admin action (db.roles); `actor` None is the local single user.

    Bad lines and bad images raise DataFormatError naming file:line and field (with skip_bad they are reported and
    left out). Nothing is written before every record and image has been read and checked.
    """
    check_name(dataset, "--dataset", "dataset", "dataset")
    require_admin(actor, f"import or re-import dataset {dataset!r}")
    root = Path(root)
    if not (root / "ours_rel2id.json").is_file():
        raise DataFormatError(
            root / "ours_rel2id.json", None, None, "file not found; is this an MNRE folder?"
        )
    limits = limits or InputLimits()
    splits = list(splits) if splits else available_splits(root)
    if not splits:
        raise DataFormatError(root / "txt", None, None, "no ours_{train,val,test}.txt split files found")
    unknown = [split for split in splits if split not in SPLIT_FILES]
    if unknown:
        raise LabelStoreError(
            f"--split: unknown split {', '.join(map(repr, unknown))}; expected some of {', '.join(SPLIT_FILES)}"
        )
    report = ImportReport(dataset=dataset)

    # 1. read and validate everything
    # split, record, image sha, crops
    loaded: list[tuple[str, Record, str | None, list[tuple[Path, str]]]] = []
    label_map = None
    for split in splits:
        records, label_map, load_report = load_split(
            root, split, skip_bad=skip_bad, check_images=False, limits=limits.reader()
        )
        report.skipped.extend(load_report.skipped)
        txt_path = Path(load_report.path)
        for record in records:
            image_sha = None
            if record.image_path is not None:
                try:
                    image_sha = validate_image(record.image_path, limits)
                except DataFormatError as err:
                    bad = DataFormatError(
                        txt_path, record.line, "img_id", f"image {record.image_path}: {err.problem}"
                    )
                    if not skip_bad:
                        raise bad from err
                    report.skipped.append(f"{bad} (stored without image)")
            crops = []
            for crop_path in record.crop_paths:
                try:
                    crops.append((crop_path, validate_image(crop_path, limits)))
                except DataFormatError as err:
                    bad = DataFormatError(txt_path, record.line, "crops", f"crop {crop_path}: {err.problem}")
                    if not skip_bad:
                        raise bad from err
                    report.skipped.append(f"{bad} (crop left out)")
            loaded.append((split, record, image_sha, crops))
    report.records = len(loaded)

    # 2. write: posts first (deduplicated by content), then pairs and crops that are new
    dataset_row = get_or_create_dataset(
        session, dataset, source_path=str(root.resolve()), label_map=label_map
    )
    post_ids = dict(
        session.execute(select(Post.content_key, Post.id).where(Post.dataset_id == dataset_row.id)).all()
    )
    existing_pairs = dict(
        session.execute(
            select(EntityPair.source_key, EntityPair.raw_line).where(EntityPair.dataset_id == dataset_row.id)
        ).all()
    )
    new_posts: dict[str, dict[str, Any]] = {}
    for _, record, image_sha, _ in loaded:
        key = content_key(record.tokens, record.img_id)
        if key not in post_ids and key not in new_posts:
            new_posts[key] = {
                "dataset_id": dataset_row.id,
                "content_key": key,
                "tokens": record.tokens,
                "text": record.text,
                "img_id": record.img_id,
                "has_image": image_sha is not None,
                "image_sha256": image_sha,
                "image_path": str(record.image_path) if image_sha else None,
            }
    bulk_insert(session, Post, list(new_posts.values()))
    report.new_posts = len(new_posts)
    if new_posts:
        post_ids = dict(
            session.execute(select(Post.content_key, Post.id).where(Post.dataset_id == dataset_row.id)).all()
        )

    pair_rows, crop_rows, crops_seen = [], [], set()
    for split, record, image_sha, crops in loaded:
        source_key = f"{split}:{record.line}"
        if image_sha:
            report.with_image += 1
        else:
            report.without_image += 1
        if source_key in existing_pairs:
            if existing_pairs[source_key] != record.raw_line:
                raise DataFormatError(
                    root / "txt" / SPLIT_FILES[split][0],
                    record.line,
                    None,
                    f"differs from the record imported before into dataset {dataset!r}; "
                    "import the changed file under another --dataset name",
                )
            report.existing_pairs += 1
            continue
        post_id = post_ids[content_key(record.tokens, record.img_id)]
        pair_rows.append(
            {
                "post_id": post_id,
                "dataset_id": dataset_row.id,
                "split": split,
                "source_key": source_key,
                "source_line": record.line,
                "head_name": record.head.name,
                "head_start": record.head.start,
                "head_end": record.head.end,
                "tail_name": record.tail.name,
                "tail_start": record.tail.start,
                "tail_end": record.tail.end,
                "gold_label": record.relation,
                "raw_line": record.raw_line,
            }
        )
        for crop_path, _sha in crops:
            if (post_id, str(crop_path)) not in crops_seen:
                crops_seen.add((post_id, str(crop_path)))
                crop_rows.append({"post_id": post_id, "source": "mnre_vg", "path": str(crop_path)})
    if crop_rows:  # crops of posts imported before are already stored
        stored = set(
            session.execute(
                select(GroundedCrop.post_id, GroundedCrop.path).where(
                    GroundedCrop.source == "mnre_vg",
                    GroundedCrop.post_id.in_({crop_row["post_id"] for crop_row in crop_rows}),
                )
            ).all()
        )
        crop_rows = [
            crop_row for crop_row in crop_rows if (crop_row["post_id"], crop_row["path"]) not in stored
        ]
    bulk_insert(session, EntityPair, pair_rows)
    bulk_insert(session, GroundedCrop, crop_rows)
    report.new_pairs, report.new_crops = len(pair_rows), len(crop_rows)
    if (root / RATIONALES_FILE).is_file():  # a model.synthetic set: its evidence, in the same transaction
        report.new_rationales = import_synthetic_rationales(
            session, dataset, root, splits, skip_missing=skip_bad
        )
    return report


def import_post(
    session: Session,
    text: str,
    head: tuple[int, int],
    tail: tuple[int, int],
    image: str | Path | None = None,
    dataset: str = "posts",
    split: str = "new",
    label: str | None = None,
    limits: InputLimits | None = None,
    image_name: str | None = None,
) -> tuple[EntityPair, bool]:
    """Import one post (text split on whitespace, optional image file) with a head and tail word span.

    Spans are [start, end) word indices. Returns (pair, created); importing the same post again returns the stored
    pair with created=False. `image_name` is the name the user knows the image by (errors name it, not the path).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:  # undecodable bytes from the command line arrive as lone surrogates
        raise DataFormatError(
            "post", None, "text", f"is not UTF-8 text (at character {err.start + 1})"
        ) from err
    check_name(dataset, "post", "dataset", "dataset")
    check_name(split, "post", "split", "split")
    tokens = text.split()
    limits = limits or InputLimits()
    max_words = limits.reader().max_post_tokens
    if len(tokens) > max_words:
        raise DataFormatError(
            "post", None, "text", f"{len(tokens)} words is over the {max_words} word limit (the token limit)"
        )
    image_sha = img_id = image_path = None
    if image is not None:
        image_path = Path(image).resolve()
        image_sha = validate_image(image_path, limits, name=image_name)
        img_id = image_path.name
    dataset_row = get_or_create_dataset(session, dataset)
    if label is not None:  # a dataset made by import-post has no label map of its own: MNRE's relations
        check_gold_label(label, dataset_row.label_map or mnre_label_map(), "post", "label")
    raw = {
        "token": tokens,
        "h": {"name": " ".join(tokens[head[0] : head[1]]), "pos": [int(head[0]), int(head[1])]},
        "t": {"name": " ".join(tokens[tail[0] : tail[1]]), "pos": [int(tail[0]), int(tail[1])]},
        "img_id": img_id,
        "relation": label if label is not None else "None",
    }
    if not tokens:
        raise DataFormatError("post", None, "text", "must contain at least one word")
    try:
        record = parse_record(
            repr(raw), Path("post"), 1, dataset_row.label_map if label is not None else None, limits.reader()
        )
    except DataFormatError as err:  # name the command-line option, not the MNRE field
        option = {"h.pos": "head", "t.pos": "tail", "relation": "label"}.get(err.field or "", err.field)
        raise DataFormatError("post", None, option, err.problem) from err

    post_key = content_key(tokens, image_sha)
    source_key = (
        "post:" + hashlib.sha256(json.dumps([post_key, list(head), list(tail)]).encode()).hexdigest()[:40]
    )
    existing = session.scalar(
        select(EntityPair).where(EntityPair.dataset_id == dataset_row.id, EntityPair.source_key == source_key)
    )
    if existing is not None:
        return existing, False
    post = session.scalar(select(Post).where(Post.dataset_id == dataset_row.id, Post.content_key == post_key))
    if post is None:
        post = Post(
            dataset_id=dataset_row.id,
            content_key=post_key,
            tokens=tokens,
            text=record.text,
            img_id=img_id,
            image_path=str(image_path) if image_path else None,
            image_sha256=image_sha,
            has_image=image_sha is not None,
        )
        session.add(post)
        session.flush()
    pair = EntityPair(
        post_id=post.id,
        dataset_id=dataset_row.id,
        split=split,
        source_key=source_key,
        source_line=None,
        head_name=record.head.name,
        head_start=record.head.start,
        head_end=record.head.end,
        tail_name=record.tail.name,
        tail_start=record.tail.start,
        tail_end=record.tail.end,
        gold_label=label,
        raw_line=record.raw_line if label is not None else None,
    )
    session.add(pair)
    session.flush()
    return pair, True
