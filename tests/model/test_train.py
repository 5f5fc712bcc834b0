"""Training, evaluation and the visual-shuffle evidence on the synthetic image-decided dataset."""

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest

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
    assert abs(shuffled["accuracy"] - text_only["accuracy"]) <= 0.05
    chance = 1 / len(IMAGE_DECIDED)
    assert text_only["accuracy"] <= chance + 0.1
    for name in IMAGE_DECIDED:  # per image-decided label, the text-only model is near chance
        assert (
            text_only["per_label"][name]["recall"] <= 0.75 or text_only["per_label"][name]["predicted"] > 100
        )


@pytest.mark.slow
def test_best_checkpoint_history_and_version(trained):
    result = trained["objects"]
    assert len(result.history) == 8
    assert result.best_metrics["f1"] == max(h["f1"] for h in result.history)
    saved = json.loads((result.best_dir / "config.json").read_text())
    assert saved["version_id"] == result.version_id and saved["variant"] == "objects"


@pytest.mark.slow
def test_resume_continues_where_it_stopped(synthetic_root, tiny_text_encoder, feature_cache_dir, tmp_path):
    cfg = tiny_config(
        synthetic_root,
        tiny_text_encoder,
        feature_cache_dir,
        tmp_path,
        variant="text_only",
        epochs=2,
        limit_train=64,
        limit_val=32,
    )
    first = train(replace(cfg, epochs=1))
    assert [h["epoch"] for h in first.history] == [1]
    # a resumed run with the same schedule continues from epoch 2 and keeps epoch 1's history
    resumed = train(replace(cfg, resume=True))
    assert [h["epoch"] for h in resumed.history] == [1, 2]


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


@pytest.mark.slow
def test_two_process_distributed_training(synthetic_root, tiny_text_encoder, feature_cache_dir, tmp_path):
    """torchrun with 2 CPU processes (gloo): both ranks step in lockstep and rank 0 saves the checkpoint."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29531",
        "-m",
        "model.train",
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
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history) == 1 and (tmp_path / "best" / "model.safetensors").is_file()
