"""Roles in the store functions themselves (db.roles): a reviewer actor is refused activating a model, importing or
re-importing a dataset and retraining, before anything is written; an admin and the local single user (actor None,
the CLI and typed-name mode) may."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from db.errors import LabelStoreError
from db.models import EntityPair, ModelVersion, Post
from db.provenance import register_model_version, set_active
from db.roles import ADMIN, LOCAL_ADMIN, REVIEWER, Actor, PermissionDeniedError, require_admin, role_for
from db.schema import open_database

REVIEWER_ACTOR = Actor("rev@example.org", REVIEWER)
ADMIN_ACTOR = Actor("admin@example.org", ADMIN)


def counts(sessions) -> tuple[int, int, list[str]]:
    with sessions() as s:
        active = list(s.scalars(select(ModelVersion.version_id).where(ModelVersion.is_active)))
        return s.scalar(select(func.count(Post.id))), s.scalar(select(func.count(EntityPair.id))), active


@pytest.fixture
def store(seeded_url):
    engine, sessions = open_database(seeded_url)
    with sessions.begin() as s:
        register_model_version(s, "second", "/nowhere/second", "objects")
    yield sessions
    engine.dispose()


def test_refusal_is_a_label_store_error_and_a_permission_error():
    with pytest.raises(PermissionDeniedError) as err:
        require_admin(REVIEWER_ACTOR, "activate model version v1")
    assert isinstance(err.value, LabelStoreError) and isinstance(err.value, PermissionError)
    assert "rev@example.org is a reviewer: only an admin may activate model version v1" in str(err.value)
    assert require_admin(ADMIN_ACTOR, "x") is ADMIN_ACTOR
    assert require_admin(None, "x") is LOCAL_ADMIN, "no actor: the local single user, an admin"


def test_set_active_refuses_a_reviewer_and_changes_nothing(store):
    before = counts(store)
    refused = "only an admin may activate model version second"
    with pytest.raises(PermissionDeniedError, match=refused), store.begin() as s:
        set_active(s, "second", actor=REVIEWER_ACTOR)
    assert counts(store) == before
    with store.begin() as s:
        set_active(s, "second", actor=ADMIN_ACTOR)
    assert counts(store)[2] == ["second"]
    with store.begin() as s:
        set_active(s, before[2][0])  # existing callers (CLI, prepare, retrain) pass no actor
    assert counts(store) == before


def test_import_and_reimport_refuse_a_reviewer_before_writing(store, tmp_path):
    from db.io import import_mnre
    from model.synthetic import generate

    data = generate(tmp_path / "more", {"train": 4, "val": 2}, images_per_label=1, seed=3)
    before = counts(store)
    for dataset in ("fresh", "synthetic"):  # a new dataset and a re-import into the seeded one
        refused = f"only an admin may import or re-import dataset '{dataset}'"
        with pytest.raises(PermissionDeniedError, match=refused), store.begin() as s:
            import_mnre(s, data, dataset=dataset, actor=REVIEWER_ACTOR)
    assert counts(store) == before
    with store.begin() as s:
        report = import_mnre(s, data, dataset="fresh", actor=ADMIN_ACTOR)
    assert counts(store)[0] > before[0] and report is not None


def test_label_studio_import_refuses_a_reviewer_before_reading(store, tmp_path):
    from db.label_studio import import_label_studio

    export = tmp_path / "label_studio.json"
    export.write_text("[]")
    before = counts(store)
    refused = "only an admin may import a Label Studio export"
    with pytest.raises(PermissionDeniedError, match=refused), store.begin() as s:
        import_label_studio(s, export, actor=REVIEWER_ACTOR)
    assert counts(store) == before
    with store.begin() as s:
        import_label_studio(s, export, actor=ADMIN_ACTOR)  # an empty export: nothing to add, but allowed


@pytest.mark.parametrize("kind", ["retrain", "first_model", "default_model", "shuffle", "ablation"])
def test_training_jobs_refuse_a_reviewer_before_a_job_is_queued(store, kind):
    from app.jobs import enqueue
    from db.models import Job

    with pytest.raises(PermissionDeniedError, match=f"only an admin may start a {kind} job"):
        enqueue(store, kind, "rev@example.org", {}, actor=REVIEWER_ACTOR)
    with store() as s:
        assert s.scalar(select(func.count(Job.id))) == 0, "no job row, nothing sent to the queue"


def test_retrain_refuses_a_reviewer_before_registering_anything(store, tiny_checkpoint, tmp_path):
    from app.services.retrain import retrain

    before = counts(store)
    with store() as s:
        versions = s.scalar(select(func.count(ModelVersion.id)))
    # a checkpoint folder as base would be registered on the way: the refusal comes first
    with pytest.raises(PermissionDeniedError, match="only an admin may start a retraining"):
        retrain(store, str(tiny_checkpoint), tmp_path / "no-data", actor=REVIEWER_ACTOR, log=lambda _: None)
    with store() as s:
        assert s.scalar(select(func.count(ModelVersion.id))) == versions
    assert counts(store) == before
    assert not (tmp_path / "no-data").exists()


def test_roles_match_identities_without_case_or_spaces():
    assert role_for("Admin@Example.org", [" admin@example.org "]) == ADMIN
    assert role_for("rev@example.org", ["admin@example.org", ""]) == REVIEWER
    assert role_for("", ["", " "]) == REVIEWER


@pytest.mark.parametrize(
    ("identity", "role", "message"), [("", ADMIN, "empty"), ("a", "owner", "not one of")]
)
def test_an_actor_needs_an_identity_and_a_known_role(identity, role, message):
    with pytest.raises(ValueError, match=message):
        Actor(identity, role)
