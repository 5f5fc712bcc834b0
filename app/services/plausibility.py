"""Plausibility in the app, without Streamlit: one post's explanations scored against its stored rationale (Inspect),
and the method x model version table of a dataset (the Experiments page's `plausibility` job and
`python -m app.plausibility`). The metrics are explain.plausibility's; faithfulness (comprehensiveness,
sufficiency) sits beside them, never blended into one number.

    post_rationale(sessions, pair_id)                 the reviewer's current rationale, else the dataset's own
    token_plausibility(scores, word_index, ...)       token F1 / IOU F1 / AUPRC of one token attribution
    map_plausibility(heatmap, rationale)              pointing game / mass in box of one map over the image
    attention_plausibility(maps, inputs, ...)         the attention view Inspect draws, scored like a map
    dataset_plausibility(sessions, dataset, model)    PlausibilityResult: the table of one model version
    stored_results(sessions)                          the stored tables (worker jobs and command-line runs alike)
    table_rows(outcomes)                              the Experiments page's rows from stored job outcomes

The work runs as a `plausibility` job: queued from the Experiments page and run by the worker, or run in its own
process by `python -m app.plausibility` (app/plausibility.py, through app.jobs.runner.run_here): the same runner, the
same jobs row and outcome, so both show in the same table with who ran them, when and how.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import sessionmaker

from app.services.rationales import Rationale, pair_rationale
from explain.plausibility import (
    attention_grids,
    candidate_words,
    image_metrics,
    token_metrics,
    upsample_grid,
    word_scores,
)

PLAUSIBILITY_COLUMNS = ("token_f1", "iou_f1", "auprc", "pointing_game", "mass_in_box")
FAITHFULNESS_COLUMNS = ("comprehensiveness", "sufficiency")
# the table's provenance columns -> the keys stored_results adds to each job outcome
PROVENANCE_COLUMNS = {"run by": "run_by", "finished": "finished", "how": "how", "job": "job"}
CLI = "python -m app.plausibility"


def post_rationale(sessions: sessionmaker, pair_id: int) -> Rationale | None:
    with sessions() as session:
        return pair_rationale(session, pair_id)


def token_plausibility(
    piece_scores: Sequence[float],
    word_index: Sequence[int],
    n_words: int,
    entity_spans: list[tuple[int, int]],
    rationale: Rationale | None,
) -> dict[str, float] | None:
    """token_f1, iou_f1, auprc of a token attribution (word = sum of its pieces) against the rationale's words;
    None when the rationale marks no word or one the model did not read (cut by truncation)."""
    if rationale is None or not rationale.tokens:
        return None
    scores, seen = word_scores(np.asarray(piece_scores, dtype=np.float64), list(word_index), n_words)
    candidates = candidate_words(n_words, entity_spans, seen)
    gold = np.zeros(n_words, dtype=bool)
    gold[list(rationale.tokens)] = True
    if (gold & ~candidates).any():
        return None
    metrics = token_metrics(scores, gold, candidates)
    return {name: metrics[name] for name in ("token_f1", "iou_f1", "auprc")}


def map_plausibility(heatmap: np.ndarray, rationale: Rationale | None) -> dict[str, float] | None:
    """pointing_game (1.0 / 0.0) and mass_in_box of a map over the original image (height, width) against the
    rationale's box; None without a box."""
    if rationale is None or rationale.box is None:
        return None
    metrics = image_metrics(heatmap, rationale.box)
    return {"pointing_game": float(metrics["pointing_game"]), "mass_in_box": float(metrics["mass_in_box"])}


def attention_view_name(layer: int | None, head: int | None, rollout: bool) -> str | None:
    """explain.plausibility.attention_views' name of the view Inspect draws (layer = the fused layer's number);
    None for a head averaged over layers, which that function does not build."""
    if rollout:
        return "attention rollout"
    if layer is None:
        return None if head is not None else "attention, mean of layers and heads"
    return (
        f"attention, layer {layer}, mean of heads"
        if head is None
        else f"attention, layer {layer}, head {head}"
    )


def attention_plausibility(
    maps, inputs, layer: int | None, head: int | None, rollout: bool, rationale: Rationale | None
) -> dict[str, float] | None:
    """The attention view Inspect draws (read at the classifier's rows, the two opening entity markers) as a 7x7
    map over the image, scored against the box; None without a box or when the model has no grid keys."""
    if rationale is None or rationale.box is None or rationale.image_size is None:
        return None
    name = attention_view_name(layer, head, rollout)
    if name is None:
        return None
    heads = [(maps.layers.index(layer), head)] if layer is not None and head is not None else None
    grids = attention_grids(maps, inputs, heads)
    if name not in grids:
        return None
    return map_plausibility(upsample_grid(grids[name], rationale.image_size), rationale)


# ----------------------------------------------------------------------------------------------------------------
# Per dataset


@dataclass(frozen=True)
class PlausibilityResult:
    """One model version's table on a dataset split: explain.plausibility.PlausibilityTable.to_json() plus where
    it came from; `n_with_rationale` counts the split's pairs that carry a rationale (scored or not)."""

    dataset: str
    split: str
    model_version: str
    n_with_rationale: int
    table: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "model_version": self.model_version,
            "n_with_rationale": self.n_with_rationale,
            "table": self.table,
        }


def resolve_model(sessions: sessionmaker, version_or_folder: str) -> tuple[str, str]:
    """(version id, checkpoint folder) of a registered version id, or of a checkpoint folder (its config's
    version id, else the folder)."""
    from pathlib import Path

    from app.services.store import registered_versions

    versions = registered_versions(sessions)
    if version_or_folder in versions:
        return version_or_folder, str(versions[version_or_folder].folder)
    if Path(version_or_folder).is_dir():
        return "", version_or_folder
    raise ValueError(
        f"{version_or_folder!r} is neither a registered model version ({', '.join(versions) or 'none'}) nor a "
        "checkpoint folder"
    )


def dataset_plausibility(
    sessions: sessionmaker,
    dataset: str,
    version_or_folder: str,
    split: str = "val",
    limit: int | None = None,
    n_steps: int = 16,
    feature_cache: str | None = None,
    progress: Callable[[float, str], Any] | None = None,
) -> PlausibilityResult:
    """explain.plausibility.plausibility_table of one model on the stored rationales of a dataset's split (a
    reviewer's where one is in effect, else the dataset's own: db.export_rows.rationales_for_scoring), the posts'
    records read from the label store (app.services.inference.model_records)."""
    from app.services.inference import model_records
    from app.services.paths import feature_cache_dir
    from db.export_rows import rationales_for_scoring
    from explain.plausibility import plausibility_table
    from model.checkpoint import load_checkpoint

    version_id, folder = resolve_model(sessions, version_or_folder)
    with sessions() as session:
        rationales = rationales_for_scoring(session, dataset, split)
        pair_ids = [r.pair_id for r in rationales.values() if r.pair_id is not None]
        if limit:
            pair_ids = pair_ids[:limit]
        model, tokenizer = load_checkpoint(folder)
        records = model_records(session, pair_ids, model.config)[0] if pair_ids else []
    version = version_id or str(model.config.version_id or folder)
    if progress:
        progress(0.0, f"{version}: scoring {len(records)} posts with rationales")
    start = time.perf_counter()
    table = plausibility_table(
        model,
        tokenizer,
        records,
        rationales,
        split,
        feature_cache or str(feature_cache_dir()),
        n_steps=n_steps,
        # each (method, post) as it starts, with the version: "v3a9: post 4/40: visual IG"
        progress=(lambda fraction, message: progress(fraction, f"{version}: {message}"))
        if progress
        else None,
    )
    table.seconds = time.perf_counter() - start
    if progress:
        progress(1.0, f"{version}: scored {table.n_posts} posts")
    return PlausibilityResult(dataset, split, version, len(rationales), table.to_json())


def table_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Method x model version rows from PlausibilityResult.to_json() dicts (the job outcomes): plausibility columns
    and faithfulness columns side by side, never combined; None where a metric does not apply; who ran it, when and
    how (stored_results adds them; None for a result not read from the store)."""
    rows = []
    for result in results:
        for row in result["table"]["rows"]:
            rows.append(
                {
                    "method": row["method"],
                    "model_version": result["model_version"],
                    "dataset": result["dataset"],
                    "split": result["split"],
                    "evidence": "words" if row["kind"] == "tokens" else "box",
                    "posts scored": row["n_posts"],
                    "posts with rationales": result["n_with_rationale"],
                    **{m: row["metrics"].get(m) for m in PLAUSIBILITY_COLUMNS},
                    **{m: row["faithfulness"].get(m) for m in FAITHFULNESS_COLUMNS},
                    **{column: result.get(key) for column, key in PROVENANCE_COLUMNS.items()},
                }
            )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """Rows as a Markdown table: plausibility in percent, faithfulness as probabilities, '-' where not applicable."""
    head = [
        "method",
        "model_version",
        "evidence",
        "posts scored",
        *PLAUSIBILITY_COLUMNS,
        *FAITHFULNESS_COLUMNS,
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [str(row[c]) for c in head[:4]]
        cells += ["-" if row[m] is None else f"{100 * row[m]:.1f}" for m in PLAUSIBILITY_COLUMNS]
        cells += ["-" if row[m] is None else f"{row[m]:.3f}" for m in FAITHFULNESS_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stored_results(sessions: sessionmaker, limit: int = 50) -> list[dict[str, Any]]:
    """The outcomes of the succeeded plausibility jobs (the worker's and the command line's alike), newest first,
    the latest per (dataset, split, model version) only: what the Experiments page's table shows. Each carries
    where it came from: job (its id), run_by (who started it), finished (UTC, to the minute) and how ("worker"
    or the command line)."""
    from db.jobs import jobs_of_kind

    with sessions() as session:
        jobs = [
            (job.id, job.status, job.outcome, job.started_by, job.finished_at, (job.params or {}).get("via"))
            for job in jobs_of_kind(session, "plausibility", limit)
        ]
    latest: dict[tuple, dict[str, Any]] = {}
    for job_id, status, outcome, started_by, finished_at, via in jobs:
        if status != "succeeded" or not outcome or "table" not in outcome:
            continue
        provenance = {
            "job": job_id,
            "run_by": started_by,
            "finished": finished_at.strftime("%Y-%m-%d %H:%M UTC") if finished_at else None,
            "how": CLI if via == "cli" else "worker",
        }
        latest.setdefault(
            (outcome["dataset"], outcome["split"], outcome["model_version"]), {**outcome, **provenance}
        )
    return list(latest.values())


def finished_job(sessions: sessionmaker, job_id: int):
    """app.services.job_board.JobView of a job (the command line reads its outcome or error back)."""
    from app.services.job_board import job_view
    from db.jobs import get_job

    with sessions() as session:
        return job_view(get_job(session, job_id))
