"""The Queue's image reliance comes from whichever version computed it (not only the active one, which may be
text-only), and says which; before the first model the Queue says what is training, as the sidebar does (one
status source: app.services.model_status)."""

from __future__ import annotations

import torch
from sqlalchemy import select, update

from db.models import ModelVersion, Prediction
from db.schema import open_database
from tests.app.conftest import TINY_VISION, no_exceptions


def _second_text_only_version_active(url: str, tiny_text_encoder, folder) -> tuple[str, str]:
    """Register a text-only version with predictions (no reliance) and make it active; the seeded objects version
    keeps its predictions. Returns (objects version id, text-only version id)."""
    from app.services.inference import predict_and_store
    from db.models import EntityPair
    from db.provenance import register_checkpoint, set_active
    from model.checkpoint import load_checkpoint
    from model.encoders import build_model
    from model.synthetic import MNRE_LABELS

    torch.manual_seed(2)
    model, tokenizer = build_model("text_only", MNRE_LABELS, tiny_text_encoder, vision_config=TINY_VISION)
    model.save_pretrained(folder, tokenizer)
    engine, sessions = open_database(url)
    with sessions.begin() as session:
        objects_id = session.scalar(select(ModelVersion.version_id).where(ModelVersion.is_active))
        version = register_checkpoint(session, folder)
        set_active(session, version.version_id)
        key, text_id = version.id, version.version_id
        ids = list(session.scalars(select(EntityPair.id)))
    model, tokenizer = load_checkpoint(folder)
    predict_and_store(sessions, model, tokenizer, key, ids)
    engine.dispose()
    return objects_id, text_id


def _store_reliance(url: str, version_id: str, pair_ids: list[int]) -> dict[int, float]:
    """Inspect's reliance result for some pairs, stored as Inspect and the worker store it; returns the scores."""
    from app.services.paths import feature_cache_dir
    from app.services.stored_explanations import DEFAULT_SETTINGS, compute, encode, store_result
    from model.checkpoint import load_checkpoint

    engine, sessions = open_database(url)
    with sessions() as session:
        version = session.scalar(select(ModelVersion).where(ModelVersion.version_id == version_id))
        key, path = version.id, version.path
    model, tokenizer = load_checkpoint(path)
    cache, scores = str(feature_cache_dir()), {}
    for pair_id in pair_ids:
        inputs = encode(model, tokenizer, sessions, pair_id, cache)
        result = compute(
            "reliance", model, tokenizer, inputs, sessions, pair_id, DEFAULT_SETTINGS["reliance"], cache
        )
        with sessions.begin() as session:
            store_result(session, pair_id, key, "reliance", DEFAULT_SETTINGS["reliance"], result, "test")
        scores[pair_id] = result.score
    engine.dispose()
    return scores


def test_the_image_reliance_sort_uses_the_version_that_computed_it_and_names_it(
    make_app, seeded_url, tiny_text_encoder, tmp_path
):
    engine, sessions = open_database(seeded_url)
    with sessions() as session:
        objects_id = session.scalar(select(ModelVersion.version_id).where(ModelVersion.is_active))
        val_pairs = sorted(
            session.scalars(select(Prediction.pair_id).where(Prediction.pair_id.in_(range(17, 25))))
        )
    engine.dispose()
    scores = _store_reliance(seeded_url, objects_id, val_pairs[:3])
    objects_id, text_id = _second_text_only_version_active(seeded_url, tiny_text_encoder, tmp_path / "text")
    at = make_app(seeded_url)
    at.toggle(key="queue_more_columns").set_value(True).run()
    at.selectbox(key="queue_sort").set_value("image_reliance").run()
    no_exceptions(at)
    table = at.dataframe(key="queue_table").value
    shown = dict(zip(table["pair"], table["image reliance"], strict=True))
    ranked = sorted(scores, key=lambda pair: -scores[pair])
    assert list(table["pair"])[: len(ranked)] == ranked, "sorted by the objects version's reliance"
    for pair, score in scores.items():
        assert abs(shown[pair] - score) < 1e-9
    captions = " ".join(c.value for c in at.caption) + " ".join(w.value for w in at.warning)
    from app.ui.render import plain

    assert f"Image reliance as computed by {plain(objects_id)} (not the active model" in captions, captions
    assert not any("no pair shown has one" in w.value for w in at.warning)


def test_before_the_first_model_the_queue_says_what_is_training(make_app, seeded_url):
    from app.jobs import enqueue
    from db.jobs import start_job

    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        session.execute(update(ModelVersion).values(is_active=False))
    first = enqueue(sessions, "first_model", "make app", {})
    with sessions.begin() as session:
        start_job(session, first)
    engine.dispose()
    at = make_app(seeded_url)
    no_exceptions(at)
    said = " ".join(w.value for w in at.warning) + " ".join(i.value for i in at.info)
    assert "No model is active yet" in said
    assert "train one on the Models page" not in said and "Register or train one" not in said, said
    assert "the first model is training" in said, said
