"""Retrain on curated labels: fine-tune a model version on MNRE train with the label store's decisions applied.

    python -m app.retrain --base MODEL_DIR|VERSION_ID --mnre MNRE_DIR [--dataset mnre] [--epochs 3]
                          [--output-dir runs/retrain-...] [--activate] [--database-url URL]

Corrections (and accepted labels) override the source labels, rejected pairs are dropped, everything else keeps its
source label. Before and after are measured by the same rule, the one every registered version follows: the
checkpoint its training selected on val (model.train's best/: the epoch with the best val micro-F1, with the "None"
offset tuned on val), evaluated on the same val records: the base as registered (the best/ of the job or run that
made it) and the retraining's best/. Both figures are picked on val, optimistic alike, and comparable with the
active model's val F1, which activation compares against. The fine-tuned model is registered as a new version
(parent = the base) with both sets of figures, and both evaluations are stored as evaluation runs (kept out of
the Experiments tables, explain.tables.OUTSIDE_TABLES). A --base folder is registered only once its checkpoint
loads.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from db.curation import CurationReport, curated_training_records
from db.errors import LabelStoreError
from db.model_versions import ModelVersionInfo, find_model, summarize_metrics
from db.provenance import register_checkpoint, save_evaluation_run, set_active
from db.roles import Actor, require_admin
from model.data import DataFormatError, labels_by_id, load_split

TABLE_METRICS = ("accuracy", "precision", "recall", "f1")  # the before/after table's rows


@dataclass
class RetrainResult:
    base_version: str
    new_version: str
    checkpoint: Path
    curation: CurationReport
    before: dict  # the base model on val
    # the fine-tuned model's best/ (epoch and None offset selected on val), on the same val records
    after: dict
    history: list[dict]

    def table(self) -> str:
        lines = [f"{'val':10s} {'before':>8s} {'after':>8s} {'change':>8s}"]
        for key in TABLE_METRICS:
            before_value, after_value = 100 * self.before[key], 100 * self.after[key]
            lines.append(
                f"{key:10s} {before_value:8.2f} {after_value:8.2f} {after_value - before_value:+8.2f}"
            )
        return "\n".join(lines)


def resolve_base(sessions: sessionmaker, base: str) -> ModelVersionInfo:
    """The model version `base` names: a checkpoint folder (registered on the way, once it loads) or a version id;
    LabelStoreError when its checkpoint folder is gone."""
    if Path(base).is_dir():
        _check_loads(Path(base))
    with sessions.begin() as session:
        if Path(base).is_dir():
            version = ModelVersionInfo.of(register_checkpoint(session, base))
        else:
            version = find_model(session, base)
    if not (Path(version.folder) / "config.json").is_file():
        raise LabelStoreError(
            f"model version {version.version_id!r}: checkpoint folder {version.folder} is missing"
        )
    return version


def _check_loads(folder: Path) -> None:
    """A folder that is not a loadable checkpoint is refused before anything about it is stored."""
    from model.checkpoint import load_checkpoint

    try:
        load_checkpoint(folder)
    except Exception as err:  # any reason it cannot load is the user's folder, reported as such
        raise LabelStoreError(f"{folder}: not a loadable checkpoint ({type(err).__name__}: {err})") from err


def retrain(
    sessions: sessionmaker,
    base: str,
    mnre: str | Path,
    dataset: str = "mnre",
    epochs: int = 3,
    output_dir: str | Path | None = None,
    batch_size: int = 32,
    lr: float = 2e-5,
    seed: int = 1,
    activate: bool = False,
    created_by: str | None = None,
    log: Callable[[str], None] = print,
    progress_callback: Callable[[float, str], None] | None = None,
    actor: Actor | None = None,
    before_register: Callable[[], None] | None = None,
    **train_options,
) -> RetrainResult:
    """Fine-tune `base` on the curated train split and register the result; see the module docstring.

    train_options go to model.train.TrainConfig (e.g. feature_cache, max_length, limit_train, limit_val, device).
    progress_callback(fraction, message) is passed to model.train.train (the job's progress); before_register()
    runs just before anything is stored and may raise to stop (a cancelled job registers nothing).
    Retraining is an admin action (db.roles): a reviewer `actor` is refused before anything is written.
    """
    require_admin(actor, "start a retraining")
    from explain.tables import RETRAIN_BASELINE, RETRAIN_RESULT
    from model.evaluate import evaluate_checkpoint
    from model.train import TrainConfig, train

    base_ref = resolve_base(sessions, base)
    base_version, base_dir, base_variant = base_ref.version_id, Path(base_ref.folder), base_ref.variant
    train_records, rel2id, train_report = load_split(mnre, "train")
    val_records, _, val_report = load_split(mnre, "val")
    log(train_report.summary())
    log(val_report.summary())
    label_names = labels_by_id(rel2id)
    curation = CurationReport()
    with sessions() as session:
        curated = curated_training_records(session, train_records, dataset, "train", curation)
    log(f"curated train split: {curation.summary()}")
    if curation.not_in_store == curation.records:
        raise LabelStoreError(
            f"no train record of {mnre} is in dataset {dataset!r}; import it first: "
            f"python -m db import {mnre} --dataset {dataset}"
        )

    limit_val = train_options.get("limit_val")
    # the same records train() evaluates on
    eval_records = val_records[:limit_val] if limit_val else val_records
    eval_options = {
        k: train_options[k] for k in ("feature_cache", "max_length", "device") if k in train_options
    }
    log(f"evaluating the base model {base_version} on val ...")
    before = evaluate_checkpoint(base_dir, eval_records, **eval_options)

    output_dir = Path(output_dir or f"runs/retrain-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg = TrainConfig(
        data=str(mnre),
        output_dir=str(output_dir),
        init_from=str(base_dir),
        variant=base_variant,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        **train_options,
    )
    result = train(
        cfg,
        train_records=curated,
        val_records=val_records,
        label_names=label_names,
        progress_callback=progress_callback,
    )
    # best/, as for the base and every other registered version: one selection rule on both sides
    final_dir = Path(result.best_dir)
    if not (final_dir / "config.json").is_file():
        raise LabelStoreError(f"training wrote no checkpoint under {output_dir}; nothing to register")
    log(f"evaluating the fine-tuned model {final_dir} on val ...")
    after = evaluate_checkpoint(final_dir, eval_records, **eval_options)
    if before_register is not None:
        before_register()

    settings = {
        "base": base_version,
        "dataset": dataset,
        "mnre": str(mnre),
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "seed": seed,
        "train_records": len(curated),
        "relabelled": curation.corrected,
        "dropped_rejected": curation.dropped,
        "spans_fixed": curation.spans_fixed,
        "added_pairs": curation.added,
        "options": {k: v for k, v in train_options.items() if isinstance(v, str | int | float | bool)},
    }
    with sessions.begin() as session:
        # from the checkpoint's config.json: its version id (the one evaluated above), architecture, text encoder
        version = register_checkpoint(
            session,
            final_dir,
            metrics={"val": summarize_metrics(after), "val_before": summarize_metrics(before)},
            parent_version_id=base_version,
            created_by=created_by,
            settings=settings,
        )
        save_evaluation_run(
            session,
            base_variant,
            "standard",
            "val",
            summarize_metrics(before),
            base_ref.key,
            settings={"purpose": RETRAIN_BASELINE},
        )
        save_evaluation_run(
            session,
            base_variant,
            "standard",
            "val",
            summarize_metrics(after),
            version.id,
            settings={"purpose": RETRAIN_RESULT, "parent": base_version},
        )
        if activate:
            set_active(session, version.version_id, actor=actor)
        new_version = version.version_id
    return RetrainResult(base_version, new_version, final_dir, curation, before, after, result.history)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.retrain",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--base", required=True, help="checkpoint folder or registered model version id")
    parser.add_argument(
        "--mnre", required=True, type=Path, help="MNRE/DeepKE folder the dataset was imported from"
    )
    parser.add_argument("--dataset", default="mnre", help="dataset name in the label store (default: mnre)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output-dir", type=Path)
    parser.add_argument("--activate", action="store_true", help="make the new version the active one")
    parser.add_argument("--created-by", help="who ran the retraining (stored with the model version)")
    parser.add_argument("--database-url", help="default: $DATABASE_URL, else sqlite var/mrelens.db")
    args = parser.parse_args(argv)

    from db.schema import open_database

    engine, sessions = open_database(args.database_url)
    try:
        result = retrain(
            sessions,
            args.base,
            args.mnre,
            args.dataset,
            args.epochs,
            args.output_dir,
            args.batch_size,
            args.lr,
            args.seed,
            args.activate,
            args.created_by,
            log=lambda msg: print(msg, file=sys.stderr),
        )
    except (DataFormatError, LabelStoreError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(f"registered {result.new_version} (parent {result.base_version}) at {result.checkpoint}")
    print(f"curated train split: {result.curation.summary()}")
    print(result.table())
    print(json.dumps({"before": summarize_metrics(result.before), "after": summarize_metrics(result.after)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
