"""Model calls the app makes, without Streamlit: label-store pairs -> model records -> stored predictions.

The app, `python -m app.prepare` and the tests share these functions, so a prediction made in a page and one made
in the batch step are the same computation (same records, same feature cache, same stored method name).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from sqlalchemy.orm import Session, sessionmaker

from app.services.paths import feature_cache_dir
from db.datasets import get_post, pairs_with_posts
from db.models import EntityPair, GroundedCrop, Post
from db.provenance import crops_of_posts, save_predictions
from model.checkpoint import preprocessing
from model.data import MAX_CROPS, Entity, Record
from model.visual_features import FeatureCache

LOG = logging.getLogger(__name__)
NO_LABEL = "None"  # the relation a record gets when its pair has no gold label (prepare_examples needs one)


def pair_record(pair: EntityPair, post: Post, crops: Iterable[GroundedCrop]) -> Record:
    """The model's input for one stored pair: image and crop files only when they exist on this machine."""
    image = Path(post.image_path) if post.has_image and post.image_path else None
    crop_paths = [Path(crop.path) for crop in crops if crop.path and Path(crop.path).is_file()][:MAX_CROPS]
    return Record(
        tokens=list(post.tokens),
        head=Entity(pair.head_name, pair.head_start, pair.head_end),
        tail=Entity(pair.tail_name, pair.tail_start, pair.tail_end),
        relation=pair.gold_label or NO_LABEL,
        img_id=post.img_id,
        line=pair.source_line or 0,
        image_path=image if image is not None and image.is_file() else None,
        crop_paths=crop_paths,
    )


def pair_records(session: Session, pair_ids: list[int], model_config=None) -> list[Record]:
    """Records for many pairs in the given order (two queries, not one per pair), with the label store's crops, or
    with a model's config the crops that model reads (`model_records`)."""
    if model_config is not None:
        return model_records(session, pair_ids, model_config)[0]
    by_id = pairs_with_posts(session, pair_ids)
    crops = crops_of_posts(session, {post.id for _, post in by_id.values()})
    return [pair_record(*by_id[i], crops.get(by_id[i][1].id, [])) for i in pair_ids]


def model_records(session: Session, pair_ids: list[int], model_config) -> tuple[list[Record], CropSource]:
    """The model's input records for many pairs and where their crops came from (`model_crops`)."""
    by_id = pairs_with_posts(session, pair_ids)
    crops = crops_of_posts(session, {post.id for _, post in by_id.values()})
    records = [pair_record(*by_id[i], crops.get(by_id[i][1].id, [])) for i in pair_ids]
    return records, model_crops(records, [by_id[i][0].split for i in pair_ids], model_config)


@dataclass(frozen=True)
class CropSource:
    """Where a model's crops came from for some records: `folder` is the grounding folder read (None: the label
    store's crops only), `counts` what model.grounding.apply_grounding found there, `note` says it in words."""

    folder: str | None
    counts: dict[str, int]
    note: str


def model_crops(records: list[Record], splits: list[str], model_config) -> CropSource:
    """Give records the crops the model was trained on: a checkpoint trained on `python -m model.grounding` crops
    records that folder (model.checkpoint.preprocessing's grounding_dir); when it exists here, each record of a split
    it covers reads its crops from there through model.grounding.apply_grounding, as model.evaluate does. Records
    it has no entry for (posts added in the app, another copy of the data) and every record when the folder is not
    here keep the label store's crops; the returned CropSource says which was used."""
    from model.grounding import apply_grounding

    folder = preprocessing(model_config).grounding_dir
    if not folder:
        return CropSource(None, {}, "crops: the label store's (the model was trained on the dataset's crops)")
    if not Path(folder).is_dir():
        source = CropSource(
            None,
            {},
            f"crops: the label store's (the model's grounding folder {folder} is not on this machine)",
        )
        LOG.warning(source.note)
        return source
    counts: dict[str, int] = {}
    for split in sorted(set(splits)):
        in_split = [
            record for record, record_split in zip(records, splits, strict=True) if record_split == split
        ]
        for key, count in apply_grounding(in_split, folder, split).items():
            counts[key] = counts.get(key, 0) + count
    applied = counts.get("applied", 0)
    note = f"crops: {applied} of {len(records)} from the model's grounding folder {folder}"
    if applied < len(records):
        note += f", {len(records) - applied} from the label store's (no usable entry there)"
    return CropSource(folder, counts, note)


@torch.no_grad()
def predict_records(model, tokenizer, records: list[Record], batch_size: int = 64) -> list[dict[str, float]]:
    """label -> probability for each record (records whose gold label the model lacks are scored as 'None')."""
    from model.batching import prepare_examples
    from model.evaluate import predict_probabilities

    labels = list(model.config.label_names)
    known = [record if record.relation in labels else _relabel(record, NO_LABEL) for record in records]
    # max_length None: the model's own preprocessing (model.checkpoint.preprocessing)
    prepared = prepare_examples(known, tokenizer, model.config, None, FeatureCache(feature_cache_dir()))
    probs = predict_probabilities(model, prepared.examples, tokenizer.pad_token_id, batch_size)
    return [
        {name: float(probability) for name, probability in zip(labels, row, strict=True)}
        for row in probs.tolist()
    ]


def _relabel(record: Record, relation: str) -> Record:
    from dataclasses import replace

    return replace(record, relation=relation)


def predict_and_store(
    sessions: sessionmaker,
    model,
    tokenizer,
    version_key: int,
    pair_ids: list[int],
    chunk: int = 512,
    progress: Callable[[int, int], None] | None = None,
    atomic: bool = False,
) -> int:
    """Predict `pair_ids` in chunks, committing each chunk (an interrupted run keeps what it finished), or with
    atomic=True all of them in one transaction at the end (a scoring job that fails or is cancelled, e.g. by
    `progress` raising, stores nothing)."""
    done, rows = 0, []
    for start in range(0, len(pair_ids), chunk):
        ids = pair_ids[start : start + chunk]
        with sessions() as session:
            records, crop_source = model_records(session, ids, model.config)
        probabilities = predict_records(model, tokenizer, records)
        chunk_rows = [
            {"pair_id": pair_id, "probabilities": pair_probabilities}
            for pair_id, pair_probabilities in zip(ids, probabilities, strict=True)
        ]
        if atomic:
            rows += chunk_rows
        else:
            with sessions.begin() as session:
                save_predictions(session, version_key, chunk_rows, settings=_settings(model, crop_source))
        done += len(ids)
        if progress:
            progress(done, len(pair_ids))
    if atomic and rows:
        with sessions.begin() as session:
            save_predictions(session, version_key, rows, settings=_settings(model, crop_source))
    return done


def _settings(model, crop_source: CropSource) -> dict:
    """A stored prediction's settings: the model's preprocessing and which crops it read (CropSource.note)."""
    return {**asdict(preprocessing(model.config)), "crops": crop_source.note}


def predict_pair(
    sessions: sessionmaker, model, tokenizer, version_key: int, pair_id: int
) -> dict[str, float]:
    """Score one pair now and store it (the Review page calls this for pairs the batch step has not reached)."""
    with sessions() as session:
        records, crop_source = model_records(session, [pair_id], model.config)
    probabilities = predict_records(model, tokenizer, records)[0]
    with sessions.begin() as session:
        save_predictions(
            session,
            version_key,
            [{"pair_id": pair_id, "probabilities": probabilities}],
            settings=_settings(model, crop_source),
        )
    return probabilities


def ground_post(sessions: sessionmaker, post_id: int, entity_names: list[str], cam, crop_dir: Path) -> int:
    """Ground a stored post's image (offline CAM fallback; GroundingDINO when the batch step stored crops) and
    store the boxes with their crop files. Returns the number of objects found (0 without an image)."""
    from db.provenance import save_crops
    from model.grounding import ground_objects
    from model.images import load_image

    with sessions() as session:
        post = get_post(session, post_id)
        tokens, image_path = list(post.tokens), post.image_path if post.has_image else None
    if image_path is None:
        return 0
    image = load_image(image_path).convert("RGB")
    result = ground_objects(image, tokens, entity_names, grounder=None, cam=cam)
    crop_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, (obj, crop) in enumerate(zip(result.objects, result.crops, strict=True)):
        path = crop_dir / f"post{post_id}_crop{k}.png"
        crop.save(path)
        rows.append({"box": obj.box, "label": obj.label, "score": obj.score, "path": path})
    with sessions.begin() as session:
        save_crops(session, post_id, rows, source=result.source or "none", settings=result.settings)
    return len(rows)
