"""Queue filters and sorting, Add post, Export, Models, Inspect and Experiments on a seeded store."""

from __future__ import annotations

import json

from PIL import Image
from sqlalchemy import func, select

from db.annotations import record_annotation
from db.models import Annotation, EntityPair, Explanation, ModelVersion, Prediction
from db.schema import open_database
from tests.app.conftest import REVIEWER, no_exceptions


def _store(url: str):
    return open_database(url)


def test_queue_filters_sorts_and_opens_a_pair(make_app, seeded_url):
    engine, sessions = _store(seeded_url)
    with sessions.begin() as s:
        first = s.scalar(select(EntityPair.id).order_by(EntityPair.id).limit(1))
        record_annotation(s, first, status="rejected", annotator="ann", expected_revision=0)
    engine.dispose()
    at = make_app(seeded_url, "views/queue.py")
    no_exceptions(at)
    table = at.dataframe(key="queue_table").value
    assert set(table["split"]) == {"val"} and len(table) == 8, "a reviewer starts on one split (val)"
    # the default order: the annotation-loop benchmark's winner, entropy (highest first)
    assert table["entropy"].is_monotonic_decreasing, "uncertain pairs first"
    at.selectbox(key="queue_split").select_index(
        0
    ).run()  # "all", as a browser picks it (None would clear the box)
    assert len(at.dataframe(key="queue_table").value) == 24
    assert {m.label: m.value for m in at.metric}["rejected"] == "1"
    at.selectbox(key="queue_status").set_value("rejected").run()
    assert list(at.dataframe(key="queue_table").value["pair"]) == [first]
    at.selectbox(key="queue_status").select_index(0)
    at.selectbox(key="queue_split").set_value("val")
    at.selectbox(key="queue_sort").set_value("uncertainty").run()
    table = at.dataframe(key="queue_table").value
    assert set(table["split"]) == {"val"} and table["margin"].is_monotonic_increasing
    at.button(key="queue_start").click().run()
    no_exceptions(at)
    assert at.session_state["review"].queue == list(table["pair"])
    assert at.session_state["review_shown"][0] == table["pair"].iloc[0]
    at.switch_page("views/queue.py").run()
    assert at.selectbox(key="queue_split").value == "val", "filters survive a visit to Review"
    assert at.select_slider(key="queue_limit").value == 200


def test_add_post_grounds_predicts_and_opens_review(make_app, seeded_url, tmp_path, monkeypatch):
    import app.views  # noqa: F401  (the page module is re-executed by AppTest; patch the upload folder by env)

    image = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), (20, 120, 200)).save(image)
    at = make_app(seeded_url, "views/add_post.py")
    no_exceptions(at)
    at.text_area(key="add_text").input("Alex and <b>Sam</b> at the lake").run()
    head = next(p for p in at.pills if p.key.startswith("add_head_"))
    tail = next(p for p in at.pills if p.key.startswith("add_tail_"))
    head.set_value([0])
    tail.set_value([2]).run()
    at.button(key="add_submit").click().run()
    no_exceptions(at)
    assert any("predicts" in s.value for s in at.success), [e.value for e in at.error]
    engine, sessions = _store(seeded_url)
    with sessions() as s:
        pair = s.scalar(select(EntityPair).where(EntityPair.split == "new"))
        assert (pair.head_name, pair.tail_name) == ("Alex", "<b>Sam</b>")
        assert (
            s.scalar(select(func.count()).select_from(Prediction).where(Prediction.pair_id == pair.id)) == 1
        )
        pair_id = pair.id
    engine.dispose()
    at.button(key="add_review").click().run()
    assert at.session_state["review_shown"][0] == pair_id
    html = next(m.value for m in at.markdown if "mre-post" in m.value)
    assert "&lt;b&gt;Sam&lt;/b&gt;" in html


def test_export_writes_the_curated_labels(make_app, seeded_url, tmp_path):
    engine, sessions = _store(seeded_url)
    with sessions.begin() as s:
        ids = list(s.scalars(select(EntityPair.id).order_by(EntityPair.id).limit(2)))
        record_annotation(
            s, ids[0], status="corrected", label="/misc/loc/held_on", annotator=REVIEWER, expected_revision=0
        )
        record_annotation(s, ids[1], status="rejected", annotator=REVIEWER, expected_revision=0)
    engine.dispose()
    at = make_app(seeded_url, "views/export.py")
    no_exceptions(at)
    at.selectbox(key="export_format").set_value("jsonl").run()
    at.multiselect(key="export_statuses").set_value(["corrected", "rejected"])
    at.checkbox(key="export_rejected").check().run()
    at.button(key="export_run").click().run()
    no_exceptions(at)
    ((name, data),) = at.session_state["export_result"][0]
    rows = [json.loads(line) for line in data.decode().splitlines()]
    assert [(r["pair_id"], r["status"], r["label"]) for r in rows] == [
        (ids[0], "corrected", "/misc/loc/held_on"),
        (ids[1], "rejected", None),
    ]
    assert (tmp_path / "exports" / name).read_bytes() == data
    assert at.get("download_button")


def test_the_export_says_why_rejected_pairs_cannot_be_kept_in_the_mnre_format(make_app, seeded_url):
    """The checkbox is greyed out for MNRE, whose lines have no empty label: a control that does nothing says why."""
    at = make_app(seeded_url, "views/export.py")
    no_exceptions(at)
    keep = at.checkbox(key="export_rejected")
    assert at.selectbox(key="export_format").value == "mnre" and keep.disabled
    assert keep.help and "MNRE" in keep.help and "rejected" in keep.help, keep.help
    at.selectbox(key="export_format").set_value("jsonl").run()
    assert not at.checkbox(key="export_rejected").disabled


def test_export_of_all_splits_in_the_mnre_format_gives_one_file_per_split(make_app, seeded_url, tmp_path):
    """One MNRE file with train and val mixed had no split information left; each split gets its own file."""
    import ast

    at = make_app(seeded_url, "views/export.py")
    assert (
        at.selectbox(key="export_format").value == "mnre" and at.selectbox(key="export_split").value is None
    )
    at.button(key="export_run").click().run()
    no_exceptions(at)
    files = dict(at.session_state["export_result"][0])
    assert sorted(n.rsplit("_", 1)[1] for n in files) == ["train.txt", "val.txt"], list(files)
    engine, sessions = _store(seeded_url)
    with sessions() as s:
        counts = dict(s.execute(select(EntityPair.split, func.count()).group_by(EntityPair.split)).all())
    engine.dispose()
    for name, data in files.items():
        split = name.rsplit("_", 1)[1].removesuffix(".txt")
        lines = data.decode().splitlines()
        assert len(lines) == counts[split] and all(ast.literal_eval(line)["token"] for line in lines)
        assert (tmp_path / "exports" / name).read_bytes() == data
    assert len(at.get("download_button")) == 2


def test_models_page_lists_and_activates_versions(make_app, seeded_url, tiny_checkpoint, tmp_path):
    import shutil

    from db.provenance import register_model_version

    other = tmp_path / "other"
    shutil.copytree(tiny_checkpoint, other)
    engine, sessions = _store(seeded_url)
    with sessions.begin() as s:
        # a retraining's settings shape (app.services.retrain): read by db.model_versions.TrainingOrigin
        settings = {"base": "x", "dataset": "mnre", "train_records": 1200, "epochs": 2, "options": {}}
        register_model_version(s, "ifaformer-objects-quick", other, "objects", settings=settings)
    engine.dispose()
    at = make_app(seeded_url, "views/models.py")
    no_exceptions(at)
    table = at.dataframe[0].value.set_index("version")
    assert table.loc["ifaformer-objects-quick", "training data"] == "mnre, 1200 records, 2 epoch(s)"
    at.selectbox(key="models_pick").set_value("ifaformer-objects-quick").run()
    at.button(key="models_activate").click().run()
    no_exceptions(at)
    engine, sessions = _store(seeded_url)
    with sessions() as s:
        assert (
            s.scalar(select(ModelVersion.version_id).where(ModelVersion.is_active))
            == "ifaformer-objects-quick"
        )
    engine.dispose()
    assert any("is weak (its val micro-F1 is unknown)" in w.value for w in at.warning)


def run_until(at, done, timeout: float = 90.0):
    """Rerun the page until `done(at)`: Inspect's expensive panels fill in from background jobs."""
    import time

    deadline = time.time() + timeout
    while True:
        at.run()
        no_exceptions(at)
        if done(at) or time.time() > deadline:
            return at
        time.sleep(0.3)


def _filled(at) -> bool:
    return {"Reliance score", "Tokens comprehensiveness"} <= {m.label for m in at.metric}


def test_inspect_panels_rerun_alone_and_store_a_summary(make_app, seeded_url):
    at = make_app(seeded_url, "views/inspect.py")
    no_exceptions(at)
    run_until(at, _filled)
    assert _filled(at), "faithfulness and reliance numbers are shown"
    at.selectbox(key="inspect_layer").set_value(at.selectbox(key="inspect_layer").options[-1]).run()
    no_exceptions(at)
    at.toggle(key="inspect_rollout").set_value(True).run()
    no_exceptions(at)
    at.select_slider(key="inspect_steps").set_value(8).run()
    run_until(at, _filled)
    engine, sessions = _store(seeded_url)
    with sessions() as s:
        stored = s.scalars(select(Explanation).where(Explanation.method == "inspect:tokens")).all()
    engine.dispose()
    assert {e.settings["n_steps"] for e in stored} == {16, 8}
    assert all(e.created_by == REVIEWER and e.model_version_id for e in stored)


def test_inspect_shows_the_first_panel_at_once_and_never_waits_for_another_pairs_work(make_app, seeded_url):
    """Inspect took 13.5 s before anything showed: attributions, faithfulness and reliance ran in the page's own
    run. Here the background worker is held busy; the page must still draw prediction and attention, show the
    expensive panels as queued with their progress, and a pair switch must drop the old pair's queued jobs."""
    import threading

    from app.ui.explanation_panels import background

    release = threading.Event()
    blocker = background().submit(("test-blocker", seeded_url), "blocker", -1, release.wait, 60)
    try:
        at = make_app(seeded_url, "views/inspect.py")
        no_exceptions(at)
        assert at.get("plotly_chart"), "the attention chart is drawn while the worker is busy"
        assert any("predicts" in m.value for m in at.markdown)
        waiting = [p.proto.text for p in at.get("progress")]
        assert len(waiting) == 3 and all("queued" in text for text in waiting), waiting
        first = at.number_input(key="inspect_pair").value
        old_jobs = [j for j in background().jobs.values() if j.pair_id == first and not j.done]
        at.number_input(key="inspect_pair").set_value(first + 1).run()
        no_exceptions(at)
        assert old_jobs and all(j.future.cancelled() for j in old_jobs), (
            "the old pair's queued work is dropped"
        )
    finally:
        release.set()
    assert blocker.future.result(timeout=10)
    run_until(at, _filled)
    assert _filled(at)
    charts = at.get("plotly_chart")
    assert len(charts) >= 5, "attention, scene graph, alignment, tokens, visual, reliance"


def test_experiments_shows_both_tables(make_app, seeded_url):
    at = make_app(seeded_url, "views/experiments.py")
    no_exceptions(at)
    shuffle = at.dataframe[0].value
    assert shuffle["standard_f1"].iloc[0] == 80.0 and shuffle["shuffle_test_f1"].iloc[0] == 30.0
    assert shuffle["f1_drop_shuffle_test"].iloc[0] == 50.0
    ablation = at.dataframe[1].value
    assert list(ablation["variant"]) == ["objects"] and ablation["paper_f1"].iloc[0] == 81.67


def test_annotations_record_the_reviewer(make_app, seeded_url):
    at = make_app(seeded_url, "views/review.py", reviewer="Zoë")
    at.button(key="review_skip").click().run()
    engine, sessions = _store(seeded_url)
    with sessions() as s:
        assert s.scalars(select(Annotation.annotator)).all() == ["Zoë"]
    engine.dispose()


def test_models_page_queues_retraining_as_a_job(make_app, seeded_url):
    """The page never trains in its own script run: the button queues a retrain job for the worker (which
    tests/app/test_jobs_experiments.py runs end to end)."""
    from db.models import Job

    engine, sessions = _store(seeded_url)
    with sessions() as s:
        before = s.scalar(select(ModelVersion.version_id).where(ModelVersion.is_active))
    engine.dispose()
    at = make_app(seeded_url, "views/models.py")
    at.number_input(key="models_limit_train").set_value(0)
    at.number_input(key="models_limit_val").set_value(0).run()
    at.button(key="models_retrain").click().run()
    no_exceptions(at)
    assert not at.error, [e.value for e in at.error]
    engine, sessions = _store(seeded_url)
    with sessions() as s:
        (job,) = s.scalars(select(Job)).all()
        assert (job.kind, job.status, job.started_by) == ("retrain", "queued", REVIEWER)
        assert job.params["base"] == before and job.params["limit_train"] is None
        assert s.scalar(select(ModelVersion.version_id).where(ModelVersion.is_active)) == before
        assert len(s.scalars(select(ModelVersion)).all()) == 1  # nothing trained or registered in the page
    engine.dispose()
