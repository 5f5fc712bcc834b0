"""The annotation loop, simulated and measured: how much val micro-F1 each review order buys per reviewed pair.

A simulated reviewer starts from a seed set of `seed_size` random pairs of a dataset's train split with their gold
labels; the rest of train is the unlabelled pool. Each round a strategy picks `batch` pool pairs, their gold labels
are revealed as "accepted" decisions in a label store, and the model is retrained on every labelled pair; the val
micro-F1 after each round is the strategy's learning curve. Selection and training go through the app's own code:
the picks are read from the Queue's query (db.review_queue.review_queue, over the predictions stored by
db.provenance.save_predictions), the labelled set from the store (db.curation.curated_training_records), training
is model.train.train, the function every training and retraining job calls.

Strategies (QUERY_STRATEGIES):
    random          the Queue's "random" sort: a seeded shuffle; the seed set is its first `seed_size` pairs
    source_order    the Queue's "source_order" sort (the dataset's own order)
    margin          the Queue's "uncertainty" sort: smallest gap between the two most likely labels first
                    (Scheffer et al. 2001; small-text's BreakingTies picks the same pairs)
    entropy         the Queue's "entropy" sort: highest prediction entropy first (small-text's PredictionEntropy)
    kmeans          diversity: BERT-KM (Yuan et al., EMNLP 2020) as small-text's EmbeddingKMeans, k-means with k =
                    batch over the classifier's entity-pair representations, the pair nearest each centre
    image_reliance  the Queue's "image_reliance" sort: the pairs whose prediction leans most on the image first
                    (explain.reliance's score, the one Inspect shows; 0 by definition for a text-only model)
Strategies that read the model score a random sample of `pool_sample` unlabelled pairs each round, as small-text's
SubsampledQueryStrategy does (its default is 4096 too), which keeps a round of a 12k-pair pool to a minute of CPU.

Training: round 0 trains the recipe from its encoders on the seed set for `seed_epochs` epochs (shared by every
strategy of a seed); each later round warm-starts from the previous round's model and trains `round_epochs` over
all labelled pairs, as the app's retraining fine-tunes the active model. The curve's figures (area under the
learning curve, labels to reach a target F1) and the rule that names a winner are here too, so the benchmark, the
Queue's default and the Loop view read the same numbers.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

# strategy -> the Queue's sort that implements it (None: picked here, from embeddings)
QUERY_STRATEGIES: dict[str, str | None] = {
    "random": "random",
    "source_order": "source_order",
    "margin": "uncertainty",
    "entropy": "entropy",
    "kmeans": None,
    "image_reliance": "image_reliance",
}
# strategies that need the current model's output on the pool
SCORED_STRATEGIES = ("margin", "entropy", "kmeans", "image_reliance")
# the image-reliance order means something only for a model that reads the image
TEXT_STRATEGIES = ("random", "source_order", "margin", "entropy", "kmeans")
LOOP_DATASET = "loop"
SIMULATED_REVIEWER = "simulated reviewer"


@dataclass(frozen=True)
class LoopSettings:
    seed_size: int = 500
    batch: int = 250
    rounds: int = 8
    seed: int = 1
    seed_epochs: int = 4
    round_epochs: int = 1
    pool_sample: int = 4096  # 0: score the whole pool


@dataclass
class RoundResult:
    round: int
    labels: int  # labelled pairs the round's model was trained on
    val_f1: float
    val_precision: float
    val_recall: float
    picked_lines: list[int] = field(default_factory=list)  # train lines picked for this round
    picked_gold: dict[str, int] = field(default_factory=dict)  # their gold labels, counted
    select_seconds: float = 0.0
    train_seconds: float = 0.0
    cpu_seconds: float = 0.0  # process CPU time of the round (selection and training, every thread)


@dataclass
class LoopCurve:
    strategy: str
    settings: LoopSettings
    rounds: list[RoundResult]

    @property
    def labels(self) -> list[int]:
        return [r.labels for r in self.rounds]

    @property
    def f1(self) -> list[float]:
        return [r.val_f1 for r in self.rounds]

    def to_json(self) -> dict:
        return {
            "strategy": self.strategy,
            "settings": asdict(self.settings),
            "rounds": [asdict(r) for r in self.rounds],
        }

    @classmethod
    def from_json(cls, data: dict) -> LoopCurve:
        return cls(
            data["strategy"], LoopSettings(**data["settings"]), [RoundResult(**r) for r in data["rounds"]]
        )


def check_strategy(strategy: str) -> None:
    if strategy not in QUERY_STRATEGIES:
        raise ValueError(
            f"unknown query strategy {strategy!r}; expected one of {', '.join(QUERY_STRATEGIES)}"
        )


# ---------------------------------------------------------------------------------------------------------------
# Picking a batch: through the Queue, or k-means over embeddings


def unlabelled_pairs(session, dataset: str) -> list[int]:
    """The train pairs of `dataset` nobody has reviewed yet, in the dataset's order."""
    from db.review_queue import QueueFilter, review_queue

    return [
        item.pair_id
        for item in review_queue(
            session,
            QueueFilter(dataset=dataset, split="train", status="unreviewed"),
            "source_order",
            limit=10**9,
        )
    ]


def pick_batch(
    strategy: str,
    session,
    dataset: str,
    n: int,
    seed: int,
    version_key: int | None = None,
    scored_pairs: Sequence[int] = (),
    embeddings: np.ndarray | None = None,
) -> list[int]:
    """The `n` pairs `strategy` sends to review next: unreviewed train pairs of `dataset`.

    Queue strategies read the Queue with the predictions of `version_key` stored for the scored pairs; kmeans
    clusters `embeddings` (one row per pair of `scored_pairs`).
    """
    from db.review_queue import QueueFilter, review_queue

    check_strategy(strategy)
    sort = QUERY_STRATEGIES[strategy]
    if sort is not None:
        unreviewed = QueueFilter(dataset=dataset, split="train", status="unreviewed")
        # the image reliance is the one this round's model computed for the pool, whatever its variant
        items = review_queue(
            session,
            unreviewed,
            sort,
            limit=n,
            version_key=version_key,
            random_seed=seed,
            reliance_version_key=version_key,
        )
        if strategy in SCORED_STRATEGIES:
            # the Queue puts pairs without a prediction last: never let them in as if they had been ranked
            scored = set(scored_pairs)
            items = [item for item in items if item.pair_id in scored]
        return [item.pair_id for item in items]
    if embeddings is None or len(embeddings) != len(scored_pairs):
        raise ValueError("kmeans needs one embedding row per scored pair")
    from model.query_strategies import kmeans_positions

    positions = kmeans_positions(embeddings, n, seed)
    return [int(scored_pairs[i]) for i in positions]


def reveal(sessions, pair_ids: Sequence[int], origin: str = "simulation") -> None:
    """The simulated reviewer accepts the gold label of each pair, as a reviewer pressing A would."""
    from db.annotations import record_annotation

    with sessions.begin() as session:
        for pair_id in pair_ids:
            record_annotation(
                session,
                pair_id,
                status="accepted",
                annotator=SIMULATED_REVIEWER,
                expected_revision=0,
                origin=origin,
            )


# ---------------------------------------------------------------------------------------------------------------
# One simulated run


@dataclass
class LoopData:
    folder: Path
    train: list  # model.data records
    val: list
    label_names: list[str]


def load_loop_data(folder: str | Path) -> LoopData:
    from model.data import labels_by_id, load_split

    train, rel2id, _ = load_split(folder, "train")
    val, _, _ = load_split(folder, "val")
    return LoopData(Path(folder), train, val, labels_by_id(rel2id))


def _open_store(path: Path, data: LoopData):
    from db.io import import_mnre
    from db.schema import open_database

    path.unlink(missing_ok=True)
    engine, sessions = open_database(f"sqlite:///{path}")
    with sessions.begin() as session:
        import_mnre(session, data.folder, splits=["train"], dataset=LOOP_DATASET)
    return engine, sessions


def _pairs_by_line(sessions) -> dict[int, int]:
    from db.review_queue import QueueFilter, review_queue

    with sessions() as session:
        items = review_queue(
            session, QueueFilter(dataset=LOOP_DATASET, split="train"), "source_order", limit=10**9
        )
    return {item.pair_id: item.source_line for item in items}


def labelled_records(sessions, data: LoopData) -> list:
    """The train records a reviewer has labelled, with the labels the store holds."""
    from db.curation import curated_training_records

    with sessions() as session:
        return curated_training_records(session, data.train, LOOP_DATASET, "train", reviewed_only=True)


def seed_pairs(sessions, settings: LoopSettings) -> list[int]:
    with sessions() as session:
        return pick_batch("random", session, LOOP_DATASET, settings.seed_size, settings.seed)


def _train(cfg, records, data: LoopData, output_dir: Path, **changes):
    from model.train import train

    result = train(
        replace(cfg, output_dir=str(output_dir), progress=False, limit_train=None, **changes),
        train_records=records,
        val_records=data.val,
        label_names=data.label_names,
    )
    if not result.best_metrics:
        raise RuntimeError(f"training wrote no checkpoint under {output_dir}")
    return result


def train_seed_model(
    cfg, data: LoopData, settings: LoopSettings, folder: Path, log: Callable[[str], None] = print
):
    """Round 0 of every strategy of `settings.seed`: the recipe trained on the seed set (kept in folder/)."""
    from model.safe_write import atomic_file

    done = folder / "seed.json"
    if done.is_file():
        return json.loads(done.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    engine, sessions = _open_store(folder / "store.db", data)
    try:
        reveal(sessions, seed_pairs(sessions, settings), origin="seed")
        records = labelled_records(sessions, data)
    finally:
        engine.dispose()
    log(f"seed {settings.seed}: training on {len(records)} seed pairs for {settings.seed_epochs} epochs")
    started, cpu = time.monotonic(), time.process_time()
    result = _train(cfg, records, data, folder / "model", epochs=settings.seed_epochs, seed=settings.seed)
    seed_model = {
        "checkpoint": str(result.best_dir),
        "labels": len(records),
        "val": {k: result.best_metrics[k] for k in ("f1", "precision", "recall")},
        "train_seconds": time.monotonic() - started,
        "cpu_seconds": time.process_time() - cpu,
    }
    atomic_file(done, lambda tmp: tmp.write_text(json.dumps(seed_model, indent=1)))
    return seed_model


def score_pool(model_dir: str | Path, records: Sequence, feature_cache: str | None):
    from model.crossfit import record_probabilities_and_embeddings
    from model.evaluate import load_checkpoint

    model, tokenizer = load_checkpoint(model_dir)
    return record_probabilities_and_embeddings(model, tokenizer, list(records), feature_cache, batch_size=128)


def pool_image_reliance(
    model_dir: str | Path, records: Sequence, other_records: Sequence, feature_cache: str | None, seed: int
) -> list[float]:
    """Each record's image reliance under the model (explain.bundle.swapped_image_reliance, as Inspect computes it:
    the image masked out and k = 5 other posts' images swapped in)."""
    from explain.bundle import swapped_image_reliance
    from explain.inputs import encode_post
    from model.evaluate import load_checkpoint
    from model.visual_features import FeatureCache

    model, tokenizer = load_checkpoint(model_dir)
    cache = FeatureCache(feature_cache)
    scores = []
    for record in records:
        inputs = encode_post(model, tokenizer, record, cache)
        scores.append(
            swapped_image_reliance(model, tokenizer, inputs, list(other_records), 5, seed, cache).score
        )
    return scores


def select_round(
    strategy: str,
    sessions,
    data: LoopData,
    line_of_pair: dict[int, int],
    model_dir: Path,
    settings: LoopSettings,
    round_index: int,
    feature_cache: str | None,
) -> list[int]:
    """The pairs `strategy` picks with the model of the previous round (scored strategies score a pool sample)."""
    from db.provenance import register_checkpoint, save_predictions

    if strategy not in SCORED_STRATEGIES:
        with sessions() as session:
            return pick_batch(strategy, session, LOOP_DATASET, settings.batch, settings.seed)
    with sessions() as session:
        pool = unlabelled_pairs(session, LOOP_DATASET)
    sample = pool
    if settings.pool_sample and len(pool) > settings.pool_sample:
        sample = sorted(random.Random(f"{settings.seed}:{round_index}").sample(pool, settings.pool_sample))
    record_of_line = {record.line: record for record in data.train}
    sampled_records = [record_of_line[line_of_pair[pair_id]] for pair_id in sample]
    probabilities, embeddings = score_pool(model_dir, sampled_records, feature_cache)
    reliance: list[float | None] = [None] * len(sample)
    if strategy == "image_reliance":
        reliance = pool_image_reliance(model_dir, sampled_records, data.train, feature_cache, settings.seed)
    version_key = None
    if QUERY_STRATEGIES[strategy] is not None:
        with sessions.begin() as session:
            version_key = register_checkpoint(session, model_dir).id
            save_predictions(
                session,
                version_key,
                [
                    {
                        "pair_id": pair_id,
                        "probabilities": dict(zip(data.label_names, row.tolist(), strict=True)),
                        "image_reliance": score,
                    }
                    for pair_id, row, score in zip(sample, probabilities, reliance, strict=True)
                ],
            )
    with sessions() as session:
        return pick_batch(
            strategy,
            session,
            LOOP_DATASET,
            settings.batch,
            settings.seed + round_index,
            version_key,
            sample,
            embeddings,
        )


def simulate(
    strategy: str,
    cfg,
    data: LoopData,
    settings: LoopSettings,
    work: Path,
    log: Callable[[str], None] = print,
) -> LoopCurve:
    """One learning curve: `settings.rounds` rounds of `strategy` after the seed model (see the module docstring).

    work/seed-s<seed>/ holds the seed model (trained on the first call of a seed), work/<strategy>-s<seed>/ the
    run: its label store, the latest round's model and curve.json, written when the run completes (a finished run
    is read back, not repeated).
    """
    from model.safe_write import atomic_file

    check_strategy(strategy)
    folder = work / f"{strategy}-s{settings.seed}"
    done = folder / "curve.json"
    if done.is_file():
        curve = LoopCurve.from_json(json.loads(done.read_text()))
        if curve.settings == settings:
            return curve
    seed_model = train_seed_model(cfg, data, settings, work / f"seed-s{settings.seed}", log)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    engine, sessions = _open_store(folder / "store.db", data)
    try:
        line_of_pair = _pairs_by_line(sessions)
        seeds = seed_pairs(sessions, settings)
        reveal(sessions, seeds, origin="seed")
        seed_val = seed_model["val"]
        rounds = [
            RoundResult(
                0,
                seed_model["labels"],
                seed_val["f1"],
                seed_val["precision"],
                seed_val["recall"],
                picked_lines=[line_of_pair[pair_id] for pair_id in seeds],
                train_seconds=seed_model["train_seconds"],
                cpu_seconds=seed_model["cpu_seconds"],
            )
        ]
        previous = Path(seed_model["checkpoint"])
        for round_index in range(1, settings.rounds + 1):
            started, cpu = time.monotonic(), time.process_time()
            picked = select_round(
                strategy, sessions, data, line_of_pair, previous, settings, round_index, cfg.feature_cache
            )
            if not picked:
                log(f"{strategy} seed {settings.seed}: the pool is empty after round {round_index - 1}")
                break
            reveal(sessions, picked)
            selected = time.monotonic()
            records = labelled_records(sessions, data)
            result = _train(
                cfg,
                records,
                data,
                folder / f"round{round_index}",
                init_from=str(previous),
                epochs=settings.round_epochs,
                seed=settings.seed + round_index,
            )
            if previous.parent.parent == folder:
                # only the latest round's model is kept: the next round starts from it
                shutil.rmtree(previous.parent)
            previous = Path(result.best_dir)
            lines = [line_of_pair[pair_id] for pair_id in picked]
            picked_set = set(lines)
            gold = [record.relation for record in data.train if record.line in picked_set]
            rounds.append(
                RoundResult(
                    round_index,
                    len(records),
                    result.best_metrics["f1"],
                    result.best_metrics["precision"],
                    result.best_metrics["recall"],
                    picked_lines=lines,
                    picked_gold={label: gold.count(label) for label in sorted(set(gold))},
                    select_seconds=selected - started,
                    train_seconds=time.monotonic() - selected,
                    cpu_seconds=time.process_time() - cpu,
                )
            )
            log(
                f"{strategy} seed {settings.seed} round {round_index}: {len(records)} labels, "
                f"val micro-F1 {100 * result.best_metrics['f1']:.2f} ({time.monotonic() - started:.0f} s)"
            )
    finally:
        engine.dispose()
    curve = LoopCurve(strategy, settings, rounds)
    atomic_file(done, lambda tmp: tmp.write_text(json.dumps(curve.to_json(), indent=1)))
    return curve


# ---------------------------------------------------------------------------------------------------------------
# Reading curves: area under the learning curve, labels to reach a target, the winner


def area_under_curve(labels: Sequence[int], f1: Sequence[float]) -> float:
    """Normalised area under the learning curve (trapezoids over the labels axis, divided by its width): the mean
    F1 over the label budget, in the units of F1."""
    if len(labels) < 2:
        return float(f1[0]) if f1 else float("nan")
    return float(np.trapezoid(f1, labels) / (labels[-1] - labels[0]))


def labels_to_reach(labels: Sequence[int], f1: Sequence[float], target: float) -> int | None:
    """The first label count whose F1 reaches `target` (None: never within the curve)."""
    for count, value in zip(labels, f1, strict=True):
        if value >= target:
            return int(count)
    return None


@dataclass
class StrategySummary:
    strategy: str
    seeds: list[int]
    labels: list[int]
    mean_f1: list[float]
    std_f1: list[float]
    auc: list[float]  # per seed
    final_f1: list[float]  # per seed
    labels_to_random_final: int | None = (
        None  # mean curve's first label count reaching random's mean final F1
    )
    beats_random_on_every_seed: bool = False

    @property
    def mean_auc(self) -> float:
        return float(np.mean(self.auc))


def summarize_curves(curves: Sequence[LoopCurve]) -> dict[str, StrategySummary]:
    """Per strategy: the mean learning curve over seeds, AUC and final F1 per seed, the labels it needs to reach
    random's final F1, and whether its AUC beats random's on every seed random ran (same seed = same seed set)."""
    by_strategy: dict[str, dict[int, LoopCurve]] = {}
    for curve in curves:
        by_strategy.setdefault(curve.strategy, {})[curve.settings.seed] = curve
    summaries = {}
    for strategy, per_seed in by_strategy.items():
        seeds = sorted(per_seed)
        length = min(len(per_seed[s].rounds) for s in seeds)
        f1 = np.array([per_seed[s].f1[:length] for s in seeds])
        labels = per_seed[seeds[0]].labels[:length]
        summaries[strategy] = StrategySummary(
            strategy,
            seeds,
            labels,
            f1.mean(0).tolist(),
            f1.std(0).tolist(),
            [area_under_curve(labels, row) for row in f1],
            f1[:, -1].tolist(),
        )
    baseline = summaries.get("random")
    if baseline is not None:
        target = float(np.mean(baseline.final_f1))
        random_auc = dict(zip(baseline.seeds, baseline.auc, strict=True))
        for summary in summaries.values():
            summary.labels_to_random_final = labels_to_reach(summary.labels, summary.mean_f1, target)
            # a contender has run every seed random ran: a win on fewer seeds is not evidence
            ran_them_all = set(random_auc) <= set(summary.seeds)
            summary.beats_random_on_every_seed = ran_them_all and all(
                auc > random_auc[s]
                for s, auc in zip(summary.seeds, summary.auc, strict=True)
                if s in random_auc
            )
    return summaries


def winning_strategy(summaries: dict[str, StrategySummary]) -> str:
    """The strategy with the highest mean AUC among those whose AUC beats random's on every seed; random if none
    does (or if random was not run)."""
    if "random" not in summaries:
        return "random"
    contenders = [s for s in summaries.values() if s.strategy != "random" and s.beats_random_on_every_seed]
    if not contenders:
        return "random"
    return max(contenders, key=lambda s: s.mean_auc).strategy


def expected_gain(
    labels: Sequence[int], mean_f1: Sequence[float], labels_then: int, labels_now: int
) -> float | None:
    """The F1 a measured learning curve gains between two label counts (linear between its points); None when
    either count lies outside the curve, where it says nothing."""
    if not labels or not labels[0] <= labels_then <= labels[-1] or not labels[0] <= labels_now <= labels[-1]:
        return None
    return float(np.interp(labels_now, labels, mean_f1) - np.interp(labels_then, labels, mean_f1))
