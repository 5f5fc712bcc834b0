"""Review's next pairs, made ready while the reviewer reads the current one.

A Review key press reruns only the review panel (an st.fragment); what that rerun costs is reading the pair and
drawing it. The expensive parts of drawing a pair the first time are computed ahead here, on one background thread
per process, right after the panel has drawn the current pair, for the pairs a key shows next: the queue's next two
and its previous one, and at the end of a queue handed out under leases the pair the leases would give next
(app.services.leases.peek_next_pair, nothing taken). For each of them:

- the pair's view (app.ui.review_actions.pair_view: the store read, keyed by pair id and model version id);
- the active model's prediction when none is stored yet (run once and stored, `scored_view`: the page and the
  thread share one st.cache_data entry per pair and version, so the one that comes second waits for the first and
  never runs the model twice);
- the objects drawn on the image (app.ui.explanation_panels.post_objects: the stored boxes, else the offline CAM
  grounder's guesses, the costliest step of a new pair) and the image with its boxes drawn
  (app.ui.review_actions.boxed_image);
- the probability chart (`probability_chart`, one figure per prediction).

A thread rather than more work at the end of the panel's run: the run ends (and the browser stops showing it as
running) as soon as the pair is drawn, and a key press during the warm-up is not held behind it. The thread runs
without the session's script context, so nothing it computes can draw into a page. A failure there is logged and
the page computes that pair itself when it is shown, reporting the error as it always did.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import plotly.graph_objects as go
import streamlit as st
from PIL import Image
from streamlit.logger import get_logger
from streamlit.runtime.scriptrunner_utils import script_run_context

from app.services.inference import predict_pair
from app.services.leases import peek_next_pair
from app.services.store import PairView
from app.ui.explanation_panels import post_objects
from app.ui.render import probability_figure
from app.ui.resources import get_sessions, load_model, store_url
from app.ui.review_actions import boxed_image, pair_view
from app.ui.state import ReviewSession
from db.model_versions import ModelVersionInfo
from explain.scene_graph_figures import object_caption
from model.grounding import GroundedObject

LOG = get_logger(__name__)
AHEAD = (
    2  # pairs warmed past the one shown: a decision or N moves one pair on; two cover a quick second press
)
CHART_TOP = 10  # labels the chart shows
THREAD_NAME = "review-prefetch"
PRIORITY_DROP = 10  # nice steps below the server's threads


@st.cache_data(max_entries=1000, show_spinner=False)
def _prediction(url: str, pair_id: int, version_id: str, folder: str, version_key: int) -> dict[str, float]:
    """The active model's prediction of a pair the store had none for: run once and stored."""
    model, tokenizer = load_model(folder)
    return predict_pair(get_sessions(), model, tokenizer, version_key, pair_id)


def scored_view(url: str, pair_id: int, active: ModelVersionInfo | None) -> PairView:
    """The pair's view with the active model's prediction: the stored one, else the model is run on the pair now
    and its prediction stored (raises what the model raises: OSError, ValueError)."""
    version = active.version_id if active else None
    view = pair_view(url, pair_id, version)
    if view.probabilities is None and active is not None:
        _prediction(url, pair_id, active.version_id, active.folder, active.key)
        pair_view.clear(url, pair_id, version)  # this pair's entry only: the warmed ones stay
        view = pair_view(url, pair_id, version)
    return view


def drawn_objects(url: str, pair_id: int) -> list[GroundedObject]:
    """The objects Review draws on the post's image: those with a box."""
    return [o for o in post_objects(url, pair_id) if o.box is not None]


def pair_image(url: str, view: PairView) -> tuple[Image.Image, list[GroundedObject]]:
    """The post's image with its objects' boxes drawn (a guess dotted), and those objects."""
    objects = drawn_objects(url, view.pair_id)
    boxes = tuple((o.box, object_caption(o.label, o.source), o.source == "cam-fallback") for o in objects)
    return boxed_image(view.image_path, boxes), objects


@st.cache_resource(max_entries=200, show_spinner=False)
def probability_chart(probabilities: dict[str, float], gold: str | None) -> go.Figure:
    """Review's probability chart of one prediction, built once (st.plotly_chart reads the figure and never changes
    it, so the one object is shared, not copied)."""
    return probability_figure(probabilities, CHART_TOP, gold=gold)


def warm_pair(url: str, pair_id: int, active: ModelVersionInfo | None) -> None:
    """Everything Review computes to show `pair_id` the first time, computed now and left in the caches. Work
    queued for a store that is no longer the app's (DATABASE_URL changed) is dropped."""
    if url != store_url():
        return
    view = scored_view(url, pair_id, active)
    if view.image_path:
        pair_image(url, view)
    if view.probabilities:
        probability_chart(view.probabilities, view.gold_label)


def _lower_priority() -> None:
    """The thread yields the CPU to the page's own runs: its nice value is raised by PRIORITY_DROP (Linux: per
    thread; elsewhere it stays as it is, said once in the log)."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + PRIORITY_DROP))
    except (AttributeError, OSError) as err:
        LOG.info("Review's prefetch thread keeps the server's priority: %s", err)


class _NoContextWarning(logging.Filter):
    """The thread has no script context on purpose: Streamlit's warning about that (on every cached call that could
    draw a spinner) is dropped for this thread only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.args and str(record.args[0]).startswith(THREAD_NAME))


class Prefetcher:
    """One thread per process warming the pairs Review will show next; work already queued is not queued again."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=THREAD_NAME, initializer=_lower_priority
        )
        get_logger(script_run_context.__name__).addFilter(_NoContextWarning())
        self.pending: set[tuple] = set()
        self.lock = threading.Lock()

    def submit(self, key: tuple, fn: Callable[..., object], *args) -> bool:
        """Run `fn(*args)` on the thread; False when the work of `key` is queued or running already."""
        with self.lock:
            if key in self.pending:
                return False
            self.pending.add(key)
        self.executor.submit(self._run, key, fn, *args)
        return True

    def _run(self, key: tuple, fn: Callable[..., object], *args) -> None:
        try:
            fn(*args)
        except Exception:  # noqa: BLE001  (logged; the page computes the pair itself when shown and reports it)
            LOG.exception("Review could not prepare %s ahead; it is computed when shown", key)
        finally:
            with self.lock:
                self.pending.discard(key)

    def wait(self) -> None:
        """Until the work queued so far has run (tests, benchmarks)."""
        self.executor.submit(lambda: None).result()


@st.cache_resource(show_spinner=False)
def prefetcher() -> Prefetcher:
    return Prefetcher()


def next_pairs(queue: list[int], position: int, ahead: int = AHEAD) -> list[int]:
    """The pairs after `position` that a decision or N shows next, and the one before (P)."""
    after = queue[position + 1 : position + 1 + ahead]
    before = queue[position - 1 : position] if position > 0 else []
    return after + before


def warm_next_leased(url: str, sessions, reviewer: str, exclude: list[int], active) -> None:
    """Warm the pair the leases would hand `reviewer` after the end of their queue (not taken: see
    app.services.leases.peek_next_pair)."""
    if url != store_url():
        return
    pair_id = peek_next_pair(sessions, reviewer, exclude)
    if pair_id is not None:
        warm_pair(url, pair_id, active)


def prefetch_next(review: ReviewSession, reviewer: str, active: ModelVersionInfo | None) -> list[tuple]:
    """Warm, in the background, the pairs the reviewer sees next: the queue's next pairs and the previous one, and
    at the end of a queue handed out under leases the pair the leases give next. The work queued now (keys)."""
    url, version = store_url(), active.version_id if active else None
    work = [
        ((url, pair_id, version), warm_pair, url, pair_id, active)
        for pair_id in next_pairs(review.queue, review.position)
    ]
    leased = bool(review.queue) and review.queue == review.leased
    if leased and review.position + AHEAD >= len(review.queue):
        queue = list(review.queue)
        key = ("next lease", url, reviewer, tuple(queue), version)
        work.append((key, warm_next_leased, url, get_sessions(), reviewer, queue, active))
    return [key for key, fn, *args in work if prefetcher().submit(key, fn, *args)]
