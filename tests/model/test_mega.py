"""MEGA baseline: alignment inputs, masks, checkpoints, and the shared train / evaluate / shuffle commands."""

import json
from dataclasses import replace

import pytest
import torch

from model.batching import collate, prepare_examples
from model.checkpoint import load_model
from model.data import Entity, Record, encode_text, load_split
from model.evaluate import evaluate_checkpoint
from model.mega import MegaForRelationClassification, build_mega, structural_inputs
from model.train import TrainConfig, main

LABELS = ["None", "/per/per/peer", "/per/per/couple"]
SENTENCES = [
    (["Alex", "and", "Sam", "visit", "the", "old", "park"], Entity("Alex", 0, 1), Entity("Sam", 2, 3)),
    (["Kim", "meets", "Lee", "today"], Entity("Kim", 0, 1), Entity("Lee", 2, 3)),
]


def tiny_config(synthetic_root, text_encoder, cache, out, **kw) -> TrainConfig:
    base = TrainConfig(
        data=str(synthetic_root),
        output_dir=str(out),
        architecture="mega",
        text_encoder=text_encoder,
        epochs=2,
        batch_size=32,
        lr=2e-3,
        max_length=24,
        seed=0,
        feature_cache=str(cache),
        progress=False,
        pretrained=False,
    )
    return replace(base, **kw)


@pytest.fixture(scope="module")
def tiny_mega(tiny_text_encoder, tmp_path_factory):
    torch.manual_seed(0)
    cfg = TrainConfig(text_encoder=tiny_text_encoder, pretrained=False)
    model, tokenizer = build_mega(LABELS, cfg)
    return model.eval(), tokenizer


def make_batch(model, tokenizer, image_mask, seed=0):
    """Two records through structural_inputs + collate-style padding; image_mask (2, 1 + K)."""
    g = torch.Generator().manual_seed(seed)
    k = model.config.max_crops
    enc = [encode_text(t, h, tl, tokenizer, 32) for t, h, tl in SENTENCES]
    width = max(len(e.input_ids) for e in enc)
    ids = torch.zeros(2, width, dtype=torch.long)
    mask = torch.zeros(2, width, dtype=torch.long)
    structural = torch.zeros(2, width, model.config.num_objects)
    for i, (e, (tokens, _, _)) in enumerate(zip(enc, SENTENCES, strict=True)):
        ids[i, : len(e.input_ids)] = torch.tensor(e.input_ids)
        mask[i, : len(e.input_ids)] = 1
        structural[i, : len(e.input_ids)] = structural_inputs(
            tokens, e.word_index, image_mask[i], model.config
        )
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "head_index": torch.tensor([e.head_index for e in enc]),
        "tail_index": torch.tensor([e.tail_index for e in enc]),
        "visual_features": torch.randn(2, 49 + k, 1280, generator=g),
        "image_mask": image_mask,
        "structural_alignment": structural,
        "labels": torch.tensor([1, 2]),
    }


def test_structural_inputs_follow_words_and_present_objects(minilm_tokenizer, tiny_mega):
    config = tiny_mega[0].config  # 9 regions + 3 crops
    tokens, head, tail = SENTENCES[0]
    enc = encode_text(tokens, head, tail, minilm_tokenizer, 32)
    image_and_one_crop = torch.tensor([1.0, 1.0, 0.0, 0.0])
    s = structural_inputs(tokens, enc.word_index, image_and_one_crop, config)  # (T, 12)
    assert s.shape == (len(enc.input_ids), 12)
    words = torch.tensor(enc.word_index) >= 0
    assert torch.allclose(s[words].sum(-1), torch.ones(int(words.sum())), atol=1e-5)
    assert s[~words].abs().sum() == 0  # [CLS], [SEP] and the markers have no tree node
    assert s[:, 10:].abs().sum() == 0  # crops 2 and 3 are absent
    # pieces of one word share the word's row; the region graph (corners, edges, centre) is not uniform
    assert not torch.allclose(s[words][:, :9].std(-1), torch.zeros(int(words.sum())))
    crops_only = structural_inputs(tokens, enc.word_index, torch.tensor([0.0, 1.0, 1.0, 0.0]), config)
    assert crops_only[:, :9].abs().sum() == 0 and crops_only[words][:, 9:11].sum(-1).allclose(torch.ones(1))
    nothing = structural_inputs(tokens, enc.word_index, torch.zeros(4), config)
    assert nothing.abs().sum() == 0


def test_shapes_and_alignment_rows(tiny_mega):
    model, tokenizer = tiny_mega
    batch = make_batch(model, tokenizer, torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]))
    out = model(**batch)
    b, t = batch["input_ids"].shape
    assert out.logits.shape == (2, 3) and out.loss is not None and torch.isfinite(out.loss)
    assert out.alignment.shape == (b, t, 12) and out.semantic_alignment.shape == (b, t, 12)
    assert out.text_hidden.shape == (b, t, 32) and out.visual_summary.shape == (2, 32)
    real = batch["attention_mask"][0].bool()
    assert torch.allclose(out.alignment[0, real].sum(-1), torch.ones(int(real.sum())), atol=1e-5)
    assert out.alignment[1].abs().sum() == 0 and out.visual_summary[1].abs().sum() == 0
    assert torch.isfinite(out.logits).all()


def test_records_without_objects_ignore_visual_inputs(tiny_mega):
    model, tokenizer = tiny_mega
    mixed = make_batch(model, tokenizer, torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    other = dict(mixed, visual_features=torch.randn(mixed["visual_features"].shape) * 5)
    text_only = make_batch(model, tokenizer, torch.zeros(2, 4))  # no object in the batch: visual path skipped
    with torch.no_grad():
        a, b, c = model(**mixed).logits, model(**other).logits, model(**text_only).logits
    assert torch.allclose(a[1], b[1], atol=1e-6) and torch.allclose(a[1], c[1], atol=1e-6)
    assert not torch.allclose(a[0], b[0], atol=1e-4)  # the record with an image does read its features


def test_structural_alignment_is_used_and_required(tiny_mega):
    model, tokenizer = tiny_mega
    batch = make_batch(model, tokenizer, torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    moved_weights = batch["structural_alignment"].clone()
    # a roll, not a flip: reversing the 3x3 region order is a symmetry of the region graph
    moved_weights[..., :9] = moved_weights[..., :9].roll(1, dims=-1)
    with torch.no_grad():
        base = model(**batch).logits
        moved = model(**dict(batch, structural_alignment=moved_weights)).logits
        with pytest.raises(ValueError, match="structural_alignment"):
            model(**dict(batch, structural_alignment=None))
    assert not torch.allclose(base[0], moved[0], atol=1e-6)


def test_pretrained_text_weights_are_copied(tiny_text_encoder):
    from transformers import AutoModel

    model, tokenizer = build_mega(LABELS, TrainConfig(text_encoder=tiny_text_encoder, pretrained=True))
    bert = AutoModel.from_pretrained(tiny_text_encoder)
    layer = model.bert.encoder.layer[1].attention.self.query.weight
    assert torch.equal(layer, bert.encoder.layer[1].attention.self.query.weight)
    emb = model.bert.embeddings.word_embeddings.weight
    assert emb.size(0) == len(tokenizer)  # room for the four markers
    assert torch.equal(emb[: bert.config.vocab_size], bert.embeddings.word_embeddings.weight)


def test_save_load_round_trip_through_the_registry(tiny_mega, tmp_path):
    model, tokenizer = tiny_mega
    version = model.save_pretrained(tmp_path, tokenizer)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["architecture"] == "mega" and saved["version_id"] == version and version.startswith("mega-")
    loaded = load_model(tmp_path)
    assert isinstance(loaded, MegaForRelationClassification)
    assert loaded.config.num_objects == 12 and loaded.config.label_names == LABELS
    batch = make_batch(model, tokenizer, torch.tensor([[1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]))
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, loaded(**batch).logits, atol=1e-6)


def test_prepare_and_collate_pad_structural_alignment(tiny_mega, synthetic_root, feature_cache_dir):
    model, tokenizer = tiny_mega
    from model.visual_features import FeatureCache

    # relabelled "None", one of the tiny model's LABELS (the synthetic relations are not)
    records = [replace(r, relation="None") for r in load_split(synthetic_root, "val")[0][:3]]
    no_image = Record(["Ann", "sees", "Bo"], Entity("Ann", 0, 1), Entity("Bo", 2, 3), "None")
    prepared = prepare_examples(
        [*records, no_image], tokenizer, model.config, 24, FeatureCache(feature_cache_dir)
    )
    examples = prepared.examples
    assert all(e.extras["structural_alignment"].shape == (len(e.input_ids), 12) for e in examples)
    assert examples[-1].extras["structural_alignment"].abs().sum() == 0
    batch = collate(examples, tokenizer.pad_token_id)
    assert batch["structural_alignment"].shape == (4, batch["input_ids"].size(1), 12)
    with torch.no_grad():
        out = model(**batch)
    assert torch.isfinite(out.logits).all() and out.object_mask[:3].sum(-1).tolist() == [10.0, 10.0, 10.0]


@pytest.mark.slow
def test_train_cli_and_evaluate_via_registry(synthetic_root, tiny_text_encoder, feature_cache_dir, tmp_path):
    argv = [
        "--architecture", "mega", "--data", str(synthetic_root), "--output-dir", str(tmp_path),
        "--text-encoder", tiny_text_encoder, "--no-pretrained", "--epochs", "3", "--batch-size", "16",
        "--lr", "2e-3", "--max-length", "24", "--seed", "0", "--feature-cache", str(feature_cache_dir),
        "--no-progress", "--limit-train", "128", "--limit-val", "48",
    ]  # fmt: skip
    assert main(argv) == 0
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history) == 3 and history[-1]["train_loss"] < history[0]["train_loss"]
    saved = json.loads((tmp_path / "best" / "config.json").read_text())
    assert saved["architecture"] == "mega"
    val_records, _, _ = load_split(synthetic_root, "val")  # features already cached by the training run
    metrics = evaluate_checkpoint(
        tmp_path / "best", val_records[:48], feature_cache=feature_cache_dir, max_length=24
    )
    assert metrics["f1"] == pytest.approx(
        json.loads((tmp_path / "best" / "val_metrics.json").read_text())["f1"]
    )
    assert metrics["model_version"] == saved["version_id"] and metrics["records"] == 48
    assert metrics["visual_inputs"]["with_image"] == 48


@pytest.mark.slow
def test_shuffle_experiment_runs_for_mega(synthetic_root, tiny_text_encoder, feature_cache_dir, tmp_path):
    from model.shuffle import SETTINGS, run_shuffle_experiment

    cfg = tiny_config(
        synthetic_root, tiny_text_encoder, feature_cache_dir, tmp_path, epochs=1, limit_train=64, limit_val=32
    )
    rows = run_shuffle_experiment(cfg, ["mega"], eval_split="val", out=tmp_path)
    assert [r["setting"] for r in rows] == list(SETTINGS)
    assert {r["model"] for r in rows} == {"mega"} and {r["architecture"] for r in rows} == {"mega"}
    assert (
        rows[0]["model_version"].startswith("mega-") and rows[0]["model_version"] != rows[1]["model_version"]
    )
    assert (tmp_path / "shuffle_table.md").read_text().count("| mega |") == 1
