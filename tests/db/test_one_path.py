"""One path per job: the app's store module holds no SQL, and the current-annotation join is written once."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select

from db.io import import_mnre
from db.models import EntityPair
from db.queries import (
    evaluation_runs_with_versions,
    model_versions_newest_first,
    queue_filter_values,
    record_annotation,
    register_model_version,
    save_evaluation_run,
)

REPO = Path(__file__).resolve().parents[2]


def test_app_store_has_no_sql_and_db_joins_the_current_annotation_once():
    store_source = (REPO / "app" / "store.py").read_text(encoding="utf-8")
    assert not re.search(r"\bselect\(|session\.get\(|session\.scalars?\(|session\.execute\(", store_source)
    calls = [
        path.name
        for path in sorted((REPO / "db").glob("*.py"))
        for _ in re.finditer(r"= latest_annotation_subquery\(\)", path.read_text(encoding="utf-8"))
    ]
    # one use: inside join_current_annotation, which the queue, progress, exports and current states call
    assert calls == ["queries.py"], calls


def test_the_reads_moved_out_of_the_app(sessions, mini_mnre):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
        pair_id = session.scalars(select(EntityPair.id)).first()
        record_annotation(session, pair_id, status="accepted", annotator="ann", expected_revision=0)
        base = register_model_version(session, "ifaformer-a", "/m/a", "full")
        child = register_model_version(
            session, "ifaformer-b", "/m/b", "full", parent_version_id="ifaformer-a"
        )
        save_evaluation_run(session, "full", "standard", "val", {"f1": 0.5}, model_version_id=child.id)
        save_evaluation_run(session, "text_only", "standard", "val", {"f1": 0.4})
    with sessions() as session:
        versions = model_versions_newest_first(session)
        values = queue_filter_values(session)
        runs = evaluation_runs_with_versions(session, "val")
    # read after the session closed: the parent was loaded with the versions
    assert {v.version_id: (v.parent.version_id if v.parent else None) for v in versions} == {
        "ifaformer-a": None,
        "ifaformer-b": "ifaformer-a",
    }
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
