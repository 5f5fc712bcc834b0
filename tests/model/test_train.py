"""Training, evaluation and the visual-shuffle evidence on the synthetic image-decided dataset."""

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from model.data import DataFormatError, load_split
from model.evaluate import compute_metrics, evaluate_checkpoint
from model.synthetic import IMAGE_DECIDED
from model.train import TrainConfig, parse_config, train

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_config(synthetic_root, text_encoder, cache, out, **kw) -> TrainConfig:
    base = TrainConfig(
        data=str(synthetic_root),
        output_dir=str(out),
        text_encoder=text_encoder,
        epochs=8,
        batch_size=32,
        lr=2e-3,
        max_length=24,
        seed=0,
        feature_cache=str(cache),
        progress=False,
        vision_config={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 64,
        },
    )
    return replace(base, **kw)


def test_metrics_follow_the_mnre_convention():
    labels = ["None", "a", "b"]
    gold = [0, 1, 1, 2, 0]
    pred = [0, 1, 2, 0, 1]
    m = compute_metrics(gold, pred, labels)
    assert m["accuracy"] == pytest.approx(2 / 5)
    # correct non-None: 1; guessed non-None: 3; gold non-None: 3
    assert m["precision"] == pytest.approx(1 / 3) and m["recall"] == pytest.approx(1 / 3)
    assert m["confusion"][1] == [0, 1, 1] and m["per_label"]["a"]["support"] == 2


@pytest.fixture(scope="module")
def trained(synthetic_root, tiny_text_encoder, feature_cache_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    results = {}
    for variant in ("objects", "text_only"):
        cfg = tiny_config(
            synthetic_root, tiny_text_encoder, feature_cache_dir, out / variant, variant=variant
        )
        results[variant] = train(cfg)
    return results


@pytest.mark.slow
def test_the_image_decides_and_only_objects_uses_it(trained, synthetic_root, feature_cache_dir):
    test_records, _, report = load_split(synthetic_root, "test")
    assert report.with_image == len(test_records)
    objects = evaluate_checkpoint(
        trained["objects"].best_dir, test_records, feature_cache=feature_cache_dir, max_length=24
    )
    shuffled = evaluate_checkpoint(
        trained["objects"].best_dir,
        test_records,
        shuffle_images_seed=0,
        feature_cache=feature_cache_dir,
        max_length=24,
    )
    text_only = evaluate_checkpoint(
        trained["text_only"].best_dir, test_records, feature_cache=feature_cache_dir, max_length=24
    )
    assert objects["accuracy"] >= 0.95
    # with every post given a different picture, a model that reads the image falls to chance or below (a picture of
    # the post's own relation comes back only as often as the derangement picks one)
    assert shuffled["accuracy"] <= text_only["accuracy"] + 0.05
    chance = 1 / len(IMAGE_DECIDED)
    assert text_only["accuracy"] <= chance + 0.1
    # per image-decided label, the text-only model is near chance: even a model that calls every post by one label
    # reaches F1 2 / (k + 1) on it, while one that read the image would score near 1 (as `objects` does)
    chance_f1 = 2 / (len(IMAGE_DECIDED) + 1)
    for name in IMAGE_DECIDED:
        assert text_only["per_label"][name]["f1"] <= chance_f1 + 0.1, name
        assert objects["per_label"][name]["f1"] >= 0.9, name


@pytest.mark.slow
def test_best_checkpoint_history_and_version(trained):
    result = trained["objects"]
    assert len(result.history) == 8
    assert result.best_metrics["f1"] == max(h["f1"] for h in result.history)
    saved = json.loads((result.best_dir / "config.json").read_text())
    assert saved["version_id"] == result.version_id and saved["variant"] == "objects"
    # the preprocessing it was trained with travels with it, the None offset of the best epoch included
    best_epoch = max(result.history, key=lambda h: h["f1"])
    assert saved["preprocessing"] == {
        "max_length": 24,
        "marker_style": "tokens",
        "grounding_dir": None,
        "none_bias": best_epoch["none_bias"],
    }
    assert result.best_metrics["none_bias"] == best_epoch["none_bias"]
    assert result.best_metrics["without_bias"]["f1"] == best_epoch["f1_without_bias"]


@pytest.mark.slow
@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_resume_uses_the_saved_weights_and_optimizer_state(
    synthetic_root, tiny_text_encoder, feature_cache_dir, tmp_path, monkeypatch, ema_decay
):
    """Two epochs in one go and one epoch + a resumed second end with the same weights, bit for bit: a resume that
    started from fresh weights, a fresh optimizer (AdamW moments, step count), a fresh schedule, fresh RNG or (with
    ema_decay) a fresh weight average would not. Resuming reads safetensors and JSON only."""
    from safetensors.torch import load_file

    def cfg(out, **kw):
        return tiny_config(
            synthetic_root,
            tiny_text_encoder,
            feature_cache_dir,
            out,
            variant="text_only",
            epochs=2,
            limit_train=64,
            limit_val=32,
            ema_decay=ema_decay,
            **kw,
        )

    straight = train(cfg(tmp_path / "straight"))
    # the interrupted run stops right after saving epoch 1 (what a crash during epoch 2 would leave)
    interrupted = cfg(tmp_path / "interrupted")
    import model.train as train_module

    class StopAfterFirstEpoch(Exception):
        pass

    real_save = train_module.save_trainer_state

    def save_then_stop(folder, state):
        real_save(folder, state)
        raise StopAfterFirstEpoch

    monkeypatch.setattr(train_module, "save_trainer_state", save_then_stop)
    with pytest.raises(StopAfterFirstEpoch):
        train(interrupted)
    monkeypatch.setattr(train_module, "save_trainer_state", real_save)
    last = tmp_path / "interrupted" / "last"
    assert not [p.name for p in last.iterdir() if p.suffix in {".pt", ".pth", ".bin", ".pkl", ".pickle"}]

    def no_unpickling(*args, **kwargs):
        raise AssertionError("resuming called torch.load")

    monkeypatch.setattr("torch.load", no_unpickling)
    resumed = train(replace(interrupted, resume=True))
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    expected = load_file(str(tmp_path / "straight" / "last" / "model.safetensors"))
    got = load_file(str(last / "model.safetensors"))
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name
    assert resumed.history[1]["f1"] == straight.history[1]["f1"]
    if ema_decay is not None:
        from model.checkpoint import load_trainer_state

        # a resume that restarted the average (fresh steps count or fresh averages) ends with another average
        straight_average = load_trainer_state(tmp_path / "straight" / "last")["weight_average"]
        resumed_average = load_trainer_state(last)["weight_average"]
        assert resumed_average["steps"] == straight_average["steps"]
        for expected_average, got_average in zip(
            straight_average["averages"], resumed_average["averages"], strict=True
        ):
            assert torch.equal(got_average, expected_average)


@pytest.mark.slow
def test_weight_average_is_evaluated_and_saved_as_best_while_training_continues_from_the_raw_weights(
    synthetic_root, tiny_text_encoder, feature_cache_dir, tmp_path
):
    """With ema_decay the "best" checkpoint holds the averaged weights and "last" the training weights: a run that
    ignored the average (best == last after one epoch) or trained on from the averaged weights would fail."""
    from safetensors.torch import load_file

    result = train(
        tiny_config(
            synthetic_root,
            tiny_text_encoder,
            feature_cache_dir,
            tmp_path / "ema",
            variant="text_only",
            epochs=1,
            limit_train=64,
            limit_val=32,
            ema_decay=0.5,
        )
    )
    best = load_file(str(result.best_dir / "model.safetensors"))
    last = load_file(str(tmp_path / "ema" / "last" / "model.safetensors"))
    assert any(not torch.equal(best[name], last[name]) for name in best)


def test_weight_average_follows_the_warmed_up_decay_and_restores_the_training_weights():
    """The average after two updates is the hand-computed lerp with the warmed-up decay, and applied() swaps the
    averaged weights in and the training weights back exactly."""
    from model.train import WeightAverage

    layer = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.0)
    average = WeightAverage(layer, decay=0.9)
    expected = torch.zeros(1, 2)
    for step, value in enumerate([1.0, 3.0], start=1):
        with torch.no_grad():
            layer.weight.fill_(value)
        average.update()
        decay = min(0.9, (1 + step) / (10 + step))
        expected = decay * expected + (1 - decay) * value
    assert torch.allclose(average.averages[0], expected)
    with average.applied():
        assert torch.allclose(layer.weight, expected)
    assert torch.equal(layer.weight, torch.full((1, 2), 3.0))
    with pytest.raises(ValueError, match="ema_decay"):
        WeightAverage(layer, decay=1.0)


def test_label_smoothing_changes_the_training_loss(
    synthetic_root, tiny_text_encoder, feature_cache_dir, tmp_path
):
    """Same seed and data, smoothing 0 against 0.3: a setting that never reached the loss gives equal losses."""
    losses = []
    for smoothing in (0.0, 0.3):
        result = train(
            tiny_config(
                synthetic_root,
                tiny_text_encoder,
                feature_cache_dir,
                tmp_path / f"ls{smoothing}",
                variant="text_only",
                epochs=1,
                limit_train=64,
                limit_val=16,
                label_smoothing=smoothing,
            )
        )
        losses.append(result.history[0]["train_loss"])
    assert losses[0] != pytest.approx(losses[1], abs=1e-4)


def test_frozen_word_embeddings_train_only_the_given_rows_and_get_no_weight_decay():
    """AdamW with weight decay: the other rows stay bit-identical (a missing gradient mask, or decay left on the
    matrix, would move them) while the marker row moves."""
    from model.train import param_groups, train_only_rows

    torch.manual_seed(0)
    embedding = torch.nn.Embedding(5, 2)
    before = embedding.weight.detach().clone()
    train_only_rows(embedding, [3])
    optimizer = torch.optim.AdamW(param_groups(embedding, 0.5, no_decay_params=(embedding.weight,)), lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        embedding(torch.arange(5)).pow(2).sum().backward()
        optimizer.step()
    after = embedding.weight.detach()
    assert torch.equal(after[[0, 1, 2, 4]], before[[0, 1, 2, 4]])
    assert not torch.equal(after[3], before[3])
    with pytest.raises(ValueError, match="no entity-marker rows"):
        train_only_rows(embedding, [])


@pytest.mark.parametrize("freeze", [True, False])
def test_freeze_word_embeddings_keeps_the_pretrained_rows(
    synthetic_root, tiny_text_encoder, feature_cache_dir, tmp_path, freeze
):
    """After an epoch the checkpoint's vocabulary rows equal the encoder folder's exactly when frozen, and differ when
    not (the same comparison failing on a normal run shows that it can fail)."""
    from transformers import AutoModel

    from model.checkpoint import load_checkpoint

    train(
        tiny_config(
            synthetic_root,
            tiny_text_encoder,
            feature_cache_dir,
            tmp_path / "frozen",
            variant="text_only",
            epochs=1,
            limit_train=64,
            limit_val=16,
            freeze_word_embeddings=freeze,
        )
    )
    model, _ = load_checkpoint(str(tmp_path / "frozen" / "last"))
    trained = model.word_embeddings().weight.detach()
    pretrained = AutoModel.from_pretrained(tiny_text_encoder).embeddings.word_embeddings.weight.detach()
    rows = pretrained.size(0)
    assert torch.equal(trained[:rows], pretrained) is freeze
    assert set(model.config.marker_token_ids) <= set(range(rows, trained.size(0)))


@pytest.mark.parametrize("precision, compute_dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_bf16_precision_runs_the_training_forward_in_bfloat16_and_keeps_float32_weights(
    synthetic_root, tiny_text_encoder, feature_cache_dir, tmp_path, monkeypatch, precision, compute_dtype
):
    """The linear layers' outputs during training are bfloat16 only under "bf16" (a setting that never reached the
    forward pass leaves them float32), while the saved weights stay float32 (casting the model itself would not)."""
    import model.train as train_module
    from model.checkpoint import load_checkpoint

    seen: set[torch.dtype] = set()
    build = train_module.build_fresh_model

    def build_and_watch(cfg, label_names):
        model, tokenizer = build(cfg, label_names)
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype) if _m.training else None)
        return model, tokenizer

    monkeypatch.setattr(train_module, "build_fresh_model", build_and_watch)
    result = train(
        tiny_config(
            synthetic_root,
            tiny_text_encoder,
            feature_cache_dir,
            tmp_path / precision,
            variant="text_only",
            epochs=1,
            limit_train=64,
            limit_val=16,
            precision=precision,
        )
    )
    assert seen == {compute_dtype}
    assert result.history[0]["train_loss"] == result.history[0]["train_loss"]  # not NaN
    model, _ = load_checkpoint(str(tmp_path / precision / "last"))
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_unknown_precision_is_refused_by_name(tmp_path):
    assert parse_config(["--precision", "bf16"]).precision == "bf16"
    with pytest.raises(ValueError, match="precision: 'fp16' is not one of fp32, bf16"):
        train(TrainConfig(precision="fp16", output_dir=str(tmp_path)))


def test_label_smoothing_from_a_flag(tmp_path):
    assert parse_config(["--label-smoothing", "0.1"]).label_smoothing == 0.1


def test_yaml_config_with_flag_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("variant: vanilla\nepochs: 3\nlr: 1.0e-4\n")
    cfg = parse_config(["--config", str(path), "--epochs", "5", "--no-progress"])
    assert (cfg.variant, cfg.epochs, cfg.lr, cfg.progress) == ("vanilla", 5, 1e-4, False)
    path.write_text("epochz: 3\n")
    with pytest.raises(DataFormatError, match="epochz"):
        parse_config(["--config", str(path)])


def test_cli_reports_bad_data_with_exit_code_2(tmp_path):
    from model.train import main

    assert main(["--data", str(tmp_path), "--no-progress"]) == 2


@pytest.mark.slow
def test_evaluate_cli_writes_json(trained, synthetic_root, feature_cache_dir, tmp_path):
    out = tmp_path / "m.json"
    cmd = [
        sys.executable,
        "-m",
        "model.evaluate",
        "--model",
        str(trained["objects"].best_dir),
        "--data",
        str(synthetic_root),
        "--split",
        "test",
        "--feature-cache",
        str(feature_cache_dir),
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(out.read_text())
    assert metrics["records"] == 600 and len(metrics["confusion"]) == 23 and "micro-F1" in proc.stdout
    # the checkpoint's own preprocessing: its None offset, its (absent) grounding folder
    saved = json.loads((trained["objects"].best_dir / "config.json").read_text())["preprocessing"]
    assert metrics["none_bias"] == saved["none_bias"] and metrics["grounding_dir"] is None
    assert "without it: micro-F1" in proc.stdout
    missing = subprocess.run(
        [*cmd[:-2], "--grounding-dir", str(tmp_path / "no-such-folder")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode == 2 and missing.stderr.strip().splitlines()[-1].startswith("error:")


@pytest.mark.slow
def test_two_process_distributed_training(synthetic_root, tiny_text_encoder, feature_cache_dir, tmp_path):
    """torchrun with 2 CPU processes (gloo): the ranks train on disjoint halves of the data, their gradients are
    averaged (both end with the same weights, which differ from the start), and rank 0 saves the checkpoint."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29531",
        os.path.join(REPO, "tests", "model", "ddp_probe.py"),
        "--data",
        str(synthetic_root),
        "--output-dir",
        str(tmp_path),
        "--variant",
        "objects",
        "--text-encoder",
        tiny_text_encoder,
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--limit-train",
        "64",
        "--limit-val",
        "32",
        "--lr",
        "1e-3",
        "--device",
        "cpu",
        "--no-progress",
        "--feature-cache",
        str(feature_cache_dir),
        "--vision-config",
        '{"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}',
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history) == 1 and (tmp_path / "best" / "model.safetensors").is_file()
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    seen = [{i for batch in r["batches"] for i in batch} for r in ranks]
    # 64 examples, batches of 16: two steps per rank over disjoint examples, together all of them
    assert [len(r["batches"]) for r in ranks] == [2, 2]
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(64))
    # the same start (rank 0's weights broadcast) and, after different data, the same end: gradients were averaged
    assert ranks[0]["initial"] == ranks[1]["initial"]
    assert ranks[0]["final"] == ranks[1]["final"] != ranks[0]["initial"]
