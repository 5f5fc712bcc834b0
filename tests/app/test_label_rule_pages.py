"""One label rule on the pages: after each decision sequence of tests/db/test_label_rule.py's table, the Review page's
"current label" and the Queue's label column say what the store and every export say (the label in effect).

On the old code Review showed the gold label after "corrected to None, then skipped" while every export wrote "None".
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from db.models import EntityPair
from db.schema import open_database
from model.synthetic import MNRE_LABELS
from tests.app.conftest import no_exceptions
from tests.db.test_label_rule import SEQUENCES, apply_steps, concrete, labels_everywhere, other_label

NO_LABEL = "no label"


def _val_pair(url: str) -> tuple[int, str]:
    engine, sessions = open_database(url)
    with sessions() as session:
        pair = session.scalars(
            select(EntityPair).where(EntityPair.split == "val").order_by(EntityPair.id).limit(1)
        ).one()
        found = pair.id, pair.gold_label
    engine.dispose()
    return found


def review_label(at) -> str | None:
    """The label in effect as the Review page's header says it (None: "no label")."""
    line = next(m.value for m in at.markdown if "current label" in m.value)
    match = re.search(r"current label:\*\* (?:`([^`]*)`|no label)", line)
    assert match, line
    return match.group(1)


def queue_label(at, pair_id: int) -> str | None:
    table = at.dataframe(key="queue_table").value
    (label,) = table.loc[table["pair"] == pair_id, "label"]
    return None if label == NO_LABEL else label


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_review_and_queue_show_the_label_every_export_writes(make_app, seeded_url, tmp_path, name):
    pair_id, gold = _val_pair(seeded_url)
    other = other_label(gold, MNRE_LABELS)
    steps, expected = SEQUENCES[name]
    engine, sessions = open_database(seeded_url)
    apply_steps(sessions, pair_id, [(action, concrete(label, gold, other)) for action, label in steps])
    exported = labels_everywhere(sessions, pair_id, tmp_path / "exports")
    engine.dispose()
    expected = concrete(expected, gold, other)
    assert set(map(repr, exported.values())) == {repr(expected)}, exported

    at = make_app(seeded_url)  # the Queue is the default page
    no_exceptions(at)
    assert queue_label(at, pair_id) == expected, name
    at.session_state["review"].open(pair_id)
    at.switch_page("views/review.py").run()
    no_exceptions(at)
    assert review_label(at) == expected, name
