"""Make the app usable from a fresh clone, synchronously: database, data, a model and the queue's predictions.

`make app` does not run this: it runs app.launch, which takes only the data steps from here (data_source,
ensure_data) and queues the training and scoring as jobs for the worker, so the app serves at once. This command
stays for scripts that want a ready store in one blocking call.

    python -m app.prepare [--database-url URL] [--mnre DIR] [--predict-limit N] [--quickstart-train N]
                          [--runs-dir runs]

1. upgrade the label store (db.schema.open_database);
2. import MNRE from $MNRE_ROOT (default ../shared/mnre next to the repository) when it is there, else generate the
   synthetic demo dataset (model.synthetic) under var/synthetic and import that;
3. make sure a model version is active: activate a registered one, else register runs/*/best (objects variant
   first), else train a "quick-start" model (objects variant, offline MiniLM, 1 epoch on a few thousand records);
4. store the active model's predictions for the queue (val first), so the queue can sort by uncertainty.

Every step checks what is already there first: a second run only reports.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from app.inference import predict_and_store
from app.paths import REPO_ROOT, feature_cache_dir, runs_dir
from db.datasets import count_pairs, list_datasets
from db.io import import_mnre
from db.models import ModelVersion
from db.provenance import (
    active_model_version,
    latest_model_version,
    pairs_without_prediction,
    register_checkpoint,
    set_active,
)
from model.checkpoint import read_checkpoint_config

SYNTHETIC_DIR = REPO_ROOT / "var" / "synthetic"
QUICKSTART_NAME = "quickstart"  # runs/quickstart: the model prepare trains when there is no other
VARIANT_PREFERENCE = ("objects", "vanilla", "no_text_attn", "text_only")


def log(message: str) -> None:
    print(f"[prepare {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def default_mnre_root() -> Path:
    return Path(os.environ.get("MNRE_ROOT", REPO_ROOT.parent / "shared" / "mnre"))


def data_source(mnre_root: Path | None, synthetic_dir: Path = SYNTHETIC_DIR) -> tuple[Path, str]:
    """(folder, dataset name): MNRE when its files exist, else the synthetic demo set (generated once)."""
    if mnre_root is not None and (mnre_root / "ours_rel2id.json").is_file():
        return mnre_root, "mnre"
    if not (synthetic_dir / "txt" / "ours_val.txt").is_file():
        from model.synthetic import generate

        log(f"MNRE not found at {mnre_root}; generating the synthetic demo dataset in {synthetic_dir}")
        generate(synthetic_dir, {"train": 600, "val": 200, "test": 200}, images_per_label=30, seed=0)
    return synthetic_dir, "synthetic"


def ensure_data(sessions: sessionmaker, root: Path, dataset: str) -> None:
    with sessions() as session:
        names = {dataset_row.name for dataset_row in list_datasets(session)}
    if dataset in names:
        log(f"dataset {dataset!r} already imported")
        return
    log(f"importing {root} as dataset {dataset!r} ...")
    with sessions.begin() as session:
        report = import_mnre(session, root, dataset=dataset, skip_bad=True)
    log(report.summary())


def existing_checkpoints(runs: Path) -> list[Path]:
    """runs/*/best folders with a config.json: trained runs before an earlier quick-start model, objects first."""
    found = [folder for folder in runs.glob("*/best") if (folder / "config.json").is_file()]

    def rank(path: Path) -> tuple[bool, int, str]:
        variant = read_checkpoint_config(path).get("variant", "")
        order = (
            VARIANT_PREFERENCE.index(variant) if variant in VARIANT_PREFERENCE else len(VARIANT_PREFERENCE)
        )
        return path.parent.name == QUICKSTART_NAME, order, str(path)

    return sorted(found, key=rank)


def train_quickstart(root: Path, limit_train: int, limit_val: int) -> Path:
    from model.train import TrainConfig, train

    cfg = TrainConfig(
        data=str(root),
        output_dir=str(runs_dir() / QUICKSTART_NAME),
        variant="objects",
        epochs=1,
        batch_size=32,
        lr=1e-4,
        limit_train=limit_train,
        limit_val=limit_val,
        feature_cache=str(feature_cache_dir()),
        skip_bad=True,
        device="cpu",
    )
    log(f"no model yet: training a quick-start model ({limit_train} train records, 1 epoch) ...")
    result = train(cfg)
    return result.best_dir


def ensure_model(
    sessions: sessionmaker, root: Path, limit_train: int, limit_val: int, checkpoints_dir: Path | None = None
) -> ModelVersion:
    with sessions.begin() as session:
        active = active_model_version(session)
        if active is not None:
            log(f"active model: {active.version_id}")
            return active
        latest = latest_model_version(session)
        if latest is not None:
            log(f"activating the registered model {latest.version_id}")
            return set_active(session, latest.version_id)
    checkpoints = existing_checkpoints(checkpoints_dir or runs_dir())
    folder = checkpoints[0] if checkpoints else train_quickstart(root, limit_train, limit_val)
    quick = folder.parent.name == QUICKSTART_NAME
    with sessions.begin() as session:
        settings = {"quick_start": True, "limit_train": limit_train, "epochs": 1} if quick else None
        version = register_checkpoint(
            session, folder, settings=settings, created_by="app.prepare (quick-start)" if quick else None
        )
        log(f"registered and activated {version.version_id} from {folder}")
        return set_active(session, version.version_id)


def ensure_predictions(sessions: sessionmaker, version: ModelVersion, limit: int) -> int:
    from model.evaluate import load_checkpoint

    with sessions() as session:
        todo = pairs_without_prediction(session, version.id)
        total = count_pairs(session)
    scored = total - len(todo)
    todo = todo[: max(0, limit - scored)]
    if not todo:
        log(f"predictions: {scored} of {total} pairs already scored by {version.version_id}")
        return 0
    log(f"predicting {len(todo)} pairs with {version.version_id} ({scored} already scored) ...")
    model, tokenizer = load_checkpoint(version.path)
    return predict_and_store(
        sessions,
        model,
        tokenizer,
        version.id,
        todo,
        progress=lambda done, total: log(f"  {done}/{total} pairs"),
    )


def prepare(
    database_url: str | None = None,
    mnre_root: Path | None = None,
    predict_limit: int = 4000,
    quickstart_train: int = 2000,
    quickstart_val: int = 300,
    checkpoints_dir: Path | None = None,
    synthetic_dir: Path = SYNTHETIC_DIR,
) -> ModelVersion:
    from db.schema import open_database

    engine, sessions = open_database(database_url)
    try:
        root, dataset = data_source(mnre_root, synthetic_dir)
        ensure_data(sessions, root, dataset)
        version = ensure_model(sessions, root, quickstart_train, quickstart_val, checkpoints_dir)
        ensure_predictions(sessions, version, predict_limit)
        return version
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m app.prepare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--database-url", help="default: $DATABASE_URL, else sqlite var/mrelens.db")
    ap.add_argument(
        "--mnre", type=Path, default=default_mnre_root(), help="MNRE folder (default: $MNRE_ROOT)"
    )
    ap.add_argument(
        "--predict-limit", type=int, default=4000, help="pairs to score for the queue (val first)"
    )
    ap.add_argument(
        "--quickstart-train", type=int, default=2000, help="train records of the quick-start model"
    )
    ap.add_argument(
        "--runs-dir",
        type=Path,
        help="where to look for */best checkpoints (default: $MRELENS_RUNS_DIR or runs/)",
    )
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(int(os.environ.get("TORCH_NUM_THREADS", "1")))
    t0 = time.time()
    from db.errors import LabelStoreError
    from model.checkpoint import CheckpointError
    from model.mnre_format import DataFormatError

    try:
        version = prepare(
            args.database_url,
            args.mnre,
            args.predict_limit,
            args.quickstart_train,
            checkpoints_dir=args.runs_dir,
        )
    except (DataFormatError, LabelStoreError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    log(f"ready in {time.time() - t0:.0f} s; active model {version.version_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
