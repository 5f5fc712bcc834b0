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


def test_the_queue_page_never_imports_torch(seeded_url, tmp_path):
    """Queue's first render took 7.4 s in a new session, most of it importing torch for nothing: a fresh
    interpreter renders the (default) Queue page, and torch must not be among its modules afterwards."""
    import os
    import subprocess
    import sys

    from tests.app.conftest import MAIN

    script = tmp_path / "render_queue.py"
    script.write_text(
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({MAIN!r}, default_timeout=60)\n"
        "at.session_state['reviewer'] = 'tester'\n"
        "at.run()\n"
        "assert not at.exception, [e.value for e in at.exception]\n"
        "assert at.dataframe(key='queue_table').value is not None\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'captum')))\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "DATABASE_URL": seeded_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[0] == "NO-TORCH", done.stdout
