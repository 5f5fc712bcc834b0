"""Broken checkpoint folders: each gets one clear error naming the folder, the file and the field, before any large
allocation, for both architectures; the model CLIs turn it into one `error:` line with exit code 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import torch

from model.checkpoint import load_model

REPO = Path(__file__).resolve().parents[2]
TINY_VISION = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}


@pytest.fixture(scope="module")
def saved(tiny_text_encoder, tmp_path_factory) -> dict[str, Path]:
    """{"ifaformer": folder, "mega": folder}: tiny random models saved with their tokenizers."""
    from model.encoders import build_model
    from model.mega import build_mega
    from model.synthetic import MNRE_LABELS
    from model.train import TrainConfig

    torch.manual_seed(0)
    folders = {}
    ifa, tok = build_model("objects", MNRE_LABELS, tiny_text_encoder, vision_config=TINY_VISION)
    folders["ifaformer"] = tmp_path_factory.mktemp("ifa")
    ifa.save_pretrained(folders["ifaformer"], tok)
    mega, tok = build_mega(MNRE_LABELS, TrainConfig(text_encoder=tiny_text_encoder, pretrained=False))
    folders["mega"] = tmp_path_factory.mktemp("mega")
    mega.save_pretrained(folders["mega"], tok)
    return folders


@pytest.fixture(params=["ifaformer", "mega"])
def folder(request, saved, tmp_path) -> Path:
    """A fresh copy of one saved checkpoint, to break."""
    copy = tmp_path / request.param
    shutil.copytree(saved[request.param], copy)
    return copy


def _config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def _write_config(folder: Path, config: dict) -> None:
    (folder / "config.json").write_text(json.dumps(config))


def _refused(folder: Path, *expected: str) -> str:
    with pytest.raises(ValueError) as err:
        load_model(folder)
    message = str(err.value)
    assert str(folder) in message, message
    for part in expected:
        assert part in message, message
    return message


def test_intact_checkpoints_still_load(folder):
    model = load_model(folder)
    assert model.config.version_id == _config(folder)["version_id"]


def test_truncated_weights(folder):
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    _refused(folder, "model.safetensors", "truncated")


def test_weights_that_are_not_safetensors(folder):
    (folder / "model.safetensors").write_bytes(b"\x00" * 7)
    _refused(folder, "model.safetensors")
    (folder / "model.safetensors").write_bytes((10**12).to_bytes(8, "little") + b"{}")
    _refused(folder, "model.safetensors", "header")


def test_wrong_shapes_name_the_tensor(folder):
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    name = "classifier.weight"
    state[name] = torch.zeros(state[name].shape[0] + 1, state[name].shape[1])
    save_file(state, str(folder / "model.safetensors"))
    _refused(folder, name, "shape")


def test_missing_and_unexpected_tensors_are_named(folder):
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    state.pop("classifier.bias")
    state["extra.weight"] = torch.zeros(2)
    save_file(state, str(folder / "model.safetensors"))
    _refused(folder, "classifier.bias", "extra.weight")


def test_unknown_config_key_is_named(folder):
    _write_config(folder, {**_config(folder), "hiden_size": 32})
    _refused(folder, "config.json", "hiden_size")


@pytest.mark.parametrize(
    "field,value",
    [("max_crops", "three"), ("label_names", "None"), ("classifier_dropout", [0.1]), ("text_config", 5)],
)
def test_wrongly_typed_config_values_are_named(folder, field, value):
    _write_config(folder, {**_config(folder), field: value})
    _refused(folder, "config.json", field)


def test_huge_sizes_are_refused_before_allocating(folder):
    config = _config(folder)
    config["text_config"] = {
        **config["text_config"],
        "hidden_size": 4_000_000,
        "intermediate_size": 4_000_000,
    }
    _write_config(folder, config)
    tracemalloc.start()
    try:
        message = _refused(folder, "text_config.hidden_size")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000, (peak, message)  # a 4M-wide layer is tens of GB; nothing near that was touched


def test_sizes_within_limits_but_not_matching_the_weights_are_refused_before_allocating(folder):
    config = _config(folder)
    config["text_config"] = {**config["text_config"], "hidden_size": 4096, "intermediate_size": 16384}
    _write_config(folder, config)
    tracemalloc.start()
    try:
        message = _refused(folder, "model.safetensors", "config.json")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000, (peak, message)  # the model this config describes has ~1 GB of weights


def test_missing_files_are_named(folder):
    (folder / "model.safetensors").unlink()
    _refused(folder, "model.safetensors", "missing")
    (folder / "config.json").unlink()
    _refused(folder, "config.json", "missing")
    _refused(folder / "nowhere", "not a folder")


def test_config_that_is_not_json_or_not_utf8(folder):
    (folder / "config.json").write_text('{"variant": "objects",')
    _refused(folder, "config.json", "JSON")
    (folder / "config.json").write_bytes(b'{"variant": "\xe9"}')
    _refused(folder, "config.json", "UTF-8")
    (folder / "config.json").write_text("[1, 2]")
    _refused(folder, "config.json", "object")


def test_unknown_architecture_is_named(folder):
    _write_config(folder, {**_config(folder), "architecture": "resnet"})
    _refused(folder, "architecture", "resnet")


def test_tokenizer_missing_or_larger_than_the_embeddings(folder):
    from transformers import AutoTokenizer

    from model.checkpoint import load_checkpoint

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    tokenizer.add_tokens([f"extra{i}" for i in range(50)])  # ids past the model's embedding table
    tokenizer.save_pretrained(str(folder))
    with pytest.raises(ValueError, match="embeddings") as err:
        load_checkpoint(folder)
    assert str(folder) in str(err.value) and "tokenizer" in str(err.value)
    for name in ("tokenizer.json", "vocab.txt"):
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(ValueError, match="tokenizer") as err:
        load_checkpoint(folder)
    assert str(folder) in str(err.value)


def test_one_function_reads_config_json_and_one_gives_label_order(saved):
    from model.checkpoint import read_checkpoint_config
    from model.mnre_format import labels_by_id

    config = read_checkpoint_config(saved["mega"])
    assert config["architecture"] == "mega" and config["version_id"].startswith("mega-")
    assert labels_by_id({"b": 1, "None": 0, "a": 2}) == ["None", "b", "a"]


def test_evaluate_cli_reports_a_broken_checkpoint_in_one_line(saved, tmp_path, synthetic_root):
    copy = tmp_path / "broken"
    shutil.copytree(saved["ifaformer"], copy)
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    cmd = [sys.executable, "-m", "model.evaluate", "--model", str(copy), "--data", str(synthetic_root)]
    done = subprocess.run(
        [*cmd, "--feature-cache", str(tmp_path / "f")], capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(copy) in last and "model.safetensors" in last
