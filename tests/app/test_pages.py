"""Every page renders without exceptions on an empty and on a seeded label store."""

from __future__ import annotations

import pytest

from tests.app.conftest import no_exceptions

PAGES = [
    "views/queue.py",
    "views/review.py",
    "views/inspect.py",
    "views/experiments.py",
    "views/add_post.py",
    "views/export.py",
    "views/models.py",
]


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_on_an_empty_store(make_app, empty_url, page):
    at = make_app(empty_url, page)
    no_exceptions(at)
    assert at.title, "every page has a title"


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_on_a_seeded_store(make_app, seeded_url, page):
    at = make_app(seeded_url, page)
    no_exceptions(at)
    assert not at.error, [e.value for e in at.error]
