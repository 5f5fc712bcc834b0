"""The label-error audit in the pages: the Label errors page lists a run's suspects and starts the audit, Review
shows the out-of-sample suggestion against gold with T / K keys that record audit decisions, the Queue sorts by it,
and the suspects export for expert review."""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy import select

from db.models import Annotation
from db.schema import open_database
from tests.app.conftest import REVIEWER, no_exceptions

LABEL_ERRORS = "views/label_errors.py"
REVIEW = "views/review.py"
QUEUE = "views/queue.py"


def store_run(url: str, settings: dict | None = None) -> list[dict]:
    """A stored run over the seeded pairs: pair k of the train split gets quality k (lowest first); the first three
    have a suggestion that differs from gold."""
    from db.label_errors import dataset_labels, labelled_pairs, save_crossfit_run

    engine, sessions = open_database(url)
    with sessions.begin() as session:
        labels = dataset_labels(session, "synthetic")
        pairs = [p for p in labelled_pairs(session, "synthetic") if p.split == "train"]
        rows = []
        for k, pair in enumerate(pairs):
            other = next(label for label in labels if label != pair.label)
            suggested = other if k < 3 else pair.label
            p_given = 0.02 if k < 3 else 0.9
            rows.append(
                {
                    "pair_id": pair.pair_id,
                    "source": "fold",
                    "fold": k % 2,
                    "model_version": f"fold{k % 2}",
                    "probabilities": {pair.label: p_given, **({other: 0.95} if k < 3 else {})},
                    "given_label": pair.label,
                    "given_probability": p_given,
                    "suggested_label": suggested,
                    "suggested_probability": 0.95 if k < 3 else 0.9,
                    "quality": float(k),
                    "loss": float(k),
                    "flagged": k < 3,
                    "scores": {"self_confidence": float(k)},
                }
            )
        save_crossfit_run(
            session, "synthetic", folds=2, method="self_confidence", settings=settings or {}, rows=rows
        )
    engine.dispose()
    return rows


def test_label_errors_page_lists_the_suspects_and_starts_the_audit(make_app, seeded_url):
    rows = store_run(seeded_url)
    at = make_app(seeded_url, LABEL_ERRORS)
    no_exceptions(at)
    table = at.dataframe[0].value
    assert list(table["pair"]) == [row["pair_id"] for row in rows]
    assert list(table["suggested"][:3]) == [row["suggested_label"] for row in rows[:3]]
    assert any("0 of" in m.value for m in at.metric)
    at.button(key="label_errors_review").click().run()
    no_exceptions(at)
    review = at.session_state["review"]
    assert review.audit and review.queue == [row["pair_id"] for row in rows]


def test_review_in_audit_mode_takes_or_keeps_and_records_the_audit(make_app, seeded_url):
    from db.label_errors import audit_progress

    rows = store_run(seeded_url)
    at = make_app(seeded_url, LABEL_ERRORS)
    at.button(key="label_errors_review").click().run()
    # AppTest keeps its own page across reruns: follow the page's st.switch_page by hand
    at.switch_page(REVIEW).run()
    no_exceptions(at)
    first, second = rows[0], rows[1]
    assert at.session_state["review_shown"][0] == first["pair_id"]
    audit_text = " ".join(m.value for m in at.markdown)
    assert f"gold says `{first['given_label']}`" in audit_text and first["suggested_label"] in audit_text
    assert at.button(key="review_audit_take").proto.shortcut.lower() == "t"
    assert at.button(key="review_audit_keep").proto.shortcut.lower() == "k"

    at.button(key="review_audit_take").click().run()
    no_exceptions(at)
    at.button(key="review_audit_keep").click().run()
    no_exceptions(at)
    engine, sessions = open_database(seeded_url)
    with sessions() as session:
        saved = session.execute(
            select(
                Annotation.pair_id,
                Annotation.status,
                Annotation.label,
                Annotation.origin,
                Annotation.annotator,
            )
        ).all()
        progress = audit_progress(session, "synthetic")
    engine.dispose()
    assert [tuple(row) for row in saved] == [
        (first["pair_id"], "corrected", first["suggested_label"], "audit", REVIEWER),
        (second["pair_id"], "accepted", second["given_label"], "audit", REVIEWER),
    ]
    assert (progress.reviewed, progress.changed, progress.in_audit) == (2, 1, 2)


def test_outside_the_audit_decisions_carry_no_origin_and_no_audit_keys(make_app, seeded_url):
    store_run(seeded_url)
    at = make_app(seeded_url, REVIEW)
    assert not at.session_state["review"].audit
    assert not [b for b in at.button if b.key == "review_audit_take"]
    at.button(key="review_skip").click().run()
    engine, sessions = open_database(seeded_url)
    with sessions() as session:
        assert session.scalars(select(Annotation.origin)).all() == [None]
    engine.dispose()


def test_queue_sorts_by_likely_label_error_and_shows_the_suggestion(make_app, seeded_url):
    rows = store_run(seeded_url)
    at = make_app(seeded_url, QUEUE)
    at.selectbox(key="queue_split").set_value("train").run()
    at.selectbox(key="queue_sort").set_value("label_error").run()
    no_exceptions(at)
    table = at.dataframe(key="queue_table").value
    assert list(table["pair"]) == [row["pair_id"] for row in rows]
    assert list(table["suspect rank"]) == list(range(1, len(rows) + 1))
    assert table["out-of-sample"][0].startswith(rows[0]["suggested_label"])
    at.selectbox(key="queue_suspects").set_value(50).run()
    at.button(key="queue_start").click().run()
    no_exceptions(at)
    assert at.session_state["review"].audit


def test_suspects_export_as_csv_and_label_studio(seeded_url, tmp_path):
    from db.label_errors import export_suspects

    rows = store_run(seeded_url)
    engine, sessions = open_database(seeded_url)
    with sessions() as session:
        csv_report = export_suspects(session, "synthetic", tmp_path / "s.csv", "csv", top=5)
        ls_report = export_suspects(session, "synthetic", tmp_path / "s.json", "labelstudio", top=5)
    engine.dispose()
    table = pd.read_csv(tmp_path / "s.csv", keep_default_na=False)
    assert csv_report.rows == ls_report.rows == 5
    assert list(table["pair_id"]) == [row["pair_id"] for row in rows[:5]]
    assert list(table["suggested_label"][:3]) == [row["suggested_label"] for row in rows[:3]]
    assert {"text", "head", "tail", "gold_label", "given_probability", "quality"} <= set(table.columns)
    tasks = json.loads((tmp_path / "s.json").read_text())
    assert [t["data"]["mrelens"]["pair_id"] for t in tasks] == [row["pair_id"] for row in rows[:5]]
    suggestion = tasks[0]["predictions"][-1]
    assert suggestion["model_version"].startswith("out-of-sample fold")
    assert suggestion["result"][-1]["labels"] == [rows[0]["suggested_label"]]
    assert tasks[0]["data"]["label_error"]["given_label"] == rows[0]["given_label"]


def test_suspects_csv_neutralises_formula_cells(seeded_url, tmp_path):
    from db.label_errors import export_suspects
    from db.models import EntityPair

    rows = store_run(seeded_url)
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        session.get(EntityPair, rows[0]["pair_id"]).head_name = '=HYPERLINK("http://x")'
    with sessions() as session:
        export_suspects(session, "synthetic", tmp_path / "s.csv", "csv", top=3)
    engine.dispose()
    table = pd.read_csv(tmp_path / "s.csv", keep_default_na=False)
    assert table["head"][0] == '\'=HYPERLINK("http://x")'


def test_a_dataset_without_a_label_map_is_not_offered_and_the_page_says_why(make_app, seeded_url):
    """After Add post (its posts go to a dataset without a label map, first by name), the page chose it and Find
    label errors queued a job that failed with "dataset 'posts' has no label map"."""
    from db.datasets import get_or_create_dataset

    engine, sessions = open_database(seeded_url)
    with sessions.begin() as session:
        get_or_create_dataset(
            session, "added"
        )  # as Add post's posts: no label map, before "synthetic" by name
    engine.dispose()
    at = make_app(seeded_url, LABEL_ERRORS)
    no_exceptions(at)
    picker = at.selectbox(key="label_errors_dataset")
    assert picker.options == ["synthetic"] and picker.value == "synthetic"
    assert any("added" in c.value and "no label map" in c.value for c in at.caption), [
        c.value for c in at.caption
    ]


def test_a_run_of_weak_fold_models_is_flagged_as_close_to_chance(make_app, seeded_url):
    """On the synthetic set (the image decides the label) the text-only fold models of configs/crossfit.yaml score
    23-26 % val micro-F1, at chance: their suspects were listed without a word on how little they are worth."""
    store_run(seeded_url, {"fold_models": [{"val_f1": 0.231}, {"val_f1": 0.255}]})
    at = make_app(seeded_url, LABEL_ERRORS)
    no_exceptions(at)
    warned = [w.value for w in at.warning if "weak" in w.value]
    assert len(warned) == 1 and "23.1 %" in warned[0] and "MRELENS_CROSSFIT_CONFIG" in warned[0], warned


def test_a_run_of_fold_models_above_the_weak_line_is_not_flagged(make_app, seeded_url):
    store_run(seeded_url, {"fold_models": [{"val_f1": 0.61}, {"val_f1": 0.64}]})
    at = make_app(seeded_url, LABEL_ERRORS)
    no_exceptions(at)
    assert not [w.value for w in at.warning if "weak" in w.value]
