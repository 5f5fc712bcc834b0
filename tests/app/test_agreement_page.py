"""Agreement between reviewers on the labels and on the rationales: on the Queue page (on request) and from
`python -m db agreement`."""

from __future__ import annotations

from db.annotations import record_annotation
from db.rationales import Rationale
from db.schema import open_database
from tests.app.conftest import no_exceptions


def two_reviewers(url: str) -> None:
    """Ann and Bob accept pair 1 and pair 2 with rationales: the same two words on pair 1, boxes on both."""
    from db.models import EntityPair, Post

    engine, sessions = open_database(url)
    with sessions.begin() as s:
        for pair_id in (1, 2):
            pair = s.get(EntityPair, pair_id)
            n = len(s.get(Post, pair.post_id).tokens)
            entity = set(range(pair.head_start, pair.head_end)) | set(range(pair.tail_start, pair.tail_end))
            words = tuple(w for w in range(n) if w not in entity)[:2]
            for revision, (name, box) in enumerate((("ann", (0, 0, 10, 10)), ("bob", (0, 0, 10, 20)))):
                rationale = Rationale(words, box, (64, 64))
                record_annotation(
                    s,
                    pair_id,
                    status="accepted",
                    annotator=name,
                    expected_revision=revision,
                    rationale=rationale,
                )
    engine.dispose()


def test_queue_page_shows_label_and_rationale_agreement(make_app, seeded_url):
    two_reviewers(seeded_url)
    at = make_app(seeded_url, "views/queue.py")
    no_exceptions(at)
    assert not [d for d in at.dataframe if "token kappa" in d.value.columns], "nothing computed until asked"
    at.toggle(key="queue_agreement").set_value(True).run()
    no_exceptions(at)
    labels = next(d.value for d in at.dataframe if "Cohen's kappa" in d.value.columns)
    rationales = next(d.value for d in at.dataframe if "token kappa" in d.value.columns)
    assert list(labels["reviewers"]) == ["ann / bob"] and list(labels["pairs"]) == [2]
    row = rationales.iloc[0]
    assert row["reviewers"] == "ann / bob" and row["pairs"] == 2
    assert row["token F1"] == 1.0 and row["box IoU"] == 0.5 and row["pairs with two boxes"] == 2


def test_db_agreement_prints_the_rationale_agreement(seeded_url, capsys):
    from db.cli import main

    two_reviewers(seeded_url)
    assert main(["--database-url", seeded_url, "agreement"]) == 0
    out = capsys.readouterr().out
    assert "Cohen's kappa ann vs bob" in out
    assert "rationales: reviewers" in out and "ann / bob | 2 | " in out and "0.500 (2)" in out
