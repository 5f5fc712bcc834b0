"""Encoding and batching: literal marker text, preprocessing read from the model, the visual shuffle over distinct
pictures, visual inputs loaded per batch, the decision offset on "None", trainer state without pickle."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from model.batching import VisualRef, collate, prepare_examples, shuffled_visual_sources
from model.checkpoint import load_trainer_state, preprocessing, save_trainer_state, set_preprocessing
from model.data import Entity, Record, encode_text, load_split
from model.encoders import build_model
from model.evaluate import decision_logits, metrics_from_logits, predict_probabilities, tune_none_bias
from model.synthetic import MNRE_LABELS
from model.visual_features import FeatureCache, efficientnet_visual_inputs, file_digest

LABELS = MNRE_LABELS  # the synthetic data uses them all
TINY_VISION = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}


@pytest.fixture(scope="module")
def objects_model(tiny_text_encoder):
    torch.manual_seed(0)
    model, tokenizer = build_model("objects", LABELS, tiny_text_encoder, vision_config=TINY_VISION)
    return model.eval(), tokenizer


def record(tokens, head, tail, relation="None", **kw) -> Record:
    return Record(tokens=tokens, head=head, tail=tail, relation=relation, **kw)


# ---------------------------------------------------------------------------------------------------------------
# literal marker text


@pytest.mark.parametrize("style", ["tokens", "punct"])
def test_marker_and_separator_text_in_a_post_stays_ordinary_text(minilm_tokenizer, style):
    tok = minilm_tokenizer
    tokens = ["<s>", "wrote", "</o>", "and", "[SEP]", "to", "Ann", "[CLS]", "x</s>y", "Bob"]
    enc = encode_text(tokens, Entity("Ann", 6, 7), Entity("Bob", 9, 10), tok, 80, style)
    special = {tok.convert_tokens_to_ids(m) for m in ("<s>", "</s>", "<o>", "</o>")}
    real_markers = [i for i, t in enumerate(enc.input_ids) if t in special]
    # the only marker tokens are the four the encoder inserted (none with "punct"), the only [CLS]/[SEP] the ends
    assert real_markers == ([] if style == "punct" else list(enc.marker_index))
    assert enc.input_ids.count(tok.sep_token_id) == 1 and enc.input_ids[-1] == tok.sep_token_id
    assert enc.input_ids.count(tok.cls_token_id) == 1 and enc.input_ids[0] == tok.cls_token_id
    # the text reads as the pieces an unregistered string gives ("<", "s", ">"), and maps back to its word
    pieces = tok.convert_ids_to_tokens(enc.input_ids)
    assert pieces[1:4] == ["<", "s", ">"] and enc.word_index[1:4] == [0, 0, 0]
    assert [enc.word_index[i] for i in (enc.head_index + 1, enc.tail_index + 1)] == [6, 9]


def test_a_split_with_marker_text_is_encoded_whole(objects_model):
    model, tokenizer = objects_model
    records = [
        record(["Ann", "<o>", "met", "Bob"], Entity("Ann", 0, 1), Entity("Bob", 3, 4)),
        record(["[SEP]", "Cy", "and", "Di", "</s>"], Entity("Cy", 1, 2), Entity("Di", 3, 4)),
        record(["<s>"], Entity("<s>", 0, 1), Entity("<s>", 0, 1)),
    ]
    prepared = prepare_examples(records, tokenizer, model.config)
    assert len(prepared.examples) == 3
    out = model(
        **{k: v for k, v in collate(prepared.examples, tokenizer.pad_token_id).items() if k != "labels"}
    )
    assert out.logits.shape == (3, len(LABELS))


# ---------------------------------------------------------------------------------------------------------------
# preprocessing is the model's


def test_prepare_uses_the_models_max_length_and_markers(objects_model):
    model, tokenizer = objects_model
    config = replace(model.config)
    long = record(
        [f"w{i}" for i in range(60)] + ["Ann", "x", "Bob"], Entity("Ann", 60, 61), Entity("Bob", 62, 63)
    )
    set_preprocessing(config, max_length=16, marker_style="punct")
    example = prepare_examples([long], tokenizer, config).examples[0]
    assert len(example.input_ids) == 16
    assert tokenizer.convert_ids_to_tokens([example.input_ids[example.head_index]]) == ["@"]
    set_preprocessing(config, max_length=40, marker_style="tokens")
    example = prepare_examples([long], tokenizer, config).examples[0]
    assert len(example.input_ids) == 40
    assert tokenizer.convert_ids_to_tokens([example.input_ids[example.head_index]]) == ["<s>"]


def test_old_checkpoints_read_the_old_defaults_and_bad_settings_are_refused(objects_model):
    config = replace(objects_model[0].config, preprocessing={})
    assert preprocessing(config).max_length == 80 and preprocessing(config).marker_style == "tokens"
    with pytest.raises(ValueError, match="marker_style"):
        preprocessing(replace(config, preprocessing={"marker_style": "xml"}))
    with pytest.raises(ValueError, match="unknown setting 'max_len'"):
        preprocessing(replace(config, preprocessing={"max_len": 80}))


# ---------------------------------------------------------------------------------------------------------------
# decision offset on "None"


def test_none_offset_is_tuned_to_val_f1_and_applied_to_every_prediction(objects_model):
    config = objects_model[0].config
    # gold: 4 non-None pairs whose logits slightly prefer None, 4 None pairs that clearly do
    logits = torch.tensor([[1.0, 0.8, 0.0]] * 4 + [[3.0, 0.0, 0.0]] * 4)
    gold = [1, 1, 1, 1, 0, 0, 0, 0]
    assert metrics_from_logits(logits, gold, config, none_bias=0.0)["f1"] == 0.0
    bias = tune_none_bias(logits, gold, config.label_names)
    assert -3.0 < bias < -0.2  # any offset in this range makes all eight right; the smallest |offset| wins
    tuned = metrics_from_logits(logits, gold, config, none_bias=bias)
    assert tuned["f1"] == 1.0 and tuned["without_bias"]["f1"] == 0.0
    shifted = decision_logits(logits, replace(config, preprocessing={"none_bias": bias}))
    assert shifted.argmax(-1).tolist() == gold


def test_predictions_follow_the_stored_offset(objects_model):
    model, tokenizer = objects_model
    records = [record(["Ann", "met", "Bob"], Entity("Ann", 0, 1), Entity("Bob", 2, 3))] * 3
    examples = prepare_examples(records, tokenizer, model.config).examples
    plain = predict_probabilities(model, examples, tokenizer.pad_token_id)
    biased_model = replace(model.config, preprocessing={"none_bias": 50.0})
    original = model.config
    model.config = biased_model
    try:
        biased = predict_probabilities(model, examples, tokenizer.pad_token_id)
    finally:
        model.config = original
    assert biased.argmax(-1).tolist() == [0, 0, 0] and not torch.allclose(plain, biased)


# ---------------------------------------------------------------------------------------------------------------
# visual shuffle over distinct pictures


def test_shuffle_never_returns_a_records_own_picture_when_records_share_images():
    # 3 pictures shared by 10, 10 and 1 records, two records without a picture, one with crops only
    digest = {Path(f"img{i}"): f"d{i}" for i in range(3)}
    digest[Path("crop")] = "dc"
    sources = [(Path("img0"), [])] * 10 + [(Path("img1"), [])] * 10 + [(Path("img2"), [])]
    sources += [(None, []), (None, []), (None, [Path("crop")])]
    for seed in range(20):
        shuffled, moved = shuffled_visual_sources(sources, seed, digest.__getitem__)
        assert moved == len(sources) - 2
        for (own_image, own_crops), (new_image, new_crops) in zip(sources, shuffled, strict=True):
            if own_image is None and not own_crops:
                assert (new_image, new_crops) == (None, [])  # no picture to swap
            else:
                assert (new_image, new_crops) != (own_image, own_crops)


def test_shuffle_needs_two_distinct_pictures():
    with pytest.raises(ValueError, match="two distinct images"):
        shuffled_visual_sources([(Path("a"), [])] * 5, 0, lambda p: "same")


def test_shuffled_split_gives_no_record_its_own_image(objects_model, synthetic_root, feature_cache_dir):
    """Synthetic val posts: 160 over 48 images, so many records share one."""
    model, tokenizer = objects_model
    records = load_split(synthetic_root, "val")[0]
    images = {r.image_path for r in records}
    assert len(images) < len(records) / 3
    cache = FeatureCache(feature_cache_dir)
    plain = prepare_examples(records, tokenizer, model.config, feature_cache=cache)
    for seed in (0, 1):
        shuffled = prepare_examples(
            records, tokenizer, model.config, feature_cache=cache, shuffle_images_seed=seed
        )
        same = 0
        for start in range(0, len(records), 100):
            a = collate(plain.examples[start : start + 100], tokenizer.pad_token_id)["visual_features"][
                :, :49
            ]
            b = collate(shuffled.examples[start : start + 100], tokenizer.pad_token_id)["visual_features"][
                :, :49
            ]
            same += int((a == b).flatten(1).all(1).sum())
        assert same == 0, f"seed {seed}: {same} records got their own image back"


# ---------------------------------------------------------------------------------------------------------------
# visual inputs: one entry per distinct image, loaded per batch


def test_visual_inputs_are_references_and_batches_match_the_grids(
    objects_model, synthetic_root, feature_cache_dir
):
    model, tokenizer = objects_model
    records, _, _ = load_split(synthetic_root, "val")
    records = records[:40] + [replace(records[0], image_path=None, crop_paths=[]) for _ in range(5)]
    cache = FeatureCache(feature_cache_dir)
    prepared = prepare_examples(records, tokenizer, model.config, feature_cache=cache)
    visuals = [e.visual for e in prepared.examples]
    assert all(isinstance(v, VisualRef) for v in visuals)
    # nothing per record beyond a reference: records without a picture share one object
    assert len({id(v) for v in visuals[-5:]}) == 1 and visuals[-1].image is None
    assert not any(isinstance(getattr(v, name), torch.Tensor) for v in visuals for name in ("image", "crops"))
    batch = collate(prepared.examples, tokenizer.pad_token_id)
    grids = cache.grids([p for r in records for p in ([r.image_path] if r.image_path else []) + r.crop_paths])
    for i, rec in enumerate(records):
        feats, mask = efficientnet_visual_inputs(rec.image_path, rec.crop_paths[:3], grids, 3)
        torch.testing.assert_close(batch["visual_features"][i], feats, atol=0, rtol=0)
        assert batch["image_mask"][i].tolist() == mask.tolist()
    # written atomically: no temporary file is left beside the entries
    assert not list(Path(feature_cache_dir).glob(".*.tmp"))
    assert visuals[0].image == file_digest(records[0].image_path)


# ---------------------------------------------------------------------------------------------------------------
# trainer state without pickle


def test_trainer_state_round_trips_without_pickle(tmp_path, monkeypatch):
    net = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(net.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (step + 1))
    for _ in range(3):
        net(torch.randn(2, 4)).sum().backward()
        optimizer.step()
        scheduler.step()
    import random

    state = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": 2,
        "python_rng": random.getstate(),
        "torch_rng": torch.get_rng_state(),
    }
    save_trainer_state(tmp_path, state)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trainer_state.json", "trainer_state.safetensors"]

    def no_unpickling(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", no_unpickling)
    loaded = load_trainer_state(tmp_path)
    fresh = torch.optim.AdamW(torch.nn.Linear(4, 3).parameters(), lr=0.1)
    fresh.load_state_dict(loaded["optimizer"])
    for key, values in optimizer.state_dict()["state"].items():
        for name, tensor in values.items():
            torch.testing.assert_close(fresh.state_dict()["state"][key][name], tensor)
    assert loaded["scheduler"] == scheduler.state_dict() and loaded["epoch"] == 2
    random.setstate(loaded["python_rng"])
    assert torch.equal(loaded["torch_rng"], state["torch_rng"])
    assert load_trainer_state(tmp_path / "nothing") is None
