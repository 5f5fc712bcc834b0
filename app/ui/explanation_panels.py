"""Per-post explanation results for the Inspect page, through explain/'s functions (the same ones explain_post runs).

Two speeds:
- cheap (encode, prediction, attention; ~0.1 s): computed in the page's own run with st.cache_data, keyed by the
  database URL, pair id and model version id (a db.model_versions.ModelVersionInfo hashes as its version id), so
  the first panel shows at once;
- expensive (LayerIG, visual occlusion / IG, faithfulness, reliance; seconds each): one job per panel on a
  background thread that owns its own copy of the model (Captum hooks on one copy never touch the copy the page
  uses), results kept per (model, pair, settings). The page polls the job and fills the panel in when it is done;
  opening another pair cancels the previous pair's jobs that have not started (that browser session's own), so it
  never waits behind them.

Every expensive result is computed by app.services.stored_explanations.compute (the worker's explanation job calls the same
function) and stored whole in the label store per (pair, model version, kind, settings); Inspect reads the stored
result first (the worker precomputes the top of the queue when a model is activated) and starts a job only when
none is stored.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import streamlit as st
from streamlit.logger import get_logger

from app.services import stored_explanations
from app.services.inference import pair_records
from app.services.paths import feature_cache_dir
from app.ui.resources import get_sessions, load_version
from db.model_versions import ModelVersionInfo
from db.review_queue import pair_detail
from model.grounding import GroundedObject

LOG = get_logger(__name__)


def _record(pair_id: int, model_config):
    with get_sessions()() as session:
        return pair_records(session, [pair_id], model_config)[0]


# the per-post caches are keyed by the model's version id, whatever else its object holds (active flag, folder)
BY_VERSION_ID = {ModelVersionInfo: lambda version: version.version_id}


@st.cache_data(max_entries=64, show_spinner="Encoding the post ...", hash_funcs=BY_VERSION_ID)
def post_inputs(url: str, pair_id: int, version: ModelVersionInfo):
    from explain import encode_post

    model, tokenizer = load_version(version)
    return encode_post(model, tokenizer, _record(pair_id, model.config), str(feature_cache_dir()))


@st.cache_data(max_entries=64, show_spinner=False, hash_funcs=BY_VERSION_ID)
def prediction(url: str, pair_id: int, version: ModelVersionInfo):
    from explain import predict_post

    return predict_post(load_version(version)[0], post_inputs(url, pair_id, version))


@st.cache_data(max_entries=64, show_spinner="Reading the attention maps ...", hash_funcs=BY_VERSION_ID)
def attention(url: str, pair_id: int, version: ModelVersionInfo):
    from explain import token_object_attention

    return token_object_attention(load_version(version)[0], post_inputs(url, pair_id, version))


@st.cache_data(max_entries=200, show_spinner="Finding the objects on the image ...")
def post_objects(url: str, pair_id: int) -> list[GroundedObject]:
    """The objects Review draws on a post's image and Inspect's scene graph is built from, from one source: the
    post's crops stored with a box (GroundingDINO, a grounding run), else, for a post with an image, the offline
    CAM grounder's guesses (source "cam-fallback": drawn dotted, labels marked ?). A dataset's crops without a box
    (MNRE's img_vg) cannot be placed on the image: Review shows them beside it."""
    from app.ui.resources import load_cam_grounder
    from model.images import load_image

    with get_sessions()() as session:
        detail = pair_detail(session, pair_id)
        objects = [
            GroundedObject(
                (crop.box_x0, crop.box_y0, crop.box_x1, crop.box_y1),
                crop.label or "object",
                None,
                crop.score,
                crop.source,
            )
            for crop in detail.crops
            if crop.box_x0 is not None
        ]
        image_path = detail.post.image_path if detail.post.has_image else None
    if image_path and not objects:
        with load_image(image_path) as image:
            objects = load_cam_grounder().detect(image.convert("RGB"), None)
    return objects


@st.cache_data(max_entries=64, show_spinner="Building the scene graph and MEGA's alignment ...")
def scene_graph(url: str, pair_id: int):
    """(SceneGraph, MegaAlignment, image or None) over post_objects: the objects Review draws."""
    from model.images import load_image
    from model.mega_alignment import mega_alignment
    from model.scene_graph import build_scene_graph

    with get_sessions()() as session:
        detail = pair_detail(session, pair_id)
        tokens = list(detail.post.tokens)
        image_path = detail.post.image_path if detail.post.has_image else None
    image = load_image(image_path).convert("RGB") if image_path else None
    objects = post_objects(url, pair_id)
    graph = build_scene_graph(objects)
    alignment = mega_alignment(tokens, graph) if graph.nodes else None
    return graph, alignment, image


# ---------------------------------------------------------------------------------------------------------------
# Expensive panels: background jobs


@dataclass
class Job:
    """One expensive result being computed (or computed) for a (model, pair, settings) key."""

    kind: str
    pair_id: int
    future: Future
    owner: str = ""  # the browser session that asked first: only its own pair switch drops the job
    queued_at: float = field(default_factory=time.perf_counter)
    started_at: float | None = None
    finished_at: float | None = None

    stored: bool = False  # its result is in the label store

    @property
    def done(self) -> bool:
        return self.future.done()

    @property
    def succeeded(self) -> bool:
        return self.future.done() and not self.future.cancelled() and self.future.exception() is None

    def result(self):
        """The result; raises the job's own error (or CancelledError) when it failed."""
        return self.future.result()

    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.perf_counter()) - self.started_at


class Background:
    """One worker thread per process and the jobs it ran, newest last (bounded)."""

    def __init__(self, keep: int = 256):
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inspect-explain")
        self.jobs: OrderedDict[tuple, Job] = OrderedDict()
        self.durations: dict[str, float] = {}  # seconds the last finished job of each kind took
        self.keep = keep
        self.lock = threading.Lock()

    def submit(self, key: tuple, kind: str, pair_id: int, fn, *args, owner: str = "") -> Job:
        """The job for `key`: the running or finished one, else a new one queued behind the others."""
        with self.lock:
            job = self.jobs.get(key)
            # a failed job is kept (its error is shown), not retried on every rerun; a cancelled one starts again
            if job is not None and not job.future.cancelled():
                self.jobs.move_to_end(key)
                return job
            job = Job(kind, pair_id, Future(), owner)

            def run():
                job.started_at = time.perf_counter()
                try:
                    return fn(*args)
                finally:
                    job.finished_at = time.perf_counter()
                    self.durations[kind] = job.finished_at - job.started_at
                    LOG.info(
                        "explanation job %s for pair %s: %.2f s (queued %.2f s before it started)",
                        kind,
                        pair_id,
                        job.finished_at - job.started_at,
                        job.started_at - job.queued_at,
                    )

            job.future = self.executor.submit(run)
            self.jobs[key] = job
            while len(self.jobs) > self.keep:
                self.jobs.popitem(last=False)
            return job

    def cancel_other_pairs(self, pair_id: int, owner: str = "") -> int:
        """Drop `owner`'s queued jobs of other pairs (a running one finishes and is kept); returns how many."""
        with self.lock:
            dropped = [
                k
                for k, j in self.jobs.items()
                if j.owner == owner and j.pair_id != pair_id and j.future.cancel()
            ]
            for key in dropped:
                del self.jobs[key]
        return len(dropped)

    def waiting_before(self, job: Job) -> int:
        with self.lock:
            return sum(
                1
                for j in self.jobs.values()
                if j is not job and not j.done and j.queued_at <= job.queued_at and j.started_at is None
            ) + sum(1 for j in self.jobs.values() if j is not job and j.started_at and not j.done)


@st.cache_resource(show_spinner=False)
def background() -> Background:
    return Background()


# version id -> (model, tokenizer), touched by the worker thread only
_worker_models: dict[str, tuple] = {}


def worker_model(version: ModelVersionInfo):
    """The worker thread's own (model, tokenizer), loaded on that thread the first time (the page never waits for
    it); attribution hooks on this copy never reach the page's copy. At most two versions are kept."""
    if version.version_id not in _worker_models:
        from app.ui.resources import torch_threads
        from model.checkpoint import load_checkpoint

        torch_threads()
        while len(_worker_models) >= 2:
            _worker_models.pop(next(iter(_worker_models)))
        _worker_models[version.version_id] = load_checkpoint(version.folder)
    return _worker_models[version.version_id]


def _job(
    kind: str, version: ModelVersionInfo, inputs, sessions, pair_id: int, settings: dict, cache_dir: str
):
    model, tokenizer = worker_model(version)
    return stored_explanations.compute(kind, model, tokenizer, inputs, sessions, pair_id, settings, cache_dir)


def browser_session() -> str:
    """The id of the browser session running this script ("" outside a Streamlit run)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else ""


def job_key(kind: str, url: str, pair_id: int, version: ModelVersionInfo, settings: dict) -> tuple:
    return (kind, url, pair_id, version.version_id, tuple(sorted(settings.items())))


def start_job(kind: str, url: str, pair_id: int, version: ModelVersionInfo, **settings) -> Job:
    """The background job of one expensive panel ("tokens", "visual" or "reliance") for this pair and settings."""
    if kind not in stored_explanations.KINDS:
        raise ValueError(f"unknown explanation job {kind!r}")
    inputs = post_inputs(url, pair_id, version)
    return background().submit(
        job_key(kind, url, pair_id, version, settings),
        kind,
        pair_id,
        _job,
        kind,
        version,
        inputs,
        get_sessions(),
        pair_id,
        dict(settings),
        str(feature_cache_dir()),
        owner=browser_session(),
    )


def cancel_other_pairs(pair_id: int) -> int:
    """Drop this browser session's queued jobs for other pairs (another reviewer's jobs are left alone)."""
    return background().cancel_other_pairs(pair_id, browser_session())


def job_progress(job: Job, what: str) -> None:
    """A progress bar for a job still running or queued: elapsed time against the last job of its kind."""
    jobs = background()
    expected = jobs.durations.get(job.kind)
    if job.started_at is None:
        ahead = jobs.waiting_before(job)
        st.progress(
            0.0, text=f"{what}: queued behind {ahead} other computation{'s' if ahead != 1 else ''} ..."
        )
        return
    elapsed = job.elapsed()
    if expected:
        st.progress(min(elapsed / expected, 0.99), text=f"{what}: {elapsed:.1f} s of about {expected:.1f} s")
    else:
        st.progress(0.05, text=f"{what}: running for {elapsed:.1f} s ...")


# ---------------------------------------------------------------------------------------------------------------
# The label store: whole results, written once, read before anything is computed


def stored_result(pair_id: int, version_key: int, kind: str, settings: dict):
    """The whole result stored for (pair, model version, kind, settings) (precomputed by the worker, or by an
    earlier visit), or None."""
    with get_sessions()() as session:
        return stored_explanations.stored_result(session, pair_id, version_key, kind, settings)


def store_result(pair_id: int, version_key: int, kind: str, settings: dict, result) -> bool:
    """Keep a result a background job computed, so no later visit (in any process) computes it again."""
    with get_sessions().begin() as session:
        return stored_explanations.store_result(
            session, pair_id, version_key, kind, settings, result, st.session_state.get("reviewer") or None
        )


def result_or_job(kind: str, url: str, pair_id: int, version: ModelVersionInfo, settings: dict):
    """(result, job) of one panel: the result this process computed and its job (also once it is stored), else the
    stored result and no job (computed before: by the worker or an earlier visit), else the job's result once it is
    done (None while it runs or after it failed); a job's finished result is stored the first time it is read here.
    So job None means "read from the label store", and a page never calls a result it just computed that."""
    computed = background().jobs.get(job_key(kind, url, pair_id, version, settings))
    if computed is None or not computed.succeeded:
        stored = stored_result(pair_id, version.key, kind, settings)
        if stored is not None:
            return stored, None
    job = (
        computed
        if computed is not None and computed.succeeded
        else start_job(kind, url, pair_id, version, **settings)
    )
    if not job.succeeded:
        return None, job
    if not job.stored:
        store_result(pair_id, version.key, kind, settings, job.result())
        job.stored = True
    return job.result(), job


def faithfulness_numbers(faithfulness, label: str) -> None:
    """Comprehensiveness, sufficiency and the count of ranked units as metrics; `faithfulness` is a Faithfulness or its stored summary."""
    if faithfulness is None:
        st.caption(f"{label}: no faithfulness (nothing to remove).")
        return
    read_field = (
        faithfulness.get if isinstance(faithfulness, dict) else lambda name: getattr(faithfulness, name)
    )
    # the first label is the longest ("Tokens comprehensiveness"): in a third of half the page it ended in "..."
    c1, c2, c3 = st.columns([3, 2, 2])
    c1.metric(
        f"{label} comprehensiveness",
        f"{read_field('comprehensiveness'):.3f}",
        f"{read_field('comprehensiveness') - read_field('random_comprehensiveness'):+.3f} vs random",
        help="Drop in p(label) when the top-attributed units are removed (higher = more faithful).",
    )
    c2.metric(
        f"{label} sufficiency",
        f"{read_field('sufficiency'):.3f}",
        help="Drop in p(label) when only the top-attributed units are kept (lower = more faithful).",
    )
    c3.metric(
        "units ranked",
        read_field("n_units"),
        help="How many units the attribution ranks (tokens; or image regions and the post's crops): the two "
        "scores remove or keep its top-ranked share of them.",
    )


PLAUSIBILITY_LABELS = {
    "token_f1": ("token F1", "F1 of the top-k words (k = the rationale's length) against the marked words."),
    "iou_f1": ("IOU F1", "The top-k words as spans; a span matches a marked span at IOU >= 0.5 (ERASER)."),
    "auprc": ("AUPRC", "Average precision of the word scores against the marked words."),
    "pointing_game": (
        "pointing game",
        "1 when the map's maximum lies inside the evidence box (Zhang et al. 2016).",
    ),
    "mass_in_box": ("mass in box", "Share of the map's positive mass inside the evidence box."),
}


def plausibility_numbers(metrics: dict | None, rationale, label: str) -> None:
    """Plausibility of one explanation against the pair's rationale (app.services.plausibility), as metrics; a
    caption when there is nothing to score against. Drawn beside faithfulness, never combined with it."""
    if rationale is None:
        st.caption(f"{label} plausibility: this pair has no rationale (mark one on Review).")
        return
    if metrics is None:
        what = "words" if label == "Tokens" else "box"
        st.caption(
            f"{label} plausibility: the {rationale.source}'s rationale has no {what} this map can be scored on."
        )
        return
    columns = st.columns(len(metrics))
    for column, (name, value) in zip(columns, metrics.items(), strict=True):
        title, help_text = PLAUSIBILITY_LABELS[name]
        column.metric(f"{label} {title}", f"{value:.3f}", help=help_text)
    st.caption(
        f"Plausibility against the {rationale.source}'s rationale (a different question from faithfulness)."
    )


def job_failed(job: Job, what: str) -> bool:
    """Show the job's error in the page; True when it failed (or was cancelled)."""
    try:
        job.result()
    except CancelledError:
        st.info(f"{what}: cancelled (another pair was opened); it restarts on the next rerun.")
        return True
    except (OSError, ValueError, RuntimeError) as err:
        st.error(f"{what} failed: {err}")
        return True
    return False
