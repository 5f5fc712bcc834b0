"""A typed reviewer name is checked like every stored identity (db.validate): at most 200 characters (the column's
size: PostgreSQL would raise DataError), no line breaks or other control characters."""

from __future__ import annotations

import pytest

from app.ui.identity import NAME_BOX_KEY
from db.roles import Actor
from tests.app.conftest import no_exceptions
from tests.app.test_identity import annotators


@pytest.mark.parametrize("name", ["x" * 201, "ann\nbob: kappa 1.000"])
def test_a_bad_typed_name_is_refused_on_review(make_app, seeded_url, name):
    at = make_app(seeded_url, reviewer=None)
    at.sidebar.text_input(key=NAME_BOX_KEY).input(name).run()
    at.switch_page("views/review.py").run()
    no_exceptions(at)
    assert any("identity" in e.value for e in at.error) or any(
        "identity" in e.value for e in at.sidebar.error
    )
    assert not [b for b in at.button if b.key == "review_accept"]
    assert annotators(seeded_url) == []


def test_actor_refuses_identities_that_do_not_fit():
    with pytest.raises(ValueError, match="at most 200"):
        Actor("x" * 201, "reviewer")
    with pytest.raises(ValueError, match="control"):
        Actor("a\nb", "admin")
