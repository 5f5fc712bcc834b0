"""Out-of-sample predictions by K-fold cross-fitting: every record gets a probability distribution from a model
that was never trained on it.

A model scores the records it was trained on with the labels it was trained on: a wrong gold label it has fitted
agrees with itself. Cross-fitting splits the labelled records into K folds (stratified by label, fixed by a seed),
trains one model per fold on the other K - 1 folds, and predicts the held-out fold with it. Each fold is one call of
`train_fold` (the worker runs one fold per job, so several workers train folds at once); `merge_folds` puts the
held-out predictions back in record order, and `crossfit` runs every fold in this process.

    from model.crossfit import crossfit
    result = crossfit(cfg, records, val_records, label_names, k=5, seed=1)
    result.probabilities  # (N, num_labels), row i from the fold model that did not see records[i]

Training goes through model.train.train (cfg is its TrainConfig; val selects the epoch and the "None" offset, as for
every model) and prediction through model.evaluate.predict_probabilities, the probabilities the app stores.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from model.mnre_format import Record

DEFAULT_FOLDS = 5


@dataclass(frozen=True)
class FoldModel:
    """What one fold trained: where its checkpoint is and which records it saw and predicted."""

    fold: int
    folds: int
    checkpoint: str
    version_id: str
    trained_on: int  # records
    held_out: int  # records it predicted
    val_f1: float | None


@dataclass
class FoldPrediction:
    model: FoldModel
    indices: list[int]  # positions of the held-out records in the full record list
    probabilities: np.ndarray  # (len(indices), num_labels)

    def save(self, folder: str | Path) -> Path:
        """fold<k>.npz (indices, probabilities) + fold<k>.json (the fold model) under `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"fold{self.model.fold}"
        tmp = stem.with_suffix(".tmp.npz")
        np.savez(tmp, indices=np.asarray(self.indices, dtype=np.int64), probabilities=self.probabilities)
        tmp.replace(stem.with_suffix(".npz"))
        stem.with_suffix(".json").write_text(json.dumps(asdict(self.model)))
        return stem.with_suffix(".npz")

    @classmethod
    def load(cls, folder: str | Path, fold: int) -> FoldPrediction:
        stem = Path(folder) / f"fold{fold}"
        with np.load(stem.with_suffix(".npz")) as data:
            indices, probabilities = data["indices"].tolist(), data["probabilities"]
        return cls(FoldModel(**json.loads(stem.with_suffix(".json").read_text())), indices, probabilities)


@dataclass
class CrossfitResult:
    probabilities: np.ndarray  # (N, num_labels) in record order
    fold_of: list[int]  # fold of each record
    models: list[FoldModel]
    label_names: list[str]


def assign_folds(labels: Sequence[str], k: int = DEFAULT_FOLDS, seed: int = 1) -> list[int]:
    """The fold (0..k-1) of each record: each label's records dealt round the folds in a seeded random order, so
    every fold holds ~1/k of every label (a rare label is never missing from all training sets but one)."""
    if k < 2:
        raise ValueError(f"folds: {k} (at least 2 are needed)")
    if len(labels) < k:
        raise ValueError(f"folds: {k} folds need at least {k} labelled records, got {len(labels)}")
    rng = random.Random(f"crossfit-folds:{seed}")
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_label[label].append(index)
    fold_of = [0] * len(labels)
    start = 0
    for label in sorted(by_label):
        members = by_label[label]
        rng.shuffle(members)
        for j, index in enumerate(members):
            fold_of[index] = (start + j) % k
        # the next label starts where this one stopped: small labels do not all land in fold 0
        start = (start + len(members)) % k
    return fold_of


def record_probabilities(
    model, tokenizer, records: list[Record], feature_cache: str | None, batch_size: int = 64
) -> np.ndarray:
    """(N, num_labels) probabilities of a loaded model on records, with the model's own preprocessing."""
    return record_probabilities_and_embeddings(model, tokenizer, records, feature_cache, batch_size)[0]


def record_probabilities_and_embeddings(
    model, tokenizer, records: list[Record], feature_cache: str | None, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """The probabilities of record_probabilities and, from the same forward passes, each record's representation as
    the classifier sees it ((N, 2 C): the head and tail entity states), the embedding diversity-aware query
    strategies cluster."""
    import torch

    from model.batching import length_bucketed_batches, prepare_examples
    from model.evaluate import predict_probabilities
    from model.visual_features import FeatureCache

    prepared = prepare_examples(records, tokenizer, model.config, None, FeatureCache(feature_cache))
    captured: list[torch.Tensor] = []
    hook = model.classifier.register_forward_pre_hook(lambda _module, args: captured.append(args[0].detach()))
    try:
        probabilities = predict_probabilities(model, prepared.examples, tokenizer.pad_token_id, batch_size)
    finally:
        hook.remove()
    # predict_logits runs length-bucketed batches (in this order): put the captured rows back in record order
    order = length_bucketed_batches(
        [len(e.input_ids) for e in prepared.examples], batch_size, seed=0, shuffle=False
    )
    embeddings = np.zeros((len(records), captured[0].shape[-1] if captured else 0), dtype=np.float32)
    for idx, rows in zip(order, captured, strict=True):
        embeddings[idx] = rows.float().cpu().numpy()
    return probabilities.numpy(), embeddings


def train_fold(
    cfg,
    records: list[Record],
    fold_of: list[int],
    fold: int,
    val_records: list[Record],
    label_names: list[str],
    progress_callback: Callable[[float, str], None] | None = None,
) -> FoldPrediction:
    """Train on every record outside `fold` (cfg: a model.train.TrainConfig; its output_dir gets fold<k>/) and
    predict the records of `fold` with the checkpoint that training selected on val."""
    from model.checkpoint import load_checkpoint
    from model.train import train

    k = max(fold_of) + 1
    if not 0 <= fold < k:
        raise ValueError(f"fold {fold} is not one of 0..{k - 1}")
    held = [i for i, f in enumerate(fold_of) if f == fold]
    training = [record for record, f in zip(records, fold_of, strict=True) if f != fold]
    out = Path(cfg.output_dir) / f"fold{fold}"
    result = train(
        replace(cfg, output_dir=str(out), limit_train=None),
        train_records=training,
        val_records=val_records,
        label_names=label_names,
        progress_callback=progress_callback,
    )
    if not result.best_metrics:
        raise RuntimeError(f"fold {fold}: training wrote no checkpoint under {out}")
    model, tokenizer = load_checkpoint(result.best_dir)
    probabilities = record_probabilities(model, tokenizer, [records[i] for i in held], cfg.feature_cache)
    fold_model = FoldModel(
        fold=fold,
        folds=k,
        checkpoint=str(result.best_dir),
        version_id=result.version_id,
        trained_on=len(training),
        held_out=len(held),
        val_f1=result.best_metrics.get("f1"),
    )
    return FoldPrediction(fold_model, held, probabilities)


def merge_folds(parts: list[FoldPrediction], n_records: int, label_names: list[str]) -> CrossfitResult:
    """The folds' held-out predictions in record order; every record must be predicted exactly once."""
    probabilities = np.full((n_records, len(label_names)), np.nan)
    fold_of = [-1] * n_records
    for part in sorted(parts, key=lambda p: p.model.fold):
        if part.probabilities.shape != (len(part.indices), len(label_names)):
            raise ValueError(f"fold {part.model.fold}: probabilities of shape {part.probabilities.shape}")
        for row, index in enumerate(part.indices):
            if fold_of[index] != -1:
                raise ValueError(
                    f"record {index} is held out by folds {fold_of[index]} and {part.model.fold}"
                )
            fold_of[index] = part.model.fold
            probabilities[index] = part.probabilities[row]
    missing = [i for i, f in enumerate(fold_of) if f == -1]
    if missing:
        raise ValueError(f"{len(missing)} records have no out-of-sample prediction (first: {missing[0]})")
    return CrossfitResult(
        probabilities, fold_of, [p.model for p in sorted(parts, key=lambda p: p.model.fold)], label_names
    )


def crossfit(
    cfg,
    records: list[Record],
    val_records: list[Record],
    label_names: list[str],
    k: int = DEFAULT_FOLDS,
    seed: int = 1,
    progress_callback: Callable[[float, str], None] | None = None,
) -> CrossfitResult:
    """All k folds in this process, one after another (the worker runs them as separate jobs instead)."""
    fold_of = assign_folds([r.relation for r in records], k, seed)
    parts = []
    for fold in range(k):

        def fold_progress(fraction: float, message: str, fold: int = fold) -> None:
            if progress_callback is not None:
                progress_callback((fold + fraction) / k, f"fold {fold + 1}/{k}: {message}")

        parts.append(train_fold(cfg, records, fold_of, fold, val_records, label_names, fold_progress))
    return merge_folds(parts, len(records), label_names)
