"""One path per job: the reads the app needs are named db functions, and the current-annotation join is written once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from db.annotations import record_annotation
from db.datasets import count_pairs, get_post, other_pairs_with_image, pairs_with_posts
from db.errors import LabelStoreError
from db.io import import_mnre
from db.models import Dataset, EntityPair
from db.provenance import (
    evaluation_runs_with_versions,
    latest_model_version,
    model_version_or_none,
    pairs_without_prediction,
    register_model_version,
    save_evaluation_run,
    save_predictions,
)
from db.review_queue import queue_filter_values

REPO = Path(__file__).resolve().parents[2]


# no SQL under app/ at all: tests/db/test_no_sql_in_app.py
def test_db_joins_the_current_annotation_once():
    calls = [
        path.name
        for path in sorted((REPO / "db").glob("*.py"))
        for _ in re.finditer(r"= latest_annotation_subquery\(\)", path.read_text(encoding="utf-8"))
    ]
    # one use: inside join_current_annotation, which the queue, progress, exports and current states call
    assert calls == ["annotations.py"], calls


def test_the_reads_moved_out_of_the_app(sessions, mini_mnre):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
        pair_id = session.scalars(select(EntityPair.id)).first()
        record_annotation(session, pair_id, status="accepted", annotator="ann", expected_revision=0)
        base = register_model_version(session, "ifaformer-a", "/m/a", "full")
        child = register_model_version(
            session, "ifaformer-b", "/m/b", "full", parent_version_id="ifaformer-a"
        )
        save_evaluation_run(session, "full", "standard", "val", {"f1": 0.5}, version_key=child.id)
        save_evaluation_run(session, "text_only", "standard", "val", {"f1": 0.4})
    with sessions() as session:
        values = queue_filter_values(session)
        runs = evaluation_runs_with_versions(session, "val")
    assert base.id != child.id
    assert values == {
        "split": ["train", "val"],
        "gold_label": ["/loc/loc/contain", "/per/org/member_of", "/per/per/peer", "None"],
        "annotator": ["ann"],
    }
    assert [(run.variant, version.version_id if version else None) for run, version in runs] == [
        ("full", "ifaformer-b"),
        ("text_only", None),
    ]


def test_the_reads_moved_out_of_the_app_pages_and_jobs(sessions, mini_mnre):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
        import_mnre(session, mini_mnre, dataset="copy")
        ids = {
            (name, pair.split, pair.source_line): pair.id
            for pair, name in session.execute(
                select(EntityPair, Dataset.name).join(Dataset, Dataset.id == EntityPair.dataset_id)
            )
        }
        version = register_model_version(session, "ifaformer-a", "/m/a", "full")
        scored = ids[("mnre", "val", 2)]
        save_predictions(session, version.id, [{"pair_id": scored, "probabilities": {"None": 1.0}}])
    with sessions() as session:
        assert count_pairs(session) == 14
        # img1.jpg is the only picture on disk: train lines 1 and 2 share it; the copy's pairs are another dataset
        assert other_pairs_with_image(session, ids[("mnre", "train", 1)], 10) == [ids[("mnre", "train", 2)]]
        assert other_pairs_with_image(session, ids[("mnre", "train", 1)], 0) == []
        todo = pairs_without_prediction(session, version.id)
        by_id = {pair_id: key for key, pair_id in ids.items()}
        # val first (minus the scored pair), then train, each in id order; a method the version never ran: all
        assert [by_id[pair_id][1] for pair_id in todo] == ["val"] * 3 + ["train"] * 10
        assert scored not in todo and todo == sorted(todo[:3]) + sorted(todo[3:])
        assert len(pairs_without_prediction(session, version.id, method="shuffled-image")) == 14
        pair, post = pairs_with_posts(session, [scored])[scored]
        assert (
            pair.id == scored and post.id == pair.post_id and get_post(session, post.id).tokens == post.tokens
        )
        with pytest.raises(LabelStoreError, match="no post with id 999999"):
            get_post(session, 999999)
        assert model_version_or_none(session, "ifaformer-a").id == version.id
        assert model_version_or_none(session, "nope") is None
        assert latest_model_version(session).version_id == "ifaformer-a"
