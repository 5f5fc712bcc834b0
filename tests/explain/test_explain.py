"""explain/: attention shapes and rollout, IG completeness, faithfulness against random, image reliance, determinism.

Models are tiny IFAformers trained on the synthetic data where the image alone decides the relation (conftest.py),
so the right answers are known in advance: the objects model must rely on the image, the text-only model cannot.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

import explain
from explain.attention import rollout
from explain.attribution import N_REGIONS
from explain.inputs import probabilities


def _post(models, variant, records, cache, i=0):
    model, tok = models[variant]
    return model, tok, explain.encode_post(model, tok, records[i], cache, max_length=24)


# ----------------------------------------------------------------------------------------------------------------
# Pure functions (no trained model)


def test_rollout_known_answer_and_rows_sum_to_one():
    # one token per stream; the only (top) fused text layer attends entirely to the visual token
    text_attn = [np.array([[0.0, 1.0]])]  # (T, T + V)
    joint = rollout(text_attn, [], 0, 0, 1, 1)
    # 0.5 A + 0.5 I: half of the text state is the residual, half comes from the visual token
    assert joint[0, 1] == pytest.approx(0.5) and joint[1, 1] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    t, v = 4, 3

    def rows(n, m):
        a = rng.random((n, m))
        return a / a.sum(1, keepdims=True)

    joint = rollout([rows(t, t), rows(t, t + v), rows(t, t + v)], [rows(v, v), rows(v, v + t)], 1, 1, t, v)
    assert np.allclose(joint.sum(1), 1.0)


def test_heatmap_upsamples_to_the_image_size():
    grid = np.zeros((7, 7))
    grid[0, 6] = 1.0  # top right cell
    attr = explain.VisualAttribution(np.zeros(3), grid, [True, False, False], "x", 1, 0.5, "occlusion")
    heat = attr.heatmap((140, 70))  # (width, height)
    assert heat.shape == (70, 140)
    assert np.unravel_index(heat.argmax(), heat.shape)[1] > 120 and heat[:10].max() > heat[-10:].max()


def _run(model, setting, f1, variant=None, split="test", version="v"):
    return {
        "model": model,
        "architecture": "mega" if model == "mega" else "ifaformer",
        "variant": variant or ("objects" if model == "mega" else model),
        "setting": setting,
        "accuracy": f1 + 0.1,
        "precision": f1,
        "recall": f1,
        "f1": f1,
        "eval_split": split,
        "model_version": version,
    }


def test_shuffle_table_averages_runs_and_reports_drops():
    runs = [
        _run("objects", "standard", 0.8),
        _run("objects", "standard", 0.6),  # a second seed
        _run("objects", "shuffle_test", 0.3),
        _run("mega", "standard", 0.66),
        _run("mega", "shuffle_test", 0.65),
    ]
    rows = {r["model"]: r for r in explain.shuffle_table(runs)}
    obj = rows["objects"]
    assert obj["n_standard"] == 2 and obj["standard_f1"] == pytest.approx(0.7)
    assert obj["f1_drop_shuffle_test"] == pytest.approx(0.4) and obj["f1_drop_shuffle_train"] is None
    assert obj["shuffle_train_f1"] is None and obj["f1_std_standard"] == pytest.approx(0.1)
    assert rows["mega"]["f1_drop_shuffle_test"] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="f1"):
        explain.shuffle_table(
            [{"model": "x", "setting": "standard", "accuracy": 1, "precision": 1, "recall": 1}]
        )


def test_ablation_table_in_paper_order_relative_to_the_full_model():
    runs = [
        _run("objects", "standard", 0.8),
        _run("objects", "shuffle_test", 0.3),  # not part of the ablation
        _run("text_only", "standard", 0.5),
        _run("mega", "standard", 0.6),
        _run("vanilla", "standard", 0.7),
    ]
    rows = explain.ablation_table(runs)
    assert [r["model"] for r in rows] == ["mega", "text_only", "vanilla", "objects"]
    by = {r["model"]: r for r in rows}
    assert by["text_only"]["f1_vs_full"] == pytest.approx(-0.3) and by["objects"]["f1_vs_full"] == 0
    assert by["objects"]["paper_f1"] == 81.67 and by["mega"]["paper_name"] == "MEGA"


# ----------------------------------------------------------------------------------------------------------------
# Trained tiny models


@pytest.mark.slow
def test_inputs_prediction_and_attention_shapes(
    explain_models, synthetic_test_records, explain_feature_cache
):
    model, _, inputs = _post(explain_models, "objects", synthetic_test_records, explain_feature_cache)
    t = inputs.batch["input_ids"].shape[1]
    assert len(inputs.tokens) == len(inputs.word_index) == t
    assert inputs.tokens[inputs.head_span[0]] == "<s>" and inputs.tokens[inputs.head_span[1] - 1] == "</s>"
    assert inputs.tokens[inputs.tail_span[0]] == "<o>" and inputs.tokens[inputs.tail_span[1] - 1] == "</o>"
    assert inputs.has_image and len(inputs.visual_labels) == N_REGIONS + 3
    assert inputs.visual_labels[:2] == ["grid r0c0", "grid r0c1"] and inputs.visual_labels[-3] == "crop 1"
    assert inputs.visual_present[-3:] == [True, False, False]  # the synthetic posts have one crop

    pred = explain.predict_post(model, inputs)
    assert sum(pred.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert pred.label == max(pred.probabilities, key=pred.probabilities.get) == inputs.record.relation
    assert 0 <= pred.margin <= 1 and 0 <= pred.entropy <= math.log(len(pred.probabilities))

    maps = explain.token_object_attention(model, inputs)
    v = len(inputs.visual_labels)
    assert maps.text_to_visual.shape == (2, 4, t, v) and maps.layers == [0, 1]
    assert maps.visual_to_text.shape == (1, 4, v, t)
    assert maps.mean_text_to_visual.shape == (2, t, v) and maps.rollout_text_to_visual.shape == (t, v)
    assert np.allclose(maps.rollout_text_to_visual.sum(axis=1), 1.0)
    assert np.all((maps.rollout_visual_share > 0) & (maps.rollout_visual_share < 1))
    assert np.all(maps.text_to_visual.sum(-1) <= 1 + 1e-6)  # the rest of each row went to text keys
    assert maps.grid.shape == (2, t, 7, 7) and maps.crop_scores.shape == (2, t, 3)
    assert np.allclose(maps.crop_scores[:, :, 1:], 0, atol=1e-6)  # absent crops are masked out
    assert maps.entity_token_mask.sum() == (inputs.head_span[1] - inputs.head_span[0]) + (
        inputs.tail_span[1] - inputs.tail_span[0]
    )


@pytest.mark.slow
@pytest.mark.parametrize("baseline", ["pad", "mask"])
def test_layer_ig_scores_settings_and_version(
    explain_models, synthetic_test_records, explain_feature_cache, baseline
):
    """On the trained model the text hardly matters (the image decides), so completeness is checked on
    test_token_ig_is_complete's models; here: what the scores cover and what the result records."""
    model, _, inputs = _post(explain_models, "objects", synthetic_test_records, explain_feature_cache, i=3)
    attr = explain.attribute_tokens(model, inputs, baseline=baseline, n_steps=32, internal_batch_size=8)
    assert attr.scores.shape == (len(inputs.tokens),) and np.all(attr.scores[inputs.special_mask] == 0)
    assert np.any(attr.scores[~inputs.special_mask] != 0)
    assert attr.settings["n_steps"] == 32 and attr.settings["baseline"] == baseline
    assert attr.model_version == model.config.version_id != "" and attr.target_label == inputs.record.relation


@pytest.mark.slow
def test_visual_ig_is_complete_and_occlusion_finds_the_object(
    explain_models, synthetic_test_records, explain_feature_cache
):
    model, _, inputs = _post(explain_models, "objects", synthetic_test_records, explain_feature_cache, i=1)
    ig = explain.attribute_visual(model, inputs, method="integrated_gradients", n_steps=32)
    zero = {**inputs.batch, "visual_features": torch.zeros_like(inputs.batch["visual_features"])}
    p_x = float(probabilities(model, inputs.batch)[0, ig.target_id])
    p_b = float(probabilities(model, zero)[0, ig.target_id])
    assert abs(p_x - p_b) > 0.05  # this model reads the image: an all-zero picture changes its prediction
    assert abs(ig.unit_scores.sum() - (p_x - p_b)) <= 0.05 * abs(p_x - p_b), (ig.unit_scores.sum(), p_x - p_b)
    assert abs(ig.delta) <= 0.05 * abs(p_x - p_b)
    occ = explain.attribute_visual(model, inputs)
    assert occ.method == "occlusion" and occ.region_scores.shape == (7, 7) and occ.crop_scores.shape == (3,)
    assert occ.crop_present == [True, False, False] and np.all(occ.crop_scores[1:] == 0)
    with pytest.raises(ValueError, match="method"):
        explain.attribute_visual(model, inputs, method="shap")


@pytest.mark.slow
def test_visual_comprehensiveness_beats_random(explain_models, synthetic_test_records, explain_feature_cache):
    model, _ = explain_models["objects"]
    gains, comps, randoms = [], [], []
    for i in range(0, 24, 3):
        inputs = explain.encode_post(
            model, explain_models["objects"][1], synthetic_test_records[i], explain_feature_cache, 24
        )
        attr = explain.attribute_visual(model, inputs)
        faith = explain.faithfulness(model, inputs, attr, fractions=(0.1, 0.2, 0.5))
        assert set(faith.per_fraction) == {0.1, 0.2, 0.5}
        assert faith.per_fraction[0.1]["k"] == math.ceil(0.1 * 50)
        comps.append(faith.comprehensiveness)
        randoms.append(faith.random_comprehensiveness)
        gains.append(faith.gain_over_random)
    assert np.mean(comps) > np.mean(randoms) + 0.05, (comps, randoms)
    assert np.mean(np.array(gains) > 0) >= 0.75


@pytest.mark.slow
def test_image_reliance_high_for_objects_zero_for_text_only(
    explain_models, synthetic_test_records, explain_feature_cache
):
    others = {
        v: [explain.encode_post(m, t, r, explain_feature_cache, 24) for r in synthetic_test_records[100:140]]
        for v, (m, t) in explain_models.items()
    }
    scores = {"objects": [], "text_only": []}
    for i in range(0, 40, 5):
        for variant, (model, tok) in explain_models.items():
            inputs = explain.encode_post(model, tok, synthetic_test_records[i], explain_feature_cache, 24)
            rel = explain.image_reliance(model, inputs, others[variant], k=5, seed=0)
            scores[variant].append(rel.score)
            if variant == "objects":
                assert len(rel.p_swapped) == len(rel.swapped_predictions) == 5 and 0 <= rel.score <= 1
            else:
                assert rel.reason == "text_only model" and len(rel.p_swapped) == 0
    assert np.mean(scores["objects"]) > 0.5, scores
    assert max(scores["text_only"]) == 0.0


@pytest.mark.slow
def test_text_only_model_cannot_read_an_image(explain_models, synthetic_test_records, explain_feature_cache):
    """The premise of reliance = 0 for a text_only model, checked on what the model computes: given the visual
    inputs of an image-reading model's encoding (this post's picture, another post's, none), its probabilities do
    not move, while the objects model's do."""
    text_model, text_tok = explain_models["text_only"]
    image_model, image_tok = explain_models["objects"]
    moved = {"objects": [], "text_only": []}
    for i in range(0, 40, 5):
        record, other = synthetic_test_records[i], synthetic_test_records[100 + i]
        with_image = explain.encode_post(image_model, image_tok, record, explain_feature_cache, 24)
        swapped = explain.encode_post(image_model, image_tok, other, explain_feature_cache, 24)
        text_inputs = explain.encode_post(text_model, text_tok, record, explain_feature_cache, 24)
        assert "visual_features" not in text_inputs.batch and not text_inputs.has_image
        visual = {k: with_image.batch[k] for k in ("visual_features", "image_mask")}
        other_visual = {k: swapped.batch[k] for k in ("visual_features", "image_mask")}
        no_image = {**visual, "image_mask": torch.zeros_like(visual["image_mask"])}
        for name, (model, batch) in {
            "objects": (image_model, with_image.batch),
            "text_only": (text_model, text_inputs.batch),
        }.items():
            rows = [probabilities(model, {**batch, **v})[0] for v in (visual, other_visual, no_image)]
            moved[name].append(max(float((r - rows[0]).abs().max()) for r in rows[1:]))
    assert max(moved["text_only"]) == 0.0, moved
    # the same probe does see an image-reading model use the image
    assert np.mean(moved["objects"]) > 0.1, moved


@pytest.mark.slow
def test_post_without_image(explain_models, synthetic_test_records, explain_feature_cache):
    model, tok = explain_models["objects"]
    record = replace(synthetic_test_records[0], image_path=None, crop_paths=[])
    bundle = explain.explain_post(
        model, tok, record, synthetic_test_records[:20], feature_cache=explain_feature_cache, max_length=24
    )
    assert not bundle.inputs.has_image and bundle.visual_attribution is None
    assert bundle.faithfulness["visual"] is None
    assert bundle.reliance.score == 0.0 and bundle.reliance.reason == "no image"
    assert bundle.attention.text_to_visual.shape[0] == 0 and np.all(
        bundle.attention.rollout_text_to_visual == 0
    )


@pytest.mark.slow
def test_bundle_is_deterministic_for_a_seed(explain_models, synthetic_test_records, explain_feature_cache):
    model, tok = explain_models["objects"]

    def run(seed):
        bundle = explain.explain_post(
            model,
            tok,
            synthetic_test_records[5],
            synthetic_test_records[200:260],
            k=5,
            n_steps=16,
            seed=seed,
            feature_cache=explain_feature_cache,
            max_length=24,
        )
        summary = bundle.summary()
        summary.pop("timings")
        return bundle, summary

    first, first_summary = run(0)
    second, second_summary = run(0)
    assert first_summary == second_summary
    assert np.array_equal(first.token_attribution.scores, second.token_attribution.scores)
    assert np.array_equal(first.attention.rollout_text_to_visual, second.attention.rollout_text_to_visual)
    assert first.reliance.swapped_lines == second.reliance.swapped_lines
    other, _ = run(1)
    assert other.reliance.swapped_lines != first.reliance.swapped_lines
    assert set(first.timings) >= {"predict", "attention", "token_attribution", "reliance", "total"}
    assert (
        first_summary["model_version"] == model.config.version_id
        and first_summary["token_attribution"]["settings"]["n_steps"] == 16
    )


# ----------------------------------------------------------------------------------------------------------------
# Both architectures through the explanation interface (random tiny models: fast, no training)


@pytest.fixture(scope="module")
def tiny_models(tiny_text_encoder):
    """{"ifaformer": (model, tokenizer), "mega": (model, tokenizer)}: random tiny models (hidden 32, 2 layers)."""
    from model.encoders import build_model
    from model.mega import build_mega
    from model.synthetic import MNRE_LABELS
    from model.train import TrainConfig

    from .conftest import TINY_VISION

    torch.manual_seed(0)
    ifa = build_model("objects", MNRE_LABELS, tiny_text_encoder, vision_config=TINY_VISION, pretrained=False)
    mega = build_mega(MNRE_LABELS, TrainConfig(text_encoder=tiny_text_encoder, pretrained=False))
    return {"ifaformer": (ifa[0].eval(), ifa[1]), "mega": (mega[0].eval(), mega[1])}


@pytest.mark.parametrize("architecture", ["ifaformer", "mega"])
def test_explain_post_runs_on_each_architecture(
    tiny_models, synthetic_test_records, explain_feature_cache, architecture
):
    from model.explainable import Explainable

    model, tok = tiny_models[architecture]
    assert isinstance(model, Explainable)
    record = synthetic_test_records[2]
    bundle = explain.explain_post(
        model,
        tok,
        record,
        synthetic_test_records[40:60],
        k=3,
        n_steps=8,
        feature_cache=explain_feature_cache,
        max_length=24,
    )
    inputs, maps = bundle.inputs, bundle.attention
    t = len(inputs.tokens)
    assert inputs.has_image and len(inputs.visual_labels) == N_REGIONS + 3
    # attention over the model's own visual keys (IFAformer: grid cells and crops; MEGA: regions and crops)
    v = len(maps.visual_labels)
    assert maps.text_to_visual.shape[2:] == (t, v) and len(maps.layers) == maps.text_to_visual.shape[0] >= 1
    assert np.all(maps.text_to_visual >= 0) and np.all(maps.text_to_visual.sum(-1) <= 1 + 1e-5)
    assert np.any(maps.text_to_visual > 0)
    assert maps.grid.shape == (len(maps.layers), t, 7, 7) and maps.crop_scores.shape == (
        len(maps.layers),
        t,
        3,
    )
    # the grid view redistributes the attention on the global image, it neither adds nor loses any
    on_image = maps.mean_text_to_visual[:, :, [s == 0 for s in maps.visual_slots]].sum(-1)
    assert np.allclose(maps.grid.sum(axis=(-1, -2)), on_image, atol=1e-6)
    assert np.allclose(maps.crop_scores[:, :, 1:], 0, atol=1e-6)  # the synthetic posts have one crop
    flow = maps.rollout_text_to_visual
    assert flow.shape == (t, v) and np.allclose(flow.sum(1)[maps.rollout_visual_share > 0], 1.0)
    # token IG: complete for this model up to a delta that is small next to what it explains
    tok_attr = bundle.token_attribution
    assert tok_attr.scores.shape == (t,) and np.all(tok_attr.scores[inputs.special_mask] == 0)
    assert tok_attr.p_input == pytest.approx(bundle.prediction.probabilities[tok_attr.target_label], abs=1e-6)
    vis = bundle.visual_attribution
    assert vis.region_scores.shape == (7, 7) and vis.crop_present == [True, False, False]
    assert np.any(vis.unit_scores != 0)  # removing visual units moves this model's probability
    assert len(bundle.reliance.p_swapped) == 3 and bundle.reliance.reason == ""
    assert bundle.summary()["model_version"] == "unsaved"


def test_mega_attention_is_its_alignment(tiny_models, synthetic_test_records, explain_feature_cache):
    """MEGA's token-object map is the combined alignment its forward pass uses, object by object."""
    model, tok = tiny_models["mega"]
    inputs = explain.encode_post(model, tok, synthetic_test_records[2], explain_feature_cache, max_length=24)
    maps = explain.token_object_attention(model, inputs)
    with torch.no_grad():
        alignment = model(**inputs.batch).alignment[0].double().numpy()  # (T, O)
    assert maps.visual_labels[: model.config.num_regions][0].startswith("region")
    assert np.allclose(maps.text_to_visual[0, 0], alignment)


@pytest.mark.parametrize("architecture", ["ifaformer", "mega"])
def test_predict_post_reports_the_uncertainty_the_label_store_stores(
    sharp_models, synthetic_test_records, explain_feature_cache, architecture
):
    """Inspect's margin and entropy for a post are the ones the queue sorts by: both come from one function
    (model.uncertainty), and they match the definitions recomputed here from the model's probabilities."""
    import db.provenance
    import explain.inputs
    from model.uncertainty import uncertainty

    assert explain.inputs.uncertainty is uncertainty and db.provenance.uncertainty is uncertainty
    model, tok = sharp_models[architecture]
    inputs = explain.encode_post(model, tok, synthetic_test_records[3], explain_feature_cache, max_length=24)
    prediction = explain.predict_post(model, inputs)
    label_probabilities = probabilities(model, inputs.batch)[0].double()
    top_two = torch.topk(label_probabilities, k=2)
    assert prediction.label == model.config.label_names[int(top_two.indices[0])]
    assert prediction.margin == pytest.approx(float(top_two.values[0] - top_two.values[1]), abs=1e-6)
    expected_entropy = float(-(label_probabilities * label_probabilities.log()).sum())
    assert prediction.entropy == pytest.approx(expected_entropy, abs=1e-6)
    # what db.provenance.save_predictions stores for the same distribution
    stored_label, _, stored_margin, stored_entropy = db.provenance.uncertainty(prediction.probabilities)
    assert (stored_label, stored_margin, stored_entropy) == (
        prediction.label,
        prediction.margin,
        prediction.entropy,
    )


def test_uncertainty_known_answers():
    from model.uncertainty import uncertainty

    label, confidence, margin, entropy = uncertainty({"a": 0.2, "b": 0.7, "c": 0.1, "d": 0.0})
    assert (label, confidence) == ("b", 0.7) and margin == pytest.approx(0.5)
    assert entropy == pytest.approx(-(0.2 * math.log(0.2) + 0.7 * math.log(0.7) + 0.1 * math.log(0.1)))
    # one label: nothing to be unsure between; a tie has no margin and log(2) nats
    assert uncertainty({"a": 1.0}) == ("a", 1.0, 1.0, 0.0)
    assert uncertainty({"x": 0.5, "y": 0.5})[2:] == (0.0, pytest.approx(math.log(2)))
    with pytest.raises(ValueError, match="empty"):
        uncertainty({})


@pytest.fixture(scope="module")
def sharp_models(tiny_models):
    """The tiny models with their classifier weights scaled up 16x: a random tiny model's probabilities hardly depend
    on the text, and a completeness check needs p(post) - p(baseline) large enough to bound the error against."""
    import copy

    sharp = {}
    for name, (model, tok) in tiny_models.items():
        model = copy.deepcopy(model)
        with torch.no_grad():
            model.classifier.weight.mul_(16.0)
        sharp[name] = (model, tok)
    return sharp


@pytest.mark.parametrize("architecture", ["ifaformer", "mega"])
@pytest.mark.parametrize("baseline", ["pad", "mask"])
def test_token_ig_is_complete(
    sharp_models, synthetic_test_records, explain_feature_cache, architecture, baseline
):
    """Completeness of LayerIG: the scores add up to p(post) - p(baseline), both recomputed here independently of
    the attribution code, within 5 % of that difference. Captum defines its delta as exactly this error, so the
    delta itself is bounded too (a bound of |delta| + eps would hold for any scores)."""
    model, tok = sharp_models[architecture]
    baseline_id = tok.pad_token_id if baseline == "pad" else tok.mask_token_id
    best = None  # (change, inputs, target, p_baseline): the post and label the text moves most, of ten posts
    for record in synthetic_test_records[:10]:
        inputs = explain.encode_post(model, tok, record, explain_feature_cache, max_length=24)
        base_ids = inputs.batch["input_ids"].clone()
        base_ids[0, ~torch.from_numpy(inputs.special_mask)] = baseline_id
        p_x = probabilities(model, inputs.batch)[0].double()
        p_b = probabilities(model, {**inputs.batch, "input_ids": base_ids})[0].double()
        target = int((p_x - p_b).abs().argmax())
        change = float(p_x[target] - p_b[target])
        if best is None or abs(change) > abs(best[0]):
            best = (change, inputs, target, float(p_b[target]))
    change, inputs, target, p_base = best
    assert abs(change) > 0.002, change  # there is something to explain (float32 noise is ~1e-7)
    attr = explain.attribute_tokens(model, inputs, target=target, baseline=baseline, n_steps=32)
    assert abs(attr.scores.sum() - change) <= 0.05 * abs(change), (attr.scores.sum(), change)
    assert abs(attr.delta) <= 0.05 * abs(change) and attr.p_baseline == pytest.approx(p_base, abs=1e-5)
