import json

import pytest
import torch

from model.data import Entity, encode_text
from model.encoders import build_model
from model.ifaformer import IFAformerForRelationClassification

LABELS = ["None", "/per/per/peer", "/per/per/couple"]


def make_batch(tokenizer, with_image=(True, False), crops=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    sentences = [
        (["Alex", "and", "Sam", "today"], Entity("Alex", 0, 1), Entity("Sam", 2, 3)),
        (["Kim", "meets", "Lee", "at", "the", "park", "again"], Entity("Kim", 0, 1), Entity("Lee", 2, 3)),
    ]
    enc = [encode_text(t, h, tl, tokenizer, 32) for t, h, tl in sentences]
    width = max(len(e.input_ids) for e in enc)
    ids = torch.zeros(2, width, dtype=torch.long)
    mask = torch.zeros(2, width, dtype=torch.long)
    for i, e in enumerate(enc):
        ids[i, : len(e.input_ids)] = torch.tensor(e.input_ids)
        mask[i, : len(e.input_ids)] = 1
    image_mask = torch.tensor([[1.0] * (1 + crops) if w else [0.0] * (1 + crops) for w in with_image])
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "head_index": torch.tensor([e.head_index for e in enc]),
        "tail_index": torch.tensor([e.tail_index for e in enc]),
        "visual_features": torch.randn(2, 49 + crops, 1280, generator=g),
        "image_mask": image_mask,
        "labels": torch.tensor([1, 2]),
    }


@pytest.fixture(scope="module")
def models(tiny_text_encoder):
    torch.manual_seed(0)
    return {
        v: build_model(v, LABELS, tiny_text_encoder)[0].eval()
        for v in ("text_only", "vanilla", "no_text_attn", "objects")
    }


@pytest.mark.parametrize("variant,visual_tokens", [("vanilla", 49), ("objects", 52), ("no_text_attn", 52)])
def test_shapes_and_attention_rows(models, minilm_tokenizer, variant, visual_tokens):
    batch = make_batch(minilm_tokenizer, with_image=(True, True))
    out = models[variant](**batch, output_attentions=True)
    T = batch["input_ids"].shape[1]
    assert out.logits.shape == (2, len(LABELS))
    assert out.vision_hidden.shape[1] == visual_tokens
    assert len(out.text_attentions) == 2 and out.fused_text_layers == [0, 1]
    for w in out.text_attentions:
        assert w.shape == (2, 4, T, T + visual_tokens)
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, T))
    expected_v = visual_tokens if variant == "no_text_attn" else visual_tokens + T
    assert all(w.shape == (2, 4, visual_tokens, expected_v) for w in out.vision_attentions)


def test_padding_and_missing_images_get_no_attention(models, minilm_tokenizer):
    batch = make_batch(minilm_tokenizer, with_image=(True, False))
    out = models["objects"](**batch, output_attentions=True)
    T = batch["input_ids"].shape[1]
    pad_cols = batch["attention_mask"] == 0
    assert pad_cols[0].any()  # the shorter sentence is padded
    for w in out.text_attentions:
        # record 1 has no image: its text attends to no visual token
        assert w[1, :, :, T:].abs().max() == 0
        # padded text positions receive no weight from anyone
        assert w[0][..., :T][..., pad_cols[0]].abs().max() == 0
    for w in out.vision_attentions:
        assert w[0][..., 52:][..., pad_cols[0]].abs().max() == 0


def test_visual_values_reach_the_text_and_masked_images_do_not(models, minilm_tokenizer):
    model = models["objects"]
    batch = make_batch(minilm_tokenizer, with_image=(True, False))
    base = model(**batch).logits
    changed = dict(batch, visual_features=batch["visual_features"] * 3 + 1)
    new = model(**changed).logits
    assert not torch.allclose(base[0], new[0])  # the image is used where it exists
    torch.testing.assert_close(base[1], new[1])  # and ignored where it does not


def test_no_image_equals_text_stream_alone(models, minilm_tokenizer):
    """A record without an image gets the same logits whether or not its batch has images."""
    model = models["objects"]
    mixed = model(**make_batch(minilm_tokenizer, with_image=(True, False))).logits
    none = model(**make_batch(minilm_tokenizer, with_image=(False, False))).logits
    torch.testing.assert_close(mixed[1], none[1], atol=1e-5, rtol=1e-5)


def test_appending_padding_changes_nothing(models, minilm_tokenizer):
    model = models["objects"]
    batch = make_batch(minilm_tokenizer)
    padded = dict(
        batch,
        input_ids=torch.cat([batch["input_ids"], torch.zeros(2, 5, dtype=torch.long)], 1),
        attention_mask=torch.cat([batch["attention_mask"], torch.zeros(2, 5, dtype=torch.long)], 1),
    )
    torch.testing.assert_close(model(**batch).logits, model(**padded).logits, atol=1e-5, rtol=1e-5)


def test_vision_without_text_attention_ignores_the_text(models, minilm_tokenizer):
    model = models["no_text_attn"]
    batch = make_batch(minilm_tokenizer, with_image=(True, True))
    other_text = dict(
        batch,
        input_ids=batch["input_ids"].flip(0),
        attention_mask=batch["attention_mask"].flip(0),
        head_index=batch["head_index"].flip(0),
        tail_index=batch["tail_index"].flip(0),
    )
    a, b = model(**batch).vision_hidden, model(**other_text).vision_hidden
    torch.testing.assert_close(a, b)


def test_text_weights_are_copied_from_the_encoder(tiny_text_encoder):
    from transformers import BertModel

    bert = BertModel.from_pretrained(tiny_text_encoder)
    model, tok = build_model("objects", LABELS, tiny_text_encoder)
    torch.testing.assert_close(
        model.text_layers[1].attn.v_proj.weight, bert.encoder.layer[1].attention.self.value.weight
    )
    torch.testing.assert_close(model.text_layers[0].fc2.bias, bert.encoder.layer[0].output.dense.bias)
    assert model.text_embeddings.word_embeddings.weight.shape[0] == len(tok)  # markers added


def test_clip_backbone_with_unequal_width_and_depth(tiny_text_encoder, tiny_clip_vision, minilm_tokenizer):
    from transformers import CLIPVisionModel

    model, _ = build_model("objects", LABELS, tiny_text_encoder, tiny_clip_vision)
    clip = CLIPVisionModel.from_pretrained(tiny_clip_vision)
    assert model.config.vision_backbone == "clip"
    torch.testing.assert_close(
        model.vision_layers[1].attn.q_proj.weight, clip.encoder.layers[1].self_attn.q_proj.weight
    )
    # text: 2 layers of width 32; vision: 3 layers of width 48 -> the top 2 pairs are fused through projections
    assert model.first_fused_vision == 1 and model.first_fused_text == 0
    batch = make_batch(minilm_tokenizer, with_image=(True, False))
    batch.pop("visual_features")
    batch["pixel_values"] = torch.randn(2, 4, 3, 32, 32)
    out = model.eval()(**batch, output_attentions=True)
    tokens_per_image = (32 // 8) ** 2 + 1
    assert out.vision_hidden.shape == (2, 4 * tokens_per_image, 48)
    assert out.text_attentions[0].shape[-1] == batch["input_ids"].shape[1] + 4 * tokens_per_image


def test_unavailable_encoder_is_a_clear_error():
    from model.encoders import EncoderNotAvailable

    with pytest.raises(EncoderNotAvailable, match="nothing is downloaded"):
        build_model("text_only", LABELS, "no-such-org/no-such-model")


def test_checkpoint_round_trip_without_pickle(models, minilm_tokenizer, tmp_path):
    model = models["objects"]
    version = model.save_pretrained(tmp_path, minilm_tokenizer)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["version_id"] == version and version.startswith("ifaformer-objects-")
    assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json"}
    loaded = IFAformerForRelationClassification.from_pretrained(tmp_path).eval()
    batch = make_batch(minilm_tokenizer)
    torch.testing.assert_close(model(**batch).logits, loaded(**batch).logits)


def test_classifier_is_trained_and_two_batches_overfit(tiny_text_encoder, minilm_tokenizer):
    torch.manual_seed(0)
    model, _ = build_model("objects", LABELS, tiny_text_encoder)
    from model.train import param_groups

    opt = torch.optim.AdamW(param_groups(model, 0.01), lr=3e-3)
    optimised = {id(p) for g in opt.param_groups for p in g["params"]}
    assert all(id(p) in optimised for p in model.parameters())  # the classifier included
    before = model.classifier.weight.detach().clone()
    batches = [make_batch(minilm_tokenizer, with_image=(True, True), seed=s) for s in (0, 1)]
    batches[1]["labels"] = torch.tensor([2, 0])
    for _ in range(60):
        for b in batches:
            loss = model(**b).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    assert not torch.equal(before, model.classifier.weight)
    for b in batches:
        assert model(**b).logits.argmax(-1).tolist() == b["labels"].tolist()
