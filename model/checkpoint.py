"""Checkpoint folders shared by every architecture: config.json + model.safetensors + tokenizer files, no pickle.

The version id is derived from the saved weights, so two folders with the same id hold the same model.

Reading: read_checkpoint_config is the one reader of config.json; load_checkpoint_model checks a folder before
building anything (config values, sizes, then the safetensors header against the shapes the config describes) and
raises one CheckpointError naming the folder, the file and the field. load_checkpoint(folder) -> (model, tokenizer)
is what everything else calls: the architecture config.json names (model.registry), its model and its tokenizer.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


def save_checkpoint(
    model: nn.Module, folder: str | Path, architecture: str, version_prefix: str, tokenizer=None
) -> str:
    """Write the folder, set model.config.version_id to f"{version_prefix}-{weights hash}" and return it."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    weights = folder / "model.safetensors"
    save_file(state, str(weights), metadata={"format": "pt"})
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
    model.config.version_id = f"{version_prefix}-{digest}"
    (folder / "config.json").write_text(
        json.dumps({"architecture": architecture, **asdict(model.config)}, indent=2)
    )
    if tokenizer is not None:
        tokenizer.save_pretrained(str(folder))
    return model.config.version_id


@dataclass(frozen=True)
class Preprocessing:
    """Every setting that turns a record into this model's input and its logits into a decision.

    Stored in config.json under "preprocessing" when the model is trained; evaluation, explanations and the app read
    it from there (never from their own defaults), so a model is always served the input it was trained on.
    """

    max_length: int = 80  # word pieces, [CLS] and [SEP] included
    marker_style: str = "tokens"  # model.data.MARKER_STYLES
    max_crops: int = 3  # grounding crops per record (the config's max_crops)
    grounding_dir: str | None = None  # crops from `python -m model.grounding`; None = the dataset's img_vg
    none_bias: float = 0.0  # added to the "None" logit before the decision (tuned on val); 0 = plain argmax


PREPROCESSING_KEYS = ("max_length", "marker_style", "grounding_dir", "none_bias")


def preprocessing(config) -> Preprocessing:
    """The preprocessing a model config records; defaults (the settings used before it was stored) for old ones."""
    stored = dict(getattr(config, "preprocessing", None) or {})
    unknown = sorted(set(stored) - set(PREPROCESSING_KEYS))
    if unknown:
        raise ValueError(
            f"config preprocessing: unknown setting {unknown[0]!r}; known: {', '.join(PREPROCESSING_KEYS)}"
        )
    values = Preprocessing(**stored, max_crops=getattr(config, "max_crops", Preprocessing.max_crops))
    from model.data import check_marker_style

    check_marker_style(values.marker_style)
    if not isinstance(values.max_length, int) or values.max_length < 8:
        raise ValueError(
            f"config preprocessing: max_length must be an integer >= 8, got {values.max_length!r}"
        )
    return values


def checkpoint_preprocessing(folder: str | Path) -> Preprocessing:
    """The preprocessing recorded in a checkpoint folder's config.json (without building the model)."""
    raw = read_checkpoint_config(folder)
    from types import SimpleNamespace

    return preprocessing(
        SimpleNamespace(preprocessing=raw.get("preprocessing"), max_crops=raw.get("max_crops", 3))
    )


def set_preprocessing(config, **settings) -> None:
    """Record preprocessing settings in a model config (kept with the checkpoint when it is saved)."""
    unknown = sorted(set(settings) - set(PREPROCESSING_KEYS))
    if unknown:
        raise ValueError(f"unknown preprocessing setting {unknown[0]!r}")
    config.preprocessing = {**(getattr(config, "preprocessing", None) or {}), **settings}
    preprocessing(config)  # validate


# ----------------------------------------------------------------------------------------------------------------
# Reading a checkpoint folder. Everything a folder claims is checked before the model is built: config.json (size,
# encoding, JSON, known keys, value types, size bounds), then the safetensors header against the tensor shapes the
# config describes (computed on the meta device, which allocates nothing). A broken folder gets one CheckpointError
# naming the folder, the file and the field; no traceback reaches a command line.

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
MAX_CONFIG_BYTES = 1 << 20  # a saved config.json is a few kB
MAX_SAFETENSORS_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own bound
SAFETENSORS_DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}
# Upper bounds on the sizes a config may ask for, checked before anything is built: generous for any BERT / CLIP
# sized model (bert-large: 1024 wide, 24 layers, 16 heads, 4096 intermediate), far below what exhausts memory.
SIZE_LIMITS = {
    "hidden_size": 8192,
    "intermediate_size": 32768,
    "num_hidden_layers": 96,
    "num_attention_heads": 128,
    "vocab_size": 500_000,
    "max_position_embeddings": 16384,
    "type_vocab_size": 1024,
    "image_size": 4096,
    "patch_size": 4096,
    "num_channels": 16,
    "projection_dim": 8192,
}
TOP_LEVEL_LIMITS = {"max_crops": 32, "fusion_layers": 96, "region_grid": 32}
MAX_LABELS = 10_000
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be loaded; the message names the folder, the file and the field at fault."""

    def __init__(self, folder: str | Path, file: str | None, field_name: str | None, problem: str):
        self.folder, self.file, self.field, self.problem = str(folder), file, field_name, problem
        where = str(Path(folder) / file) if file else str(folder)
        what = f" field '{field_name}'" if field_name else ""
        super().__init__(f"checkpoint {where}:{what} {problem}")


def read_checkpoint_config(folder: str | Path) -> dict:
    """The parsed config.json of a checkpoint folder, with "architecture" always set ("ifaformer" for folders saved
    before it was recorded). The one reader of a checkpoint's config.json in the running code: loaders, registry,
    training, evaluation, the app and the label store all go through it. The one other reader is Alembic migration
    db/migrations/versions/0004, which keeps a small copy on purpose (a migration must stay self-contained and run the
    same way however this module changes later); it applies the same "ifaformer" default."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(
            folder, None, None, "is not a folder (a model checkpoint is a folder with config.json)"
        )
    path = folder / CONFIG_FILE
    try:
        if not path.is_file():
            raise CheckpointError(folder, CONFIG_FILE, None, "is missing: not a model checkpoint folder")
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise CheckpointError(
                folder, CONFIG_FILE, None, f"{size} bytes is over the {MAX_CONFIG_BYTES} byte limit"
            )
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(folder, CONFIG_FILE, None, f"cannot be read ({err.strerror or err})") from err
    try:
        raw = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise CheckpointError(folder, CONFIG_FILE, None, f"is not UTF-8 text (byte {err.start + 1})") from err
    except json.JSONDecodeError as err:
        raise CheckpointError(
            folder, CONFIG_FILE, None, f"invalid JSON at line {err.lineno}: {err.msg}"
        ) from err
    except RecursionError as err:
        raise CheckpointError(folder, CONFIG_FILE, None, "invalid JSON: nested too deeply") from err
    if not isinstance(raw, dict):
        raise CheckpointError(folder, CONFIG_FILE, None, f"must be a JSON object, got {type(raw).__name__}")
    raw.setdefault("architecture", "ifaformer")
    for key in ("architecture", "version_id", "variant"):
        if key in raw and not isinstance(raw[key], str):
            raise CheckpointError(folder, CONFIG_FILE, key, f"must be a string, got {raw[key]!r}")
    return raw


def _expected_types(annotation: str) -> tuple[type, ...]:
    """Python types a JSON value may have for a dataclass field annotated `annotation` (a string: the config
    modules use `from __future__ import annotations`)."""
    names = {
        "int": (int,),
        "float": (float, int),
        "str": (str,),
        "bool": (bool,),
        "list": (list,),
        "dict": (dict,),
    }
    allowed: tuple[type, ...] = ()
    for part in str(annotation).replace(" ", "").split("|"):
        base = part.split("[", 1)[0]
        allowed += (type(None),) if base == "None" else names.get(base, (object,))
    return allowed


def _check_size(folder: Path, field_name: str, value, limit: int, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointError(folder, CONFIG_FILE, field_name, f"must be an integer, got {value!r}")
    if not minimum <= value <= limit:
        raise CheckpointError(
            folder, CONFIG_FILE, field_name, f"{value} is outside the allowed range {minimum}..{limit}"
        )


def checked_config_values(config_cls, folder: str | Path, architecture: str) -> dict:
    """The config.json values for `config_cls`, checked: the architecture, no unknown key, each value of its field's
    type, sizes within SIZE_LIMITS. Raises CheckpointError naming the field."""
    folder = Path(folder)
    raw = read_checkpoint_config(folder)
    found = raw.pop("architecture")
    if found != architecture:
        raise CheckpointError(
            folder, CONFIG_FILE, "architecture", f"a {found!r} checkpoint, not {architecture!r}"
        )
    known = {f.name: f for f in fields(config_cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise CheckpointError(
            folder,
            CONFIG_FILE,
            unknown[0],
            f"unknown setting for {architecture}; known: {', '.join(sorted(known))}",
        )
    for name, value in raw.items():
        allowed = _expected_types(known[name].type)
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise CheckpointError(
                folder,
                CONFIG_FILE,
                name,
                f"must be {known[name].type}, got {type(value).__name__} {value!r:.80}",
            )
    for name, limit in TOP_LEVEL_LIMITS.items():
        if raw.get(name) is not None:
            _check_size(folder, name, raw[name], limit, minimum=0 if name == "max_crops" else 1)
    labels = raw.get("label_names", [])
    if len(labels) > MAX_LABELS or not all(isinstance(label, str) for label in labels):
        raise CheckpointError(folder, CONFIG_FILE, "label_names", f"must be at most {MAX_LABELS} strings")
    for group in ("text_config", "vision_config"):
        for name, limit in SIZE_LIMITS.items():
            if name in raw.get(group, {}):
                _check_size(folder, f"{group}.{name}", raw[group][name], limit)
    return raw


def config_from_checkpoint(config_cls, folder: str | Path, architecture: str):
    """The model config saved in `folder`, checked (checked_config_values) and built; CheckpointError otherwise."""
    values = checked_config_values(config_cls, folder, architecture)
    try:
        return config_cls(**values)
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            folder, CONFIG_FILE, None, f"describes no valid {architecture} model: {err}"
        ) from err


def read_safetensors_header(folder: str | Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{tensor name: (dtype, shape)} from model.safetensors without reading the weights; the file must be complete
    (its header's offsets cover exactly the bytes after it)."""
    folder = Path(folder)
    path = folder / WEIGHTS_FILE
    try:
        if not path.is_file():
            raise CheckpointError(folder, WEIGHTS_FILE, None, "is missing")
        size = path.stat().st_size
        with path.open("rb") as fh:
            prefix = fh.read(8)
            if len(prefix) < 8:
                raise CheckpointError(folder, WEIGHTS_FILE, None, f"is not a safetensors file ({size} bytes)")
            header_len = int.from_bytes(prefix, "little")
            if header_len > min(MAX_SAFETENSORS_HEADER_BYTES, size - 8):
                raise CheckpointError(
                    folder,
                    WEIGHTS_FILE,
                    None,
                    f"header length {header_len} does not fit the {size} byte file",
                )
            header_bytes = fh.read(header_len)
    except OSError as err:
        raise CheckpointError(folder, WEIGHTS_FILE, None, f"cannot be read ({err.strerror or err})") from err
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise CheckpointError(folder, WEIGHTS_FILE, None, f"header is not valid JSON ({err})") from err
    if not isinstance(header, dict):
        raise CheckpointError(folder, WEIGHTS_FILE, None, "header is not a JSON object")
    header.pop("__metadata__", None)
    tensors, end = {}, 0
    for name, info in header.items():
        try:
            dtype, shape, (start, stop) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
            numel = math.prod(shape)
            valid = (
                dtype in SAFETENSORS_DTYPE_BYTES
                and all(isinstance(d, int) and d >= 0 for d in shape)
                and isinstance(start, int)
                and isinstance(stop, int)
                and 0 <= start <= stop
                and stop - start == numel * SAFETENSORS_DTYPE_BYTES[dtype]
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(
                folder, WEIGHTS_FILE, f"tensor {name}", f"malformed header entry ({err})"
            ) from err
        if not valid:
            raise CheckpointError(
                folder, WEIGHTS_FILE, f"tensor {name}", f"malformed header entry {info!r:.200}"
            )
        tensors[name] = (dtype, shape)
        end = max(end, stop)
    data_bytes = size - 8 - header_len
    if end != data_bytes:
        problem = "truncated" if end > data_bytes else "has trailing bytes"
        raise CheckpointError(
            folder,
            WEIGHTS_FILE,
            None,
            f"{problem}: the header describes {end} bytes of tensors, the file holds {data_bytes}",
        )
    return tensors


def expected_shapes(model_cls, config, folder: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of model_cls(config), built on the meta device: no memory is allocated for weights."""
    import torch

    try:
        with torch.device("meta"):
            skeleton = model_cls(copy.deepcopy(config))
    except (TypeError, ValueError, RuntimeError, AttributeError, KeyError) as err:
        raise CheckpointError(
            folder, CONFIG_FILE, None, f"cannot build the model it describes: {err}"
        ) from err
    return {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}


def check_weights_match(model_cls, config, folder: str | Path) -> None:
    """Every tensor the config's model needs is in model.safetensors with that shape, and nothing else is."""
    folder = Path(folder)
    stored = read_safetensors_header(folder)
    expected = expected_shapes(model_cls, config, folder)
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing tensors {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(
                f"unexpected tensors {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}"
            )
        raise CheckpointError(folder, WEIGHTS_FILE, None, f"does not match config.json: {'; '.join(parts)}")
    for name, shape in expected.items():
        if stored[name][1] != shape:
            raise CheckpointError(
                folder,
                WEIGHTS_FILE,
                f"tensor {name}",
                f"shape {list(stored[name][1])} in the file, config.json describes {list(shape)}",
            )


def load_checkpoint_model(
    model_cls, config_cls, folder: str | Path, architecture: str, map_location: str = "cpu"
):
    """Check the folder (config, then weights against the config's shapes), then build the model and load it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    config = config_from_checkpoint(config_cls, folder, architecture)
    check_weights_match(model_cls, config, folder)
    model = model_cls(config)
    try:
        state = load_file(str(folder / WEIGHTS_FILE), device=map_location)
        model.load_state_dict(state)
    except (SafetensorError, OSError, RuntimeError) as err:
        raise CheckpointError(folder, WEIGHTS_FILE, None, f"cannot be loaded: {err}") from err
    return model


def load_checkpoint_tokenizer(folder: str | Path, config=None):
    """The tokenizer saved beside the weights (local files only); with the model config, it must not have more
    tokens than the model has embeddings."""
    folder = Path(folder)
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise CheckpointError(
            folder, None, "tokenizer", f"no tokenizer files ({', '.join(TOKENIZER_FILES[:2])})"
        )
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        raise CheckpointError(folder, None, "tokenizer", f"cannot be loaded: {err}") from err
    vocab = (getattr(config, "text_config", None) or {}).get("vocab_size")
    if isinstance(vocab, int) and len(tokenizer) > vocab:
        raise CheckpointError(
            folder, None, "tokenizer", f"has {len(tokenizer)} tokens, the model only {vocab} embeddings"
        )
    return tokenizer


# ----------------------------------------------------------------------------------------------------------------
# Trainer state (`last/` of a run): tensors in safetensors, everything else in JSON, so resuming never unpickles.

TRAINER_TENSORS = "trainer_state.safetensors"
TRAINER_JSON = "trainer_state.json"


def _split_tensors(value, prefix: str, tensors: dict):
    """A JSON-able copy of `value` with each tensor moved into `tensors` under a dotted key (a {"tensor": key})."""
    import torch

    if isinstance(value, torch.Tensor):
        tensors[prefix] = value.detach().contiguous().cpu()
        return {"tensor": prefix}
    if isinstance(value, dict):
        return {
            "dict": [
                [_split_tensors(k, f"{prefix}.k{i}", tensors), _split_tensors(v, f"{prefix}.{i}", tensors)]
                for i, (k, v) in enumerate(value.items())
            ]
        }
    if isinstance(value, list | tuple):
        items = [_split_tensors(v, f"{prefix}.{i}", tensors) for i, v in enumerate(value)]
        return {"tuple" if isinstance(value, tuple) else "list": items}
    if value is None or isinstance(value, bool | int | float | str):
        return {"value": value}
    raise TypeError(
        f"trainer state: {prefix} holds a {type(value).__name__}, which is neither a tensor nor JSON"
    )


def _join_tensors(value, tensors: dict):
    if "tensor" in value:
        return tensors[value["tensor"]]
    if "dict" in value:
        return {_join_tensors(k, tensors): _join_tensors(v, tensors) for k, v in value["dict"]}
    if "list" in value:
        return [_join_tensors(v, tensors) for v in value["list"]]
    if "tuple" in value:
        return tuple(_join_tensors(v, tensors) for v in value["tuple"])
    return value["value"]


def save_trainer_state(folder: str | Path, state: dict) -> None:
    """Write a dict of optimizer/scheduler/RNG state (tensors, numbers, strings, nested lists/dicts) without pickle.

    Both files are written to temporary names and renamed, so an interrupted save leaves the previous state whole.
    """
    import os

    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict = {}
    structure = _split_tensors(state, "state", tensors)
    tmp_tensors, tmp_json = folder / f".{TRAINER_TENSORS}.tmp", folder / f".{TRAINER_JSON}.tmp"
    save_file(tensors, str(tmp_tensors), metadata={"format": "pt"})
    tmp_json.write_text(json.dumps(structure))
    os.replace(tmp_tensors, folder / TRAINER_TENSORS)
    os.replace(tmp_json, folder / TRAINER_JSON)


def load_trainer_state(folder: str | Path) -> dict | None:
    """The dict save_trainer_state wrote, or None when the folder has none; reads safetensors and JSON only."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / TRAINER_JSON).is_file() or not (folder / TRAINER_TENSORS).is_file():
        return None
    try:
        structure = json.loads((folder / TRAINER_JSON).read_text())
        tensors = load_file(str(folder / TRAINER_TENSORS))
        return _join_tensors(structure, tensors)
    except (ValueError, KeyError, TypeError, OSError) as err:
        raise ValueError(f"{folder}: unreadable trainer state ({err})") from err


def checkpoint_architecture(folder: str | Path) -> str:
    """The architecture a checkpoint folder's config.json names; CheckpointError for an unknown one."""
    from model.registry import ARCHITECTURES

    architecture = read_checkpoint_config(folder)["architecture"]
    if architecture not in ARCHITECTURES:
        raise CheckpointError(
            folder,
            CONFIG_FILE,
            "architecture",
            f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}",
        )
    return architecture


def load_model(folder: str | Path, device: str = "cpu"):
    """The model saved in `folder` (safetensors + config.json), in eval mode."""
    from model.registry import model_class

    return model_class(checkpoint_architecture(folder)).from_pretrained(folder).to(device).eval()


def load_checkpoint(folder: str | Path, device: str = "cpu"):
    """(model, tokenizer) from a checkpoint folder; a broken folder raises CheckpointError."""
    model = load_model(folder, device)
    return model, load_checkpoint_tokenizer(folder, model.config)
