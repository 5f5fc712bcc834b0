"""The expensive explanation results Inspect shows for a pair, computed once and kept in the label store.

    compute(kind, model, tokenizer, inputs, sessions, pair_id, settings, cache_dir)   explain/'s functions
    stored_result(session, pair_id, version_key, kind, settings) -> result | None
    store_result(session, pair_id, version_key, kind, settings, result, created_by) -> bool   (a reliance score
                                                                              also on the version's prediction)
    explain_top_of_queue(sessions, model, tokenizer, version_key, n, ...)               the worker's job

Kinds and their results: "tokens" -> (TokenAttribution, Faithfulness); "visual" -> (VisualAttribution or None,
Faithfulness or None); "reliance" -> ImageReliance. One path: Inspect's background jobs (app.ui.explanation_panels) and the
worker's explanations job both call compute(), which is explain.bundle.explain_part (the assembly predict --explain
and the benchmarks run too) with the pair's other posts read from the label store; the settings are
explain.bundle.DEFAULT_SETTINGS. Each whole result (every number a figure is drawn from) is stored as one row per
(pair, model version, kind, settings), so a stored row is always complete and Inspect draws from it without
computing. No Streamlit here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from explain.bundle import DEFAULT_SETTINGS  # the one set of defaults

KINDS = tuple(DEFAULT_SETTINGS)  # "tokens", "visual", "reliance"
METHODS = {kind: f"inspect:{kind}" for kind in KINDS}  # the explanations table's method column
RESULT_FORMAT = 1  # bumped when the stored layout changes; rows of another format are not read
RELIANCE_CANDIDATES = 300  # other posts of the dataset the swapped-in images are drawn from


def default_split(splits: list[str]) -> str | None:
    """The split the Queue opens on: val (the held-out split) when the store has one, else the first."""
    return "val" if "val" in splits else (splits or [None])[0]


def encode(model, tokenizer, sessions: sessionmaker, pair_id: int, cache_dir: str):
    """The pair's PostInputs, encoded as training and Inspect encode it."""
    from app.services.inference import pair_records
    from explain import encode_post

    with sessions() as session:
        record = pair_records(session, [pair_id], model.config)[0]
    return encode_post(model, tokenizer, record, cache_dir)


def compute(
    kind: str, model, tokenizer, inputs, sessions: sessionmaker, pair_id: int, settings: dict, cache_dir: str
):
    """One panel's result for an encoded pair: explain.bundle.explain_part, the reliance test drawing the swapped-in
    images from other posts of the label store."""
    from explain.bundle import explain_part

    others = []
    if kind == "reliance" and inputs.has_image:
        from app.services.inference import pair_records
        from db.datasets import other_pairs_with_image

        with sessions() as session:
            other_pairs = other_pairs_with_image(session, pair_id, RELIANCE_CANDIDATES)
            others = pair_records(session, other_pairs, model.config)
    return explain_part(kind, model, tokenizer, inputs, settings, others, cache_dir)


# ---------------------------------------------------------------------------------------------------------------
# Results as JSON and back (numpy arrays as lists; Faithfulness.per_fraction's float keys as strings)


def _json_default(value):
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-able")


def _plain(obj) -> dict | None:
    if obj is None:
        return None
    data = {field_info.name: getattr(obj, field_info.name) for field_info in dataclasses.fields(obj)}
    return json.loads(json.dumps(data, default=_json_default))


def _faithfulness(data: dict | None):
    from explain import Faithfulness

    if data is None:
        return None
    return Faithfulness(**{**data, "per_fraction": {float(k): v for k, v in data["per_fraction"].items()}})


def to_json(kind: str, result) -> dict[str, Any]:
    if kind == "reliance":
        return {"reliance": _plain(result)}
    attribution, faith = result
    return {"attribution": _plain(attribution), "faithfulness": _plain(faith)}


def from_json(kind: str, data: dict[str, Any]):
    import numpy as np

    from explain import ImageReliance, TokenAttribution, VisualAttribution

    if kind == "reliance":
        fields = data["reliance"]
        return ImageReliance(**{**fields, "p_swapped": np.asarray(fields["p_swapped"], dtype=float)})
    fields, faith = data["attribution"], _faithfulness(data["faithfulness"])
    if kind == "tokens":
        return TokenAttribution(**{**fields, "scores": np.asarray(fields["scores"], dtype=float)}), faith
    if fields is None:
        return None, faith
    arrays = {k: np.asarray(fields[k], dtype=float) for k in ("crop_scores", "region_scores")}
    return VisualAttribution(**{**fields, **arrays}), faith


# ---------------------------------------------------------------------------------------------------------------
# The label store


def stored_result(session: Session, pair_id: int, version_key: int | None, kind: str, settings: dict):
    """The result stored for (pair, model version, kind, settings) in this format, or None."""
    from db.provenance import find_explanation

    row = find_explanation(session, pair_id, METHODS[kind], settings, version_key)
    if row is None or (row.summary or {}).get("format") != RESULT_FORMAT:
        return None
    return from_json(kind, row.summary["result"])


def store_result(
    session: Session,
    pair_id: int,
    version_key: int | None,
    kind: str,
    settings: dict,
    result,
    created_by: str | None = None,
) -> bool:
    """Store a whole result once per (pair, model version, kind, settings); True when written now."""
    from db.provenance import find_explanation, save_explanation

    if find_explanation(session, pair_id, METHODS[kind], settings, version_key) is not None:
        return False
    summary = {"format": RESULT_FORMAT, "kind": kind, "result": to_json(kind, result)}
    save_explanation(session, pair_id, METHODS[kind], summary, dict(settings), version_key, created_by)
    if kind == "reliance" and version_key is not None:
        from db.provenance import set_image_reliance

        # on the version's stored prediction too: the Queue sorts by it (db.review_queue.image_reliance_source)
        set_image_reliance(session, pair_id, version_key, result.score)
    return True


# ---------------------------------------------------------------------------------------------------------------
# The worker's job: the top of the review queue, before a reviewer opens it


def queue_top(session: Session, version_key: int, n: int) -> list[int]:
    """The first n pairs of the Queue's default view (its default split, in its default order)."""
    from db.review_queue import DEFAULT_QUEUE_SORT, QueueFilter, queue_filter_values, review_queue

    split = default_split(queue_filter_values(session)["split"])
    items = review_queue(
        session, QueueFilter(split=split), sort=DEFAULT_QUEUE_SORT, limit=n, version_key=version_key
    )
    return [item.pair_id for item in items]


def explain_top_of_queue(
    sessions: sessionmaker,
    model,
    tokenizer,
    version_key: int,
    n: int,
    cache_dir: str,
    progress: Callable[[float, str], None] = lambda fraction, message: None,
    log: Callable[[str], None] = lambda line: None,
    created_by: str | None = None,
) -> dict[str, Any]:
    """Compute and store every kind of result (Inspect's default settings) for the top n pairs of the queue that
    lack one. Each pair's results are written in one transaction once all are computed, so a cancel (raised by
    `progress`) or an error leaves only complete results behind. A pair whose post cannot be read (a missing or
    broken image) is listed in the outcome with its error and the job goes on."""
    model.eval()
    with sessions() as session:
        pair_ids = queue_top(session, version_key, n)
    written, already, failed = 0, 0, []
    total = len(pair_ids)
    for k, pair_id in enumerate(pair_ids):
        progress(k / max(1, total), f"explanations: {k}/{total} pairs")
        with sessions() as session:
            missing = [
                kind
                for kind in KINDS
                if stored_result(session, pair_id, version_key, kind, DEFAULT_SETTINGS[kind]) is None
            ]
        if not missing:
            already += 1
            continue
        try:
            inputs = encode(model, tokenizer, sessions, pair_id, cache_dir)
        except (OSError, ValueError) as err:
            failed.append({"pair": pair_id, "error": f"{type(err).__name__}: {err}"})
            log(f"pair {pair_id}: not explained ({type(err).__name__}: {err})")
            continue
        results = {}
        for j, kind in enumerate(missing):
            results[kind] = compute(
                kind, model, tokenizer, inputs, sessions, pair_id, DEFAULT_SETTINGS[kind], cache_dir
            )
            progress(
                (k + (j + 1) / len(missing)) / total,
                f"explanations: {k}/{total} pairs done; pair {pair_id}: {kind}",
            )
        with sessions.begin() as session:
            for kind, result in results.items():
                store_result(session, pair_id, version_key, kind, DEFAULT_SETTINGS[kind], result, created_by)
        written += 1
    progress(1.0, f"explanations: {total}/{total} pairs")
    return {"pairs": total, "explained": written, "already_stored": already, "failed": failed}
