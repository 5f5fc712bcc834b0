"""Texts the thin pages draw, built by plain functions (app.services.*, app.ui.*): numbers carry their unit and
dataset text is never Markdown."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from app.services.label_errors import run_summary
from app.services.model_catalog import VersionComparison, comparison_note
from app.ui.inspect_panels import convergence_caption, reliance_caption
from app.ui.render import plain


def test_the_fold_models_f1_range_says_it_is_a_percent():
    run = SimpleNamespace(
        id=3,
        created_at=dt.datetime(2026, 12, 1, 9, 30),
        folds=5,
        method="self_confidence",
        settings={"fold_models": [{"val_f1": 0.512}, {"val_f1": 0.634}, {"val_f1": None}]},
    )
    text = run_summary(run, SimpleNamespace(in_audit=7))
    assert "val micro-F1 51.2-63.4 %" in text, text
    assert "self confidence" in text and "7 pairs decided" in text


def test_the_reliance_caption_escapes_every_label():
    label = "**bold** [link](http://x)"
    result = SimpleNamespace(
        predicted_label=label,
        p_original=0.9,
        p_no_image=0.4,
        no_image_prediction=label,
        flip_rate=0.5,
        swapped_predictions=[label, "/per/per/peer"],
    )
    text = reliance_caption(result)
    assert label not in text and text.count(plain(label)) == 3, text
    assert "50% of 2 swaps change the label" in text
    # "without it 0.400 (label)" did not say the label is what the model predicts without the image
    assert f"without it 0.400 (then predicting {plain(label)})" in text, text
    # a post with no other image to swap in: no swap was tried, which is not "0% of swaps"
    text = reliance_caption(SimpleNamespace(**{**vars(result), "swapped_predictions": [], "flip_rate": 0.0}))
    assert "0%" not in text and text.endswith(
        "no other post's image could be swapped in, so no swap was tried"
    )


def test_the_convergence_delta_never_reads_minus_zero():
    """A delta of -3.9e-05 read "-0.0000" under a chart whose title says "delta -3.9e-05"."""
    attribution = SimpleNamespace(method="LayerIntegratedGradients", target_label="**x**", delta=-3.9e-05)
    assert convergence_caption(attribution) == (
        f"LayerIntegratedGradients for p({plain('**x**')}); convergence delta -3.9e-05"
    )


def test_no_pair_to_compare_is_not_read_as_agreement():
    kind, text = comparison_note(VersionComparison(0, [], ["v-new"], []))
    assert kind == "info" and "changed on 0" not in text and "v-new has not scored val yet" in text
    kind, text = comparison_note(VersionComparison(8, [{"pair": 1}], [], []))
    assert kind == "caption" and text == "8 val pairs scored by both; the prediction changed on 1."


def test_the_jobs_page_shows_who_started_a_job_as_typed(make_app, seeded_url):
    from db.jobs import create_job, report_progress, start_job
    from db.schema import open_database
    from tests.app.conftest import no_exceptions

    name = "**Bo** [x](http://e.example)"
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        running = create_job(session, "score", name, {}).id
        start_job(session, running, worker="elsewhere:1")
        report_progress(session, running, {"fraction": 0.2}, ["step 1"])
        create_job(session, "score", name, {})  # waiting behind it
    engine.dispose()
    at = make_app(seeded_url, "views/jobs.py")
    no_exceptions(at)
    shown = [m.value for m in at.markdown if f"Job {running}" in m.value or "started by" in m.value]
    assert len(shown) == 2 and all(plain(name) in text and name not in text for text in shown), shown


def test_the_models_table_fits_at_1600_px_and_draws_what_is_missing_as_a_dash(make_app, seeded_url):
    import json

    from app.ui.render import MISSING
    from tests.app.conftest import no_exceptions

    at = make_app(seeded_url, "views/models.py")
    no_exceptions(at)
    table = at.dataframe[0]
    assert table.proto.placeholder == MISSING, (
        "Streamlit draws a missing value as 'None' unless told otherwise"
    )
    frame = table.value
    assert "?" not in set(frame["architecture"]) | set(frame["text encoder"])
    config = json.loads(table.proto.columns)
    assert config["val F1"]["label"] == "val F1 %", "figures in percent say so in their header"
    widths = {column: config.get(column, {}).get("width") for column in frame.columns}
    # a 1600 px window in the wide layout leaves about 1,100 px beside the sidebar
    assert all(isinstance(width, int) for width in widths.values()) and sum(widths.values()) <= 1100, widths
    # the version id whole, never "ifaformer-objects-ed47...": about 7 px a character of the grid's font, plus padding
    longest = max(len(version) for version in frame["version"])
    assert widths["version"] >= 7 * len("ifaformer-objects-afcab8ead0a6") + 16 and longest <= 30, (
        widths,
        longest,
    )


def test_a_jobs_progress_text_agrees_with_its_bar_and_gives_the_f1_unit():
    from app.services.job_board import progress_text

    def job(progress: dict):
        return SimpleNamespace(status="running", progress=progress)

    assert progress_text(job({})) == ""  # nothing reported yet: the page says "starting ..."
    assert progress_text(job({"fraction": 0.3})) == "30 % done"
    assert progress_text(job({"fraction": 0.5, "epoch": 1, "epochs": 3, "val_f1": 0.4567})) == (
        "epoch 1/3 · latest val F1 45.7 %"
    )


def test_the_models_page_queues_the_precompute_that_fills_the_queues_image_reliance(make_app, seeded_url):
    from sqlalchemy import select

    from app.services.model_jobs import explain_limit
    from db.models import Job
    from db.schema import open_database
    from tests.app.conftest import no_exceptions

    at = make_app(seeded_url, "views/models.py")
    at.button(key="models_explain_top").click().run()  # the seeded objects version reads the image
    no_exceptions(at)
    engine, sessions = open_database(seeded_url)
    with sessions() as session:
        (job,) = session.scalars(select(Job).where(Job.kind == "explanations")).all()
        version = at.selectbox(key="models_pick").value
        assert job.params == {"model_version": version, "top": explain_limit()}, job.params
    engine.dispose()
    assert any(f"Queued job {job.id}" in s.value for s in at.success)


def test_the_loop_page_names_an_assigned_reviewer_as_typed(make_app, seeded_url):
    from tests.app.conftest import no_exceptions

    name = "**Bo** [x](http://e.example)"
    at = make_app(seeded_url, "views/loop.py")
    at.text_input(key="loop_assignee").set_value(name)
    next(b for b in at.button if b.label == "Assign this filter").click().run()
    no_exceptions(at)
    shown = [s.value for s in at.success if "filter assigned" in s.value]
    assert shown == [f"{plain(name)}: filter assigned."], [s.value for s in at.success] + [
        e.value for e in at.error
    ]


def test_a_jobs_outcome_reads_in_words_with_the_f1_in_percent(make_app, seeded_url):
    """The All jobs table showed a training's outcome as its raw keys ("val_f1: 0.975, activated: True, score_job:
    3") beside a sidebar that says "val micro-F1 97.5"."""
    from db.jobs import create_job, finish_job, start_job
    from db.schema import open_database
    from tests.app.conftest import no_exceptions

    outcome = {
        "model_version": "ifaformer-objects-ed47bc0bbbab",
        "val_f1": 0.975,
        "activated": True,
        "previous_active": None,
        "previous_val_f1": None,
        "score_job": 3,
    }
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        trained = create_job(session, "first_model", "make app", {}).id
        start_job(session, trained, worker="elsewhere:1")
        finish_job(session, trained, "succeeded", outcome)
        scored = create_job(session, "score", "make app", {}).id
        start_job(session, scored, worker="elsewhere:1")
        finish_job(
            session, scored, "succeeded", {"scored": 1000, "failed": [], "bad": False, "f1": {"a": 0.5}}
        )
        fold = create_job(session, "crossfit_fold", "make app", {}).id
        start_job(session, fold, worker="elsewhere:1")
        finish_job(
            session, fold, "succeeded", {"parent": 16, "fold": 1, "held_out": 300, "fold_val_f1": 0.915}
        )
        kept = create_job(session, "default_model", "make app", {}).id
        start_job(session, kept, worker="elsewhere:1")
        finish_job(
            session,
            kept,
            "succeeded",
            {**outcome, "val_f1": 0.9, "activated": False, "previous_active": "v1", "previous_val_f1": 0.975},
        )
    engine.dispose()
    at = make_app(seeded_url, "views/jobs.py")
    no_exceptions(at)
    rows = at.dataframe[0].value.set_index("job")["outcome"]
    assert rows[trained] == (
        "model ifaformer-objects-ed47bc0bbbab · val micro-F1 97.50 % · activated · scoring job 3"
    )
    assert rows[scored] == "scored 1000 · bad no · f1 a 50.00 %"
    assert rows[fold] == "part of job 16 · fold 2 · held out 300 · fold val micro-F1 91.50 %", (
        "as the log: fold 2/2"
    )
    assert rows[kept] == (
        "model ifaformer-objects-ed47bc0bbbab · val micro-F1 90.00 % · not activated · active before v1 · "
        "val micro-F1 of the one active before 97.50 % · scoring job 3"
    )


def test_a_versions_precision_recall_and_records_read_in_words():
    from app.services.model_catalog import val_summary
    from db.model_versions import ValMetrics

    stored = ValMetrics(f1=0.66, precision=0.975, recall=0.5, accuracy=0.7, records=200)
    text = val_summary(SimpleNamespace(val=stored))
    assert text == "val micro P 97.50 % · R 50.00 % · F1 66.00 % on 200 records", text
    missing = val_summary(SimpleNamespace(val=None))
    assert missing == "val micro P not stored · R not stored · F1 not stored (records not stored)", missing


def test_a_training_that_reproduced_the_active_model_says_so(seeded_url):
    """Retraining to identical weights registers the active version again: its outcome read 'not activated ·
    active before <itself>', as if another model had won."""
    from app.jobs.runner import activate_if_better
    from app.services.job_board import outcome_text
    from db.model_versions import active_model
    from db.schema import open_database

    engine, sessions = open_database(seeded_url)
    with sessions() as session:
        active = active_model(session).version_id
    outcome = activate_if_better(sessions, active, "tester")
    engine.dispose()
    assert (
        outcome_text({"model_version": active, **outcome})
        == f"model {active} · not activated · already the active version"
    )
