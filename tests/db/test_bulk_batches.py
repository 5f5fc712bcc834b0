"""Two bulk accepts are two batches: undoing one takes back its own pairs only, the other batch stays accepted
and can still be undone on its own (db.bulk_review)."""

from __future__ import annotations

from sqlalchemy import select

from db.annotations import pair_history
from db.bulk_review import bulk_accept, bulk_origin, undo_bulk_accept
from db.io import import_mnre
from db.models import EntityPair
from db.roles import ADMIN, Actor

BOSS = Actor("boss", ADMIN)


def test_undoing_one_bulk_accept_leaves_another_batch_alone(sessions, mini_mnre):
    with sessions.begin() as session:
        import_mnre(session, mini_mnre)
        pairs = list(session.scalars(select(EntityPair.id).order_by(EntityPair.id)))
    first_pairs, second_pairs = pairs[:3], pairs[3:]
    with sessions.begin() as session:
        first = bulk_accept(session, first_pairs, annotator="boss", actor=BOSS)
    with sessions.begin() as session:
        second = bulk_accept(session, second_pairs, annotator="boss", actor=BOSS)
    assert first.accepted == first_pairs and second.accepted == second_pairs

    with sessions.begin() as session:
        undone = undo_bulk_accept(session, first.batch, annotator="boss", actor=BOSS)
    assert (undone.undone, undone.kept) == (first_pairs, [])
    with sessions() as session:
        assert all(pair_history(session, p)[-1].status == "unreviewed" for p in first_pairs)
        current = [pair_history(session, p)[-1] for p in second_pairs]
    assert all(row.status == "accepted" and row.origin == bulk_origin(second.batch) for row in current), (
        "the other batch's pairs are not the first batch's to take back"
    )

    with sessions.begin() as session:  # the other batch is still undone on its own
        assert undo_bulk_accept(session, second.batch, annotator="boss", actor=BOSS).undone == second_pairs
