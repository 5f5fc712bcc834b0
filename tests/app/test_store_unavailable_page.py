"""A page whose label store cannot be opened says so in one error and never shows the URL's password."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.app.conftest import MAIN


def test_an_unreachable_store_is_one_error_without_the_password(monkeypatch):
    # port 1 on loopback: nothing listens, the connection is refused at once
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://reviewer:s3cr3t-pw@127.0.0.1:1/mrelens")
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.session_state["reviewer"] = "someone"
    at.run()
    shown = " ".join(e.value for e in at.error) + " ".join(str(e.value) for e in at.exception)
    assert [e.value for e in at.error if "cannot be opened" in e.value], shown
    assert "s3cr3t-pw" not in shown
    assert not at.exception
