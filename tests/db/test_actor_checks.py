"""Undo and cancel are checked against the actor: a reviewer undoes only their own decision and cancels only their
own job; an admin may do both for anyone; `actor=None` is the local single user (an admin)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from db.annotations import record_annotation, undo_last
from db.io import import_mnre
from db.jobs import create_job, get_job, request_cancel
from db.models import Annotation, EntityPair
from db.roles import ADMIN, REVIEWER, Actor, PermissionDeniedError

ALICE, BOB, BOSS = Actor("alice", REVIEWER), Actor("bob", REVIEWER), Actor("boss", ADMIN)


@pytest.fixture
def decided(sessions, mini_mnre) -> int:
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
        pair = session.scalars(select(EntityPair).order_by(EntityPair.id)).first().id
        record_annotation(
            session, pair, status="corrected", label="None", annotator="alice", expected_revision=0
        )
    return pair


def _decisions(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Annotation))


def test_a_reviewer_cannot_undo_someone_elses_decision(sessions, decided):
    with pytest.raises(PermissionDeniedError, match="bob is a reviewer.*alice"), sessions.begin() as session:
        undo_last(session, decided, annotator="bob", expected_revision=1, actor=BOB)
    assert _decisions(sessions) == 1


def test_a_reviewer_undoes_their_own_and_an_admin_anyones(sessions, decided):
    with sessions.begin() as session:
        undo_last(session, decided, annotator="alice", expected_revision=1, actor=ALICE)
        record_annotation(session, decided, status="accepted", annotator="alice", expected_revision=2)
        undo_last(session, decided, annotator="boss", expected_revision=3, actor=BOSS)
    assert _decisions(sessions) == 4


def test_a_reviewer_cannot_cancel_someone_elses_job(sessions):
    with sessions.begin() as session:
        job = create_job(session, "first_model", "boss", {}).id
    with pytest.raises(PermissionDeniedError, match="alice is a reviewer"), sessions.begin() as session:
        request_cancel(session, job, actor=ALICE)
    with sessions() as session:
        assert get_job(session, job).status == "queued" and not get_job(session, job).cancel_requested
    with sessions.begin() as session:
        mine = create_job(session, "score", "alice", {}).id
        assert request_cancel(session, mine, actor=ALICE).status == "cancelled"
        assert request_cancel(session, job, actor=BOSS).status == "cancelled"


def test_the_app_wrappers_pass_the_actor_on(sessions, decided):
    from app.jobs import cancel
    from app.services.store import undo

    with pytest.raises(PermissionDeniedError):
        undo(sessions, decided, "bob", 1, actor=BOB)
    assert _decisions(sessions) == 1
    with sessions.begin() as session:
        job = create_job(session, "first_model", "boss", {}).id
    with pytest.raises(PermissionDeniedError):
        cancel(sessions, job, actor=ALICE)
    assert cancel(sessions, job, actor=BOSS) == "cancelled"
