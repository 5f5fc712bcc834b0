"""Train a relation classifier (an IFAformer variant, or MEGA with `architecture: mega`) on an MNRE-layout folder;
keep the best epoch by val micro-F1.

    python -m model.train --config configs/objects.yaml [--epochs 3 --lr 5e-5 ...]
    torchrun --nproc_per_node 2 -m model.train --config ...        (DistributedDataParallel; gloo on CPU)

Flags override the YAML file. AdamW over every parameter (classifier included), linear warm-up then linear decay.
Each epoch ends with an evaluation on val; `<output_dir>/best` holds the best checkpoint and `<output_dir>/last` the
state to resume from (--resume).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from model.batching import collate, length_bucketed_batches, prepare_examples
from model.checkpoint import (
    load_trainer_state,
    preprocessing,
    read_checkpoint_config,
    save_trainer_state,
    set_preprocessing,
)
from model.data import DEFAULT_MARKER_STYLE, DataFormatError, Record, labels_by_id, load_split
from model.evaluate import format_table, metrics_from_logits, predict_logits, tune_none_bias
from model.visual_features import FeatureCache

PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainConfig:
    data: str = "../shared/mnre"  # MNRE folder (DeepKE layout)
    output_dir: str = "runs/ifaformer"
    architecture: str = "ifaformer"  # "ifaformer" | "mega"
    variant: str = "objects"  # text_only | vanilla | no_text_attn | objects
    text_encoder: str = "minilm"  # "minilm" (offline default), a local folder or a cached hub id
    vision_encoder: str = "efficientnet-lite0"  # or a CLIP vision folder / cached hub id
    init_from: str | None = None  # fine-tune this checkpoint instead of building from the encoders
    epochs: int = 10
    batch_size: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    grad_clip: float = 1.0
    max_length: int = 80
    # entity markers (model.data.MARKER_STYLES): "tokens" <s> </s> <o> </o>, "punct" @ head @ / # tail #;
    # None = the init_from checkpoint's style, else "tokens"
    marker_style: str | None = None
    # tune an offset on the "None" logit on val after each epoch (maximising val micro-F1); stored in the checkpoint
    tune_none_bias: bool = True
    # layer-wise lr decay: text layer i of L trains at lr * decay^(L - i), the embeddings at lr * decay^(L + 1)
    layer_lr_decay: float = 1.0
    # exponential moving average of the weights, evaluated and saved as "best" instead of the raw weights: it smooths
    # the epoch-to-epoch swings of val F1 on a small val split; None = off
    ema_decay: float | None = None
    # cross-entropy label smoothing (0 = plain cross-entropy)
    label_smoothing: float = 0.0
    # keep the pretrained word embeddings as they are and train only the added entity markers' rows: on ~12k
    # training posts the words seen in training would otherwise drift away from the unseen ones they were close to
    freeze_word_embeddings: bool = False
    # "bf16": the training forward pass runs under bfloat16 autocast (weights, optimizer state, loss and every
    # evaluation stay float32); training steps ~2x faster on a CPU with AMX (benchmarks/encoders.md), the usual
    # setting on a GPU
    precision: str = "fp32"
    max_crops: int = 3
    fusion_layers: int | None = None
    seed: int = 1
    shuffle_train_images: bool = False  # the paper's "shuffle (train)" setting
    feature_cache: str | None = "var/features"  # frozen EfficientNet features, computed once
    grounding_dir: str | None = None  # crops from `python -m model.grounding` instead of the dataset's img_vg
    skip_bad: bool = False
    limit_train: int | None = None  # use only the first N train records (quick start, smoke tests)
    limit_val: int | None = None
    resume: bool = False
    device: str = "auto"  # auto | cpu | cuda
    eval_batch_size: int = 64
    progress: bool = True
    pretrained: bool = True  # False: random encoder weights (tiny test encoders)
    # widths/depth of the fresh visual layers (efficientnet); None = defaults
    vision_config: dict | None = None


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision: {precision!r} is not one of {', '.join(PRECISIONS)}")


def training_autocast(device: torch.device, precision: str):
    """The context a training forward pass runs in: bfloat16 autocast for "bf16", nothing for "fp32"."""
    check_precision(precision)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@dataclass
class TrainResult:
    best_dir: Path
    best_metrics: dict
    history: list[dict]
    version_id: str


def _dist_info() -> tuple[int, int, int]:
    return (
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def _device(cfg: TrainConfig, local_rank: int) -> torch.device:
    if cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device(f"cuda:{local_rank}")


class WeightAverage:
    """Exponential moving average of a model's trainable parameters (Polyak averaging). The decay warms up,
    min(decay, (1 + t) / (10 + t)) at step t, so that the first averages are not held at the initial weights."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.decay, self.steps = decay, 0
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.averages = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        torch._foreach_lerp_(self.averages, [p.detach() for p in self.params], 1.0 - decay)

    @contextmanager
    def applied(self):
        """Inside the block the model holds the averaged weights; after it, its training weights again."""
        training_weights = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for param, average in zip(self.params, self.averages, strict=True):
                param.copy_(average)
        try:
            yield
        finally:
            with torch.no_grad():
                for param, weights in zip(self.params, training_weights, strict=True):
                    param.copy_(weights)

    def state(self) -> dict:
        return {"steps": self.steps, "averages": list(self.averages)}

    def load_state(self, state: dict) -> None:
        self.steps = int(state["steps"])
        with torch.no_grad():
            for average, saved in zip(self.averages, state["averages"], strict=True):
                average.copy_(saved)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _linear_schedule(optimizer, warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _lr_scale(name: str, n_text_layers: int, layer_lr_decay: float) -> float:
    """Layer-wise lr decay on the pretrained text stream; fresh layers (visual stream, classifier) keep the full lr."""
    if layer_lr_decay == 1.0:
        return 1.0
    if name.startswith("text_embeddings."):
        return layer_lr_decay ** (n_text_layers + 1)
    if name.startswith("text_layers."):
        return layer_lr_decay ** (n_text_layers - int(name.split(".")[1]))
    return 1.0


def train_only_rows(embedding: torch.nn.Embedding, rows: list[int]) -> None:
    """Zero the gradient of every row of `embedding` but `rows`. Its weight must also get no weight decay (see
    param_groups' `no_decay`), or AdamW would still shrink the frozen rows."""
    if not rows:
        raise ValueError("freeze_word_embeddings: the model has no entity-marker rows to train")
    keep = torch.zeros(embedding.num_embeddings, 1)
    keep[rows] = 1.0
    embedding.weight.register_hook(lambda grad: grad * keep.to(grad))


def param_groups(
    model,
    weight_decay: float,
    lr: float | None = None,
    layer_lr_decay: float = 1.0,
    no_decay_params: tuple[torch.nn.Parameter, ...] = (),
):
    """AdamW groups: no weight decay on biases, norms and no_decay_params; with layer_lr_decay != 1, per-layer lrs
    (needs lr)."""
    n_text_layers = len(getattr(model, "text_layers", []))
    groups: dict[tuple[float, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim < 2 or "norm" in name.lower() or any(p is q for q in no_decay_params)
        groups.setdefault((_lr_scale(name, n_text_layers, layer_lr_decay), no_decay), []).append(p)
    if layer_lr_decay != 1.0 and lr is None:
        raise ValueError("layer-wise lr decay needs the base lr")
    return [
        {
            "params": params,
            "weight_decay": 0.0 if no_decay else weight_decay,
            **({"lr": lr * scale} if lr is not None else {}),
        }
        for (scale, no_decay), params in sorted(groups.items(), key=lambda kv: (-kv[0][0], kv[0][1]))
    ]


def build_fresh_model(cfg: TrainConfig, label_names: list[str]):
    if cfg.architecture == "mega":
        from model.mega import build_mega

        return build_mega(label_names, cfg)
    from model.encoders import build_model

    return build_model(
        cfg.variant,
        label_names,
        cfg.text_encoder,
        cfg.vision_encoder,
        cfg.max_crops,
        cfg.fusion_layers,
        cfg.vision_config,
        pretrained=cfg.pretrained,
    )


def load_records(cfg: TrainConfig, split: str, log) -> tuple[list[Record], list[str]]:
    records, rel2id, report = load_split(cfg.data, split, skip_bad=cfg.skip_bad)
    log(report.summary())
    for msg in report.skipped:
        log(f"  skipped: {msg}")
    if cfg.grounding_dir:
        from model.grounding import apply_grounding

        apply_grounding(records, cfg.grounding_dir, split)
    label_names = labels_by_id(rel2id)
    return records, label_names


def train(
    cfg: TrainConfig,
    train_records: list[Record] | None = None,
    val_records: list[Record] | None = None,
    label_names: list[str] | None = None,
    progress_callback: Callable[[float, str], None] | None = None,
) -> TrainResult:
    """Train and return the best checkpoint. Records may be given directly (retraining on curated labels)."""
    rank, world, local_rank = _dist_info()
    distributed = world > 1
    device = _device(cfg, local_rank)
    if device.type == "cuda":
        # one GPU per process, set before the process group starts: otherwise every rank's NCCL communicator and
        # CUDA caches land on GPU 0
        torch.cuda.set_device(device)
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    is_main = rank == 0

    def log(msg: str) -> None:
        if is_main:
            print(msg, file=sys.stderr, flush=True)

    # before minutes of data loading
    check_precision(cfg.precision)
    _seed_everything(cfg.seed)
    out = Path(cfg.output_dir)
    if train_records is None:
        train_records, label_names = load_records(cfg, "train", log)
    if val_records is None:
        val_records, label_names = load_records(cfg, "val", log)
    if label_names is None:
        raise ValueError("label_names are required when records are passed in")
    train_records = train_records[: cfg.limit_train] if cfg.limit_train else train_records
    val_records = val_records[: cfg.limit_val] if cfg.limit_val else val_records

    if cfg.init_from:
        from model.checkpoint import load_checkpoint

        model, tokenizer = load_checkpoint(cfg.init_from)
        if list(model.config.label_names) != list(label_names):
            raise ValueError(f"{cfg.init_from}: its labels differ from the data's labels")
    else:
        model, tokenizer = build_fresh_model(cfg, label_names)
    model.to(device)
    config = model.config
    previous = preprocessing(config)
    marker_style = cfg.marker_style or (previous.marker_style if cfg.init_from else DEFAULT_MARKER_STYLE)
    set_preprocessing(
        config,
        max_length=cfg.max_length,
        marker_style=marker_style,
        grounding_dir=cfg.grounding_dir,
        none_bias=0.0,
    )
    cache = FeatureCache(cfg.feature_cache)
    train_data = prepare_examples(
        train_records,
        tokenizer,
        config,
        cfg.max_length,
        cache,
        cfg.seed if cfg.shuffle_train_images else None,
        progress=cfg.progress and is_main,
    )
    val_data = prepare_examples(val_records, tokenizer, config, cfg.max_length, cache)
    # the examples are all training needs from here on: drop this function's references to the parsed records
    del train_records, val_records
    log(f"train visual inputs: {dict(train_data.stats)}; val: {dict(val_data.stats)}")

    no_decay_params: tuple[torch.nn.Parameter, ...] = ()
    if cfg.freeze_word_embeddings:
        embedding = model.word_embeddings()
        train_only_rows(embedding, list(config.marker_token_ids))
        no_decay_params = (embedding.weight,)
    optimizer = torch.optim.AdamW(
        param_groups(model, cfg.weight_decay, cfg.lr, cfg.layer_lr_decay, no_decay_params), lr=cfg.lr
    )
    steps_per_epoch = math.ceil(len(train_data.examples) / cfg.batch_size) // world
    total = steps_per_epoch * cfg.epochs
    scheduler = _linear_schedule(optimizer, int(cfg.warmup_ratio * total), total)

    weight_average = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay is not None else None
    start_epoch, best_f1, history = 0, -1.0, []
    last_dir = out / "last"
    state = load_trainer_state(last_dir) if cfg.resume else None
    if state is not None:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(last_dir / "model.safetensors"), device=str(device)))
        set_preprocessing(config, none_bias=state["none_bias"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best_f1, history = state["epoch"] + 1, state["best_f1"], json.loads(state["history"])
        python_rng = state["python_rng"]
        random.setstate((python_rng[0], tuple(python_rng[1]), python_rng[2]))
        torch.set_rng_state(state["torch_rng"])
        if weight_average is not None:
            weight_average.load_state(state["weight_average"])
        log(f"resumed from {last_dir} at epoch {start_epoch + 1}")
    elif cfg.resume:
        log(f"nothing to resume in {last_dir}: starting from epoch 1")

    wrapped = model
    if distributed:
        # find_unused_parameters: batches without images skip the visual stream
        wrapped = torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[local_rank] if device.type == "cuda" else None,
            find_unused_parameters=config.uses_image,
        )
    lengths = [len(e.input_ids) for e in train_data.examples]
    pad_id = tokenizer.pad_token_id
    best_dir = out / "best"
    for epoch in range(start_epoch, cfg.epochs):
        wrapped.train()
        batches = length_bucketed_batches(lengths, cfg.batch_size, seed=cfg.seed + epoch)
        batches = batches[: steps_per_epoch * world][rank::world]  # same number of steps on every rank
        iterator = batches
        if cfg.progress and is_main:
            from tqdm import tqdm

            iterator = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch")
        t0, loss_sum = time.time(), 0.0
        for step, idx in enumerate(iterator):
            batch = {
                k: v.to(device)
                for k, v in collate(
                    [train_data.examples[i] for i in idx], pad_id, config.vision_backbone
                ).items()
            }
            labels = batch.pop("labels")
            with training_autocast(device, cfg.precision):
                logits = wrapped(**batch).logits
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            if weight_average is not None:
                weight_average.update()
            loss_sum += loss.item()
            if cfg.progress and is_main:
                iterator.set_postfix(loss=f"{loss_sum / (step + 1):.4f}")
            if progress_callback and is_main:
                done = (epoch * len(batches) + step + 1) / max(1, cfg.epochs * len(batches))
                progress_callback(done, f"epoch {epoch + 1}/{cfg.epochs}, loss {loss_sum / (step + 1):.4f}")

        if is_main:
            # val, the None offset and "best" use the averaged weights when there are any; "last" keeps the training
            # weights (what a resume continues from)
            with weight_average.applied() if weight_average is not None else nullcontext():
                logits = predict_logits(model, val_data.examples, pad_id, cfg.eval_batch_size, str(device))
                gold = [e.label for e in val_data.examples]
                none_bias = tune_none_bias(logits, gold, config.label_names) if cfg.tune_none_bias else 0.0
                set_preprocessing(config, none_bias=none_bias)
                metrics = metrics_from_logits(logits, gold, config)
                entry = {
                    "epoch": epoch + 1,
                    "train_loss": loss_sum / max(1, len(batches)),
                    "epoch_seconds": time.time() - t0,
                    **{k: metrics[k] for k in ("accuracy", "precision", "recall", "f1")},
                    "none_bias": none_bias,
                    "f1_without_bias": metrics["without_bias"]["f1"],
                }
                history.append(entry)
                log(
                    f"epoch {epoch + 1}: loss {entry['train_loss']:.4f}  val acc {100 * entry['accuracy']:.2f}  "
                    f"P {100 * entry['precision']:.2f}  R {100 * entry['recall']:.2f}  F1 {100 * entry['f1']:.2f}  "
                    f"(None bias {none_bias:+.1f}; F1 without it {100 * entry['f1_without_bias']:.2f})"
                )
                if metrics["f1"] > best_f1:
                    best_f1 = metrics["f1"]
                    model.save_pretrained(best_dir, tokenizer)
                    (best_dir / "val_metrics.json").write_text(json.dumps(metrics, indent=2))
            model.save_pretrained(out / "last", tokenizer)
            save_trainer_state(
                out / "last",
                {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "epoch": epoch,
                    "best_f1": best_f1,
                    "none_bias": none_bias,
                    "history": json.dumps(history),
                    "python_rng": random.getstate(),
                    "torch_rng": torch.get_rng_state(),
                    **({"weight_average": weight_average.state()} if weight_average is not None else {}),
                },
            )
            (out / "history.json").write_text(json.dumps(history, indent=2))
            (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
        if distributed:
            dist.barrier()

    best = (
        json.loads((best_dir / "val_metrics.json").read_text())
        if (best_dir / "val_metrics.json").is_file()
        else {}
    )
    version = read_checkpoint_config(best_dir)["version_id"] if best else ""
    if is_main and best:
        log(format_table(best))
    if distributed:
        dist.barrier()
    return TrainResult(best_dir, best, history, version)


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """TrainConfig from an optional YAML file, overridden by the flags actually given."""
    ap = argparse.ArgumentParser(prog="python -m model.train", description=__doc__.splitlines()[0])
    ap.add_argument("--config", help="YAML file with TrainConfig fields")
    for config_field in fields(TrainConfig):
        flag = "--" + config_field.name.replace("_", "-")
        field_type = str(config_field.type)
        if config_field.type in ("bool", bool):
            ap.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS)
        elif config_field.name == "vision_config":
            ap.add_argument(flag, type=json.loads, default=argparse.SUPPRESS, help="JSON object")
        else:
            kind = int if "int" in field_type else float if "float" in field_type else str
            ap.add_argument(flag, type=kind, default=argparse.SUPPRESS)
    args = vars(ap.parse_args(argv))
    values: dict = {}
    if args.get("config"):
        import yaml

        path = Path(args.pop("config"))
        if not path.is_file():
            raise DataFormatError(path, None, None, "config file not found")
        loaded = yaml.safe_load(path.read_text()) or {}
        known = {config_field.name for config_field in fields(TrainConfig)}
        unknown = sorted(set(loaded) - known)
        if unknown:
            raise DataFormatError(
                path, None, unknown[0], f"unknown setting; known: {', '.join(sorted(known))}"
            )
        values.update(loaded)
    args.pop("config", None)
    values.update(args)
    return TrainConfig(**values)


def main(argv: list[str] | None = None) -> int:
    if os.environ.get("TORCH_NUM_THREADS"):
        # a shared machine: the caller decides how many cores a run may take
        torch.set_num_threads(int(os.environ["TORCH_NUM_THREADS"]))
    try:
        cfg = parse_config(argv)
        result = train(cfg)
    except (DataFormatError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if _dist_info()[0] == 0:
        print(
            json.dumps(
                {
                    "best_dir": str(result.best_dir),
                    "version_id": result.version_id,
                    **{k: result.best_metrics.get(k) for k in ("accuracy", "precision", "recall", "f1")},
                }
            )
        )
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
