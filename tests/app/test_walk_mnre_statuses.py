"""What a walk through the app on MNRE found saying one thing while the rest of the screen (or the store) said
another. Each test failed on the code before its fix."""

from __future__ import annotations

from db.jobs import create_job, start_job
from db.schema import open_database
from tests.app.conftest import REVIEWER, no_exceptions

LABEL_ERRORS = "views/label_errors.py"


def progress_texts(at) -> list[str]:
    return [element.proto.text for element in at.get("progress")]


def test_a_find_label_errors_run_waiting_behind_another_job_says_queued_not_planning(make_app, seeded_url):
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        training = create_job(session, "first_model", REVIEWER, {"data": "x", "dataset": "synthetic"}).id
        start_job(session, training, worker="elsewhere:1")
        plan = create_job(session, "crossfit", REVIEWER, {"dataset": "synthetic", "folds": 5}).id
    engine.dispose()
    at = make_app(seeded_url, LABEL_ERRORS)
    no_exceptions(at)
    (text,) = progress_texts(at)
    assert f"queued as job {plan}" in text and "planning" not in text, text

    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        start_job(session, plan, worker="elsewhere:1")
    engine.dispose()
    at = make_app(seeded_url, LABEL_ERRORS)
    (text,) = progress_texts(at)
    assert f"planning the 5 folds (job {plan})" in text, text


def test_a_text_only_models_zero_image_reliance_is_no_reliance_to_sort_by(make_app, seeded_url):
    """Inspect's precompute stores 0 for a text-only model (by definition): the Queue sorted 'image reliance:
    highest first' by those zeros, named the model as the column's source and kept pair order without a word."""
    from sqlalchemy import update

    from db.models import ModelVersion, Prediction

    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        session.execute(update(ModelVersion).values(variant="text_only"))
        session.execute(update(Prediction).values(image_reliance=0.0))
    engine.dispose()
    at = make_app(seeded_url)
    at.selectbox(key="queue_sort").set_value("image_reliance").run()
    no_exceptions(at)
    warnings = " ".join(w.value for w in at.warning)
    assert "no pair shown has one" in warnings and "text-only" in warnings, warnings
    captions = " ".join(c.value for c in at.caption)
    assert "Image reliance as computed by" not in captions, captions


def test_a_trainings_log_says_how_its_variant_was_chosen_in_words():
    """The job log read 'first_model: objects, chosen by picked on the Models page'."""
    from app.services.model_jobs import PICKED, variant_origin

    assert variant_origin(PICKED) == "picked on the Models page"
    assert variant_origin("the data: 34 of 8,287 posts have an image") == (
        "chosen by the data: 34 of 8,287 posts have an image"
    )
    assert variant_origin(None) == ""


def test_queuing_a_training_on_models_shows_its_job_beside_the_button(make_app, seeded_url, tmp_path):
    """The line above the button read 'The first model: first_model.yaml' (no job) beside 'Queued job 5: ...'."""
    from sqlalchemy import update

    from db.models import Dataset

    mnre = tmp_path / "mnre"
    (mnre / "txt").mkdir(parents=True)
    (mnre / "ours_rel2id.json").write_text("{}")
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        session.execute(update(Dataset).values(source_path=str(mnre)))
    engine.dispose()
    at = make_app(seeded_url, "views/models.py")
    no_exceptions(at)
    at.button(key="models_queue_first_model").click().run()
    no_exceptions(at)
    (success,) = [s.value for s in at.success if "Queued job" in s.value]
    job = success.split("Queued job ", 1)[1].split(":", 1)[0]
    lines = [c.value for c in at.caption if c.value.startswith("The first model:")]
    assert lines and lines[0].endswith(f"job {job} is queued"), (lines, success)


def test_the_queue_says_what_its_progress_counts_and_writes_labels_and_percentages_whole(
    make_app, seeded_url
):
    """On MNRE the Queue said '0 of 1,624 pairs reviewed' above '9 pairs shown' (the progress is of the split, the
    search narrowed the table), cut '/per/loc/place_of_residence' to '/per/loc/place_of_r' and wrote the
    confidence '17.28%' beside '22.1%'."""
    import json

    at = make_app(seeded_url)
    at.text_input(key="queue_text").set_value("zz-no-such-text").run()
    no_exceptions(at)
    (text,) = progress_texts(at)
    assert text.endswith("in the val split of all datasets"), text
    at.text_input(key="queue_text").set_value("").run()
    table = at.dataframe(key="queue_table")
    config = json.loads(table.proto.columns)
    assert config["confidence"]["type_config"]["format"] == "%.1f%%", config["confidence"]
    confidence = table.value["confidence"].dropna()
    assert len(confidence) and confidence.between(0, 100).all() and confidence.max() > 1, confidence.tolist()
    # "/per/loc/place_of_residence" is 165 px in the grid's 14 px font, plus 16 px of cell padding
    assert all(config[column]["width"] >= 180 for column in ("gold", "predicted", "label")), config


def test_find_label_errors_writes_its_time_left_as_the_jobs_page_does():
    """Label errors read 'about 0:16:31 left' while the Jobs page wrote the fold's 'about 3m24s left'."""
    from app.services.label_errors import eta_text

    assert eta_text(991).startswith("about 16m31s left (done ~"), eta_text(991)
    assert eta_text(3 * 3600 + 120).startswith("about 3h02m left"), eta_text(3 * 3600 + 120)


def test_the_mnre_export_note_promises_per_split_files_only_for_several_splits(make_app, seeded_url):
    """The note promised '..._train.txt, ..._val.txt' and the export of the decided (all val) pairs wrote one
    'all-all-<date>.txt'."""
    at = make_app(seeded_url, "views/export.py")
    no_exceptions(at)
    (note,) = [c.value for c in at.caption if c.value.startswith("MNRE with split")]
    assert (
        "pairs of several splits go to one file per split" in note and "a single split to one file" in note
    ), note


def test_the_version_comparison_writes_its_counts_with_thousands_separators():
    """Models read '1624 val pairs scored by both' under '1,624' everywhere else."""
    from app.services.model_catalog import VersionComparison, comparison_note

    kind, text = comparison_note(VersionComparison(1624, [{"pair": k} for k in range(1188)], [], []))
    assert text == "1,624 val pairs scored by both; the prediction changed on 1,188.", text
    kind, text = comparison_note(VersionComparison(1624, [], [], ["v-new"]))
    assert "so far 1,624 val pairs" in text, text


def test_a_cancelled_find_label_errors_run_says_the_run_was_cancelled_not_one_fold(make_app, seeded_url):
    """Cancelling a run cancels the waiting folds at once and the running one at its next step: the page said
    'fold 2 cancelled (job 11)' as if that fold had stopped on its own."""
    from db.jobs import finish_job

    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        plan = create_job(session, "crossfit", REVIEWER, {"dataset": "synthetic", "folds": 3}).id
        start_job(session, plan, worker="elsewhere:1")
        finish_job(session, plan, "succeeded", {"folds": 3})
        folds = [
            create_job(
                session, "crossfit_fold", REVIEWER, {"parent": plan, "fold": k, "dataset": "synthetic"}
            ).id
            for k in range(3)
        ]
        start_job(session, folds[0], worker="elsewhere:1")
        for job in folds[1:]:
            finish_job(session, job, "cancelled")
    engine.dispose()
    at = make_app(seeded_url, LABEL_ERRORS)
    no_exceptions(at)
    errors = " ".join(e.value for e in at.error)
    assert f"the run was cancelled (job {plan}; 0 of 3 folds had finished)" in errors, errors
    assert "fold 2" not in errors, errors


def test_the_models_table_names_the_job_and_who_started_it_in_cells_that_fit():
    """On MNRE the Models table cut 'job 5 (first_model, Walk Three)' to 'job 5 (first_r' and the created-by
    'job 5 (first_model)' (the same job again) to 'job 5 (first_mo'; the training data lost its epochs."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from app.services.model_catalog import version_rows
    from app.ui.model_panels import VERSION_WIDTHS
    from db.model_versions import TrainingOrigin

    origin = TrainingOrigin(
        "first_model", "mnre", "/data/mnre", 1, None, None, None, 5, "first_model.yaml", "Ann"
    )
    by_job = SimpleNamespace(
        version_id="ifaformer-objects-a8f296a1325d",
        active=True,
        variant="objects",
        architecture="ifaformer",
        text_encoder="minilm",
        val=None,
        origin=origin,
        created_by="job 5 (first_model)",
        created_at=datetime(2026, 12, 7, 10, 39, tzinfo=UTC),
    )
    by_hand = SimpleNamespace(**{**vars(by_job), "origin": TrainingOrigin(*[None] * 10), "created_by": "Bo"})
    rows = version_rows([by_job, by_hand])
    assert (rows[0]["job"], rows[0]["created by"]) == ("job 5", "Ann"), rows[0]
    assert (rows[1]["job"], rows[1]["created by"]) == (None, "Bo"), rows[1]
    # the grid's 14 px font: "mnre, full train split, 1 epoch(s)" measured 181 px in Chromium (5.3 px a
    # character), plus 16 px of cell padding
    for column in ("job", "created by", "training data"):
        longest = max(len(str(row[column] or "")) for row in rows)
        assert VERSION_WIDTHS[column] >= 5.5 * longest + 16, (column, rows)
    assert sum(VERSION_WIDTHS.values()) <= 1100


def _point_the_dataset_at_an_mnre_folder(url: str, tmp_path) -> None:
    """The seeded dataset's source made an MNRE folder (its rel2id file): the pages then speak of it as MNRE."""
    from sqlalchemy import update

    from db.models import Dataset

    mnre = tmp_path / "mnre"
    mnre.mkdir()
    (mnre / "ours_rel2id.json").write_text("{}")
    engine, sessions = open_database(url)
    with sessions.begin() as session:
        session.execute(update(Dataset).values(source_path=str(mnre)))
    engine.dispose()


def test_experiments_say_when_few_posts_have_an_image(make_app, seeded_url, tmp_path):
    """On MNRE with 34 of 8,287 posts' images here, Experiments offered the visual-shuffle table without a word."""
    from sqlalchemy import update

    from db.models import Post

    _point_the_dataset_at_an_mnre_folder(seeded_url, tmp_path)
    at = make_app(seeded_url, "views/experiments.py")
    no_exceptions(at)
    assert not [w.value for w in at.warning if "posts have an image" in w.value], "every post has its image"
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        first = session.scalars(Post.__table__.select().with_only_columns(Post.id).limit(1)).one()
        session.execute(update(Post).values(has_image=False))
        session.execute(update(Post).where(Post.id == first).values(has_image=True))
        posts = session.query(Post).count()
    engine.dispose()
    at = make_app(seeded_url, "views/experiments.py")
    no_exceptions(at)
    (warning,) = [w.value for w in at.warning if "posts have an image" in w.value]
    assert f"Only 1 of {posts} posts have an image on this machine in synthetic" in warning, warning


def test_the_models_page_says_the_image_count_is_of_images_on_this_machine(make_app, seeded_url, tmp_path):
    """MNRE's posts all have an image; 34 of 8,287 are on this machine. 'The default for mnre is text_only: 34 of
    8,287 posts have an image' read as a fact about MNRE."""

    _point_the_dataset_at_an_mnre_folder(seeded_url, tmp_path)
    at = make_app(seeded_url, "views/models.py")
    no_exceptions(at)
    (line,) = [c.value for c in at.caption if c.value.startswith("The default for")]
    assert (
        "posts have an image on this machine (an image missing from the data folder counts as none" in line
    ), line


def test_reviews_any_label_picker_lists_labels_verbatim(make_app, seeded_url):
    """A selectbox does not read Markdown: the picker listed '\\/misc\\/loc\\/held\\_on' (label_text's escapes)."""
    at = make_app(seeded_url, "views/review.py")
    no_exceptions(at)
    pair = at.session_state["review_shown"][0]
    options = at.selectbox(key=f"review_pick_{pair}").options
    assert "/misc/loc/held_on" in options and "None (no relation)" in options, options
    assert not [option for option in options if "\\" in option], options
