"""Every page says which model is active and how good it is, or what is training; Review and Inspect warn about a
weak model; without any model the queue and review still work."""

from __future__ import annotations

from sqlalchemy import update

from db.models import Job, ModelVersion
from db.schema import open_database
from tests.app.conftest import no_exceptions


def sidebar_text(at) -> str:
    return " ".join(c.value for c in at.sidebar.caption)


def set_val_f1(url: str, f1: float | None) -> None:
    engine, sessions = open_database(url)
    with sessions.begin() as session:
        session.execute(update(ModelVersion).values(metrics={"val": {"f1": f1}} if f1 is not None else None))
    engine.dispose()


def test_no_model_yet_every_page_says_what_is_training_and_review_still_works(make_app, seeded_url):
    from app.jobs import enqueue
    from db.jobs import start_job

    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        session.execute(update(ModelVersion).values(is_active=False))
    first = enqueue(sessions, "first_model", "make app", {})
    at = make_app(seeded_url, "views/queue.py")
    no_exceptions(at)
    assert "No model yet" in sidebar_text(at) and f"the first model is queued (job {first})" in sidebar_text(
        at
    )
    with sessions.begin() as session:
        start_job(session, first)
        session.get(Job, first).progress = {
            "fraction": 0.4,
            "epoch": 1,
            "epochs": 1,
            "eta_s": 300,
        }
    engine.dispose()
    at = make_app(seeded_url, "views/review.py")
    no_exceptions(at)
    assert "the first model is training (40%, epoch 1/1, model expected ~" in sidebar_text(at)
    assert any("No model is active yet" in i.value for i in at.info)
    at.button(key="review_skip").click().run()  # reviewing works without a model
    no_exceptions(at)


def test_weak_model_is_marked_on_review_and_inspect_but_not_a_good_one(make_app, seeded_url):
    set_val_f1(seeded_url, 0.058)
    for page in ("views/review.py", "views/inspect.py"):
        at = make_app(seeded_url, page)
        assert any("is weak (val micro-F1 5.8 %" in w.value for w in at.warning), page
        assert "val micro-F1 5.8 % (weak)" in sidebar_text(at)
    set_val_f1(seeded_url, 0.62)
    at = make_app(seeded_url, "views/review.py")
    assert not any("is weak" in w.value for w in at.warning)
    assert "val micro-F1 62.0 %" in sidebar_text(at) and "(weak)" not in sidebar_text(at)


def test_jobs_page_lists_the_queue_and_cancels_a_queued_job(make_app, seeded_url):
    from app.jobs import enqueue

    engine, sessions = open_database(seeded_url)
    training = enqueue(sessions, "default_model", "make app", {})
    scoring = enqueue(sessions, "score", "ann", {})
    at = make_app(seeded_url, "views/jobs.py")
    no_exceptions(at)
    queue = [m.value for m in at.markdown if "queued" in m.value]
    # the order the worker takes them: scoring (higher priority) before the training queued first
    assert queue[0].startswith(f"1. **Job {scoring}: scoring the queue**") and f"Job {training}" in queue[1]
    at.button(key=f"jobs_cancel_{training}").click().run()
    no_exceptions(at)
    with sessions() as session:
        assert (
            session.get(Job, training).status == "cancelled" and session.get(Job, scoring).status == "queued"
        )
    engine.dispose()


def test_models_page_compares_two_versions_on_val(make_app, seeded_url, tiny_checkpoint, tmp_path):
    import shutil

    from sqlalchemy import select

    from db.models import EntityPair, Prediction
    from db.provenance import register_model_version, save_predictions

    other = tmp_path / "other"
    shutil.copytree(tiny_checkpoint, other)
    engine, sessions = open_database(seeded_url)
    per_label = {"/per/per/peer": {"f1": 0.5}, "None": {"f1": 0.9}}
    with sessions.begin() as session:
        session.execute(update(ModelVersion).values(metrics={"val": {"f1": 0.40, "per_label": per_label}}))
        old = session.scalars(select(ModelVersion)).one()
        new = register_model_version(
            session,
            "v-new",
            other,
            "objects",
            metrics={"val": {"f1": 0.55, "per_label": {"/per/per/peer": {"f1": 0.75}, "None": {"f1": 0.9}}}},
        )
        val_pairs = list(session.scalars(select(EntityPair.id).where(EntityPair.split == "val")))
        old_labels = dict(
            session.execute(
                select(Prediction.pair_id, Prediction.predicted_label).where(
                    Prediction.model_version_id == old.id
                )
            ).all()
        )
        # the new version agrees with the old one except on the first val pair
        rows = []
        for k, pair in enumerate(val_pairs):
            label = (
                old_labels[pair]
                if k
                else ("/per/per/peer" if old_labels[pair] != "/per/per/peer" else "None")
            )
            rows.append({"pair_id": pair, "probabilities": {label: 0.9, "other": 0.1}})
        save_predictions(session, new.id, rows)
        old_id = old.version_id
    engine.dispose()
    at = make_app(seeded_url, "views/models.py")
    no_exceptions(at)
    at.selectbox(key="models_compare_a").set_value(old_id)
    at.selectbox(key="models_compare_b").set_value("v-new").run()
    no_exceptions(at)
    frames = [d.value for d in at.dataframe]
    delta = next(f for f in frames if "change" in f.columns).set_index("label")
    assert (
        delta.loc["/per/per/peer", "change"] == 25.0
        and round(delta.loc["micro (non-None)", "change"], 6) == 15.0
    )
    changed = next(f for f in frames if "after" in f.columns and "pair" in f.columns)
    assert list(changed["pair"]) == [val_pairs[0]]
    assert any(
        f"{len(val_pairs)} val pairs scored by both; the prediction changed on 1" in c.value
        for c in at.caption
    )


def test_the_details_follow_the_newest_finished_job_until_one_is_picked(make_app, seeded_url):
    """A job that finished after the page opened took no part in "Details of": it kept the older job."""
    from db.jobs import create_job, finish_job, start_job

    def finished_job(kind: str) -> int:
        engine, sessions = open_database(seeded_url)
        with sessions.begin() as session:
            job = create_job(session, kind, "make app", {}).id
            start_job(session, job, worker="elsewhere:1")
            finish_job(session, job, "succeeded", {"scored": 1})
        engine.dispose()
        return job

    first = finished_job("score")
    at = make_app(seeded_url, "views/jobs.py")
    assert at.selectbox(key="jobs_details").value.startswith(f"job {first}:")
    second = finished_job("score")
    at.run()
    assert at.selectbox(key="jobs_details").value.startswith(f"job {second}:"), "the newest, unasked"
    at.selectbox(key="jobs_details").set_value(at.selectbox(key="jobs_details").options[1]).run()
    finished_job("score")
    at.run()
    no_exceptions(at)
    assert at.selectbox(key="jobs_details").value.startswith(f"job {first}:"), "a picked job stays picked"
