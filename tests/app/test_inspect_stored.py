"""Inspect draws a stored result without computing it, and the server's warming loads the active model once, off
the page's script run, even when a page asks for it while it loads."""

from __future__ import annotations

import threading
import time

from db.models import ModelVersion
from db.schema import open_database
from tests.app.conftest import no_exceptions


def _store_results(url: str, pair_id: int) -> dict:
    """Every kind of Inspect result for `pair_id` at the page's default settings, computed and stored by the
    functions the worker's job uses; returns them by kind."""
    from sqlalchemy import select

    from app.services.paths import feature_cache_dir
    from app.services.stored_explanations import DEFAULT_SETTINGS, KINDS, compute, encode, store_result
    from model.checkpoint import load_checkpoint

    engine, sessions = open_database(url)
    with sessions() as session:
        version = session.scalar(select(ModelVersion).where(ModelVersion.is_active))
        version_key, path = version.id, version.path
    model, tokenizer = load_checkpoint(path)
    cache = str(feature_cache_dir())
    inputs = encode(model, tokenizer, sessions, pair_id, cache)
    results = {
        kind: compute(kind, model, tokenizer, inputs, sessions, pair_id, DEFAULT_SETTINGS[kind], cache)
        for kind in KINDS
    }
    with sessions.begin() as session:
        for kind, result in results.items():
            assert store_result(session, pair_id, version_key, kind, DEFAULT_SETTINGS[kind], result, "test")
    engine.dispose()
    return results


def test_inspect_draws_stored_results_and_computes_nothing(make_app, seeded_url, monkeypatch):
    import app.services.stored_explanations
    from app.ui.explanation_panels import background

    results = _store_results(seeded_url, 1)

    def recompute(*args, **kwargs):
        raise AssertionError("Inspect recomputed a stored result")

    monkeypatch.setattr(app.services.stored_explanations, "compute", recompute)
    at = make_app(seeded_url, "views/inspect.py")  # pair 1: the page's default
    no_exceptions(at)
    assert at.number_input(key="inspect_pair").value == 1
    # drawn in the first run, from the store: no progress bar, no job for this store
    assert not at.get("progress"), [p.proto.text for p in at.get("progress")]
    assert not [key for key in background().jobs if seeded_url in key]
    metrics = {m.label: m.value for m in at.metric}
    tokens_faith = results["tokens"][1]
    assert metrics["Tokens comprehensiveness"] == f"{tokens_faith.comprehensiveness:.3f}"
    assert metrics["Reliance score"] == f"{results['reliance'].score:.3f}"
    charts = {chart.proto.id for chart in at.get("plotly_chart")}
    assert len(charts) >= 5, "attention, scene graph, tokens, visual and reliance charts"
    assert any("Read from the label store" in c.value for c in at.caption)

    # other settings have no stored result: those panels start their jobs (which here fail loudly)
    at.select_slider(key="inspect_steps").set_value(8).run()
    started = [job for key, job in background().jobs.items() if seeded_url in key]
    # IG steps is a setting of both attribution panels; reliance keeps its stored result
    assert sorted(job.kind for job in started) == ["tokens", "visual"]
    for job in started:  # they end before the next test
        assert isinstance(job.future.exception(timeout=60), AssertionError)


def test_warming_loads_the_model_once_off_the_page_even_when_inspect_asks_meanwhile(
    make_app, seeded_url, monkeypatch
):
    import app.ui.explanation_panels
    import model.checkpoint
    from app.serve import warm
    from app.ui.resources import load_model

    monkeypatch.setenv("DATABASE_URL", seeded_url)
    monkeypatch.setattr(app.ui.explanation_panels, "_worker_models", {})
    load_model.clear()
    real_load = model.checkpoint.load_checkpoint
    loads: list[str] = []

    def slow_load(path):
        loads.append(threading.current_thread().name)
        time.sleep(1.5)  # long enough for the page to ask while this load runs
        return real_load(path)

    monkeypatch.setattr(model.checkpoint, "load_checkpoint", slow_load)
    warming = threading.Thread(target=warm, name="mrelens-warm")
    warming.start()
    deadline = time.time() + 30
    while not loads and time.time() < deadline:
        time.sleep(0.05)
    assert loads == ["mrelens-warm"], "the warming thread is loading the page's copy"
    at = make_app(seeded_url, "views/inspect.py")
    no_exceptions(at)
    warming.join(30)
    assert any("predicts" in m.value for m in at.markdown)
    # one load for the pages (the warming thread's, which the page waited for) and one for the Inspect worker
    # thread's own copy; none in the page's script run
    assert sorted(loads) == ["inspect-explain_0", "mrelens-warm"], loads
    load_model.clear()
