"""Logins and roles in the app (AppTest, with a provider configured through at.secrets and st.user seeded through
at.user): nobody sees a page before logging in, decisions carry the provider's identity whatever the session says,
and a reviewer is refused the admin actions of the Models page while an admin may do them."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from app.ui.auth import ADMINS_ENV, provider_claim, provider_identity, remote_client
from app.ui.render import plain  # names are shown as typed: Markdown-escaped
from db.models import Annotation, ModelVersion
from db.schema import open_database
from tests.app.conftest import MAIN, no_exceptions

AUTH = {
    "redirect_uri": "http://127.0.0.1:8850/oauth2callback",
    "cookie_secret": "a-cookie-secret-for-the-tests",
    "client_id": "mrelens",
    "client_secret": "mrelens-secret",
    "server_metadata_url": "http://127.0.0.1:8851/.well-known/openid-configuration",
}
PAGES = [
    "views/queue.py",
    "views/review.py",
    "views/inspect.py",
    "views/experiments.py",
    "views/add_post.py",
    "views/export.py",
    "views/models.py",
]
ADMIN_EMAIL = "Admin@Example.org"


@pytest.fixture
def oidc_app(monkeypatch):
    """oidc_app(url, user=None, page=None, admins=(ADMIN_EMAIL,)) -> an AppTest with a provider configured."""
    monkeypatch.delenv(ADMINS_ENV, raising=False)

    def make(url: str, user: dict | None = None, page: str | None = None, admins=(ADMIN_EMAIL,)) -> AppTest:
        monkeypatch.setenv("DATABASE_URL", url)
        at = AppTest.from_file(MAIN, default_timeout=60)
        at.secrets["auth"] = dict(AUTH)
        at.secrets["mrelens"] = {"roles": {"admins": list(admins) if isinstance(admins, tuple) else admins}}
        at.user = {"is_logged_in": False} if user is None else {"is_logged_in": True, **user}
        at.run()
        if page:
            at.switch_page(page).run()
        return at

    return make


def rows(url: str, model, *columns):
    engine, sessions = open_database(url)
    with sessions() as s:
        result = [tuple(r) for r in s.execute(select(*columns).order_by(model.id))]
    engine.dispose()
    return result


def active_versions(url: str) -> list[str]:
    return [
        v for v, active in rows(url, ModelVersion, ModelVersion.version_id, ModelVersion.is_active) if active
    ]


@pytest.mark.parametrize("page", PAGES)
def test_no_page_before_a_login(oidc_app, seeded_url, page):
    at = oidc_app(seeded_url, page=page)
    no_exceptions(at)
    assert [t.value for t in at.title] == ["MRE Lens"], "only the login screen, never the page's own title"
    assert [b.label for b in at.button] == ["Log in"]
    assert not at.text_input and not at.dataframe and not at.selectbox, "no widget of any page is drawn"
    assert not any("Your name" in w.label for w in at.sidebar.text_input), "no typed name with a provider"


def test_decisions_carry_the_providers_identity_not_a_typed_name(oidc_app, seeded_url):
    at = oidc_app(seeded_url, {"email": "rev@example.org", "email_verified": True, "sub": "u-17"})
    assert not [w for w in at.sidebar.text_input], "no name box when a provider says who is logged in"
    assert any(
        f"Logged in as **{plain('rev@example.org')}** (reviewer)" in c.value for c in at.sidebar.caption
    )
    # a forged session value does not change who is recorded
    at.session_state["reviewer"] = "Mallory"
    at.button(key="queue_start").click().run()
    no_exceptions(at)
    assert any(f"reviewing as {plain('rev@example.org')}" in c.value for c in at.caption)
    pair = at.session_state["review_shown"][0]
    at.button(key="review_accept").click().run()
    no_exceptions(at)
    assert rows(seeded_url, Annotation, Annotation.pair_id, Annotation.annotator) == [
        (pair, "rev@example.org")
    ]


def test_a_logout_forgets_the_identity(oidc_app, seeded_url):
    at = oidc_app(seeded_url, {"email": "rev@example.org", "email_verified": True})
    assert at.session_state["reviewer"] == "rev@example.org"
    at.user = {"is_logged_in": False}
    at.run()
    assert at.session_state["reviewer"] == "", "nothing can be saved under the previous identity"
    assert [b.label for b in at.button] == ["Log in"]


def test_the_subject_is_the_identity_when_there_is_no_email(oidc_app, seeded_url):
    at = oidc_app(seeded_url, {"sub": "u-42"})
    at.button(key="queue_start").click().run()
    at.button(key="review_skip").click().run()
    no_exceptions(at)
    assert [a for (a,) in rows(seeded_url, Annotation, Annotation.annotator)] == ["u-42"]


def test_a_token_without_email_or_subject_records_nothing(oidc_app, seeded_url):
    at = oidc_app(seeded_url, {"name": "No Id"})
    assert any("neither an email nor a subject" in e.value for e in at.error)
    assert not at.dataframe and [b.key for b in at.button] == ["auth_logout_unknown"]


def test_a_reviewer_is_refused_activating_and_retraining(oidc_app, seeded_url):
    before = active_versions(seeded_url)
    at = oidc_app(seeded_url, {"email": "rev@example.org", "email_verified": True}, "views/models.py")
    no_exceptions(at)
    assert any("is a reviewer here" in i.value for i in at.info)
    # a second version to switch to, registered as the CLI would (local admin)
    engine, sessions = open_database(seeded_url)
    from db.provenance import register_model_version

    with sessions.begin() as s:
        register_model_version(s, "second", "/nowhere/second", "objects")
    engine.dispose()
    at.run()
    at.selectbox(key="models_pick").select("second").run()
    at.button(key="models_activate").click().run()
    no_exceptions(at)
    errors = " ".join(e.value for e in at.error)
    assert "rev@example.org is a reviewer: only an admin may activate model version second" in errors
    assert active_versions(seeded_url) == before, "the store refused too: nothing changed"
    at.button(key="models_retrain").click().run()
    no_exceptions(at)
    assert any("only an admin may start a retraining" in e.value for e in at.error)
    assert len(rows(seeded_url, ModelVersion, ModelVersion.id)) == 2, "no version registered"


def test_an_admin_may_activate(oidc_app, seeded_url):
    engine, sessions = open_database(seeded_url)
    from db.provenance import register_model_version

    with sessions.begin() as s:
        register_model_version(s, "second", "/nowhere/second", "objects")
    engine.dispose()
    # roles compare identities without case
    at = oidc_app(seeded_url, {"email": "admin@example.org", "email_verified": True}, "views/models.py")
    assert any(
        f"Logged in as **{plain('admin@example.org')}** (admin)" in c.value for c in at.sidebar.caption
    )
    assert not any("is a reviewer" in i.value for i in at.info)
    at.selectbox(key="models_pick").select("second").run()
    at.button(key="models_activate").click().run()
    no_exceptions(at)
    assert not at.error, [e.value for e in at.error]
    assert active_versions(seeded_url) == ["second"]


def test_admins_from_the_environment(oidc_app, seeded_url, monkeypatch):
    monkeypatch.setenv(ADMINS_ENV, " other@example.org , env-admin@example.org ")
    at = oidc_app(seeded_url, {"email": "env-admin@example.org", "email_verified": True}, admins=())
    assert any("(admin)" in c.value for c in at.sidebar.caption)
    at = oidc_app(seeded_url, {"email": "rev@example.org", "email_verified": True}, admins=())
    assert any("(reviewer)" in c.value for c in at.sidebar.caption)


@pytest.mark.parametrize("admins", ["admin@example.org", 5, ["a@b.c", 7]])
def test_a_bad_roles_setting_is_named(oidc_app, seeded_url, admins):
    at = oidc_app(seeded_url, {"email": "rev@example.org", "email_verified": True}, admins=admins)
    no_exceptions(at)
    assert any("[mrelens.roles] admins must be a list" in e.value for e in at.error)
    assert not at.dataframe


def test_provider_identity_prefers_email_then_subject():
    assert provider_identity({"email": " a@b.c ", "email_verified": True, "sub": "s"}) == "a@b.c"
    assert provider_identity({"email": "", "email_verified": True, "sub": "s-1"}) == "s-1"
    assert provider_identity({"name": "x"}) == ""
    # an email the provider did not verify could be anyone's (an admin's): the subject is used instead
    assert provider_identity({"email": ADMIN_EMAIL, "email_verified": False, "sub": "s-2"}) == "s-2"
    assert provider_identity({"email": "a@b.c", "email_verified": True, "sub": "s"}) == "a@b.c"
    # only the boolean true verifies an email: a string, a number or no claim at all do not
    for verified in ("true", "false", 1, 0, None):
        assert provider_identity({"email": ADMIN_EMAIL, "email_verified": verified, "sub": "s-3"}) == "s-3"
    assert provider_claim({"iss": "https://idp", "email": "a@b.c", "email_verified": True}) == (
        "https://idp",
        "email",
        "a@b.c",
    )


def test_a_subject_equal_to_an_admins_email_is_not_an_admin(oidc_app, seeded_url):
    at = oidc_app(seeded_url, {"sub": ADMIN_EMAIL.lower()}, "views/export.py")
    no_exceptions(at)
    assert any("(reviewer)" in c.value for c in at.sidebar.caption)


@pytest.mark.parametrize("email", ["\u0430dmin@example.org", "\u212aate@example.org", "\u017fam@example.org"])
def test_look_alike_identities_are_refused_at_login(oidc_app, seeded_url, email):
    at = oidc_app(
        seeded_url,
        {"email": email, "email_verified": True, "sub": "x"},
        admins=("admin@example.org", "kate@example.org", "sam@example.org"),
    )
    no_exceptions(at)
    assert any("cannot be used here" in e.value for e in at.error)
    assert not at.dataframe and [b.key for b in at.button] == ["auth_logout_unusable"]


def test_admin_tables_name_the_issuer_and_the_claim(oidc_app, seeded_url):
    rule = {"issuer": "https://corp.example", "claim": "email", "value": "boss@example.org"}
    user = {"iss": "https://corp.example", "email": "Boss@Example.org", "email_verified": True, "sub": "b"}
    at = oidc_app(seeded_url, user, admins=[rule])
    assert any("(admin)" in c.value for c in at.sidebar.caption)
    at = oidc_app(seeded_url, {**user, "iss": "https://partner.example"}, admins=[rule])
    assert any("(reviewer)" in c.value for c in at.sidebar.caption)


def test_typed_name_mode_serves_loopback_only():
    assert not remote_client(None), "Streamlit reports a loopback connection as None"
    assert (
        not remote_client("127.0.0.1") and not remote_client("::1") and not remote_client("::ffff:127.0.0.1")
    )
    assert remote_client("192.168.1.20") and remote_client("2001:db8::1") and remote_client("not-an-ip")


def test_one_login_button_per_named_provider(seeded_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", seeded_url)
    at = AppTest.from_file(MAIN, default_timeout=60)
    provider = {k: AUTH[k] for k in ("client_id", "client_secret", "server_metadata_url")}
    at.secrets["auth"] = {
        "redirect_uri": AUTH["redirect_uri"],
        "cookie_secret": AUTH["cookie_secret"],
        "corp": dict(provider),
        "partner": dict(provider),
    }
    at.user = {"is_logged_in": False}
    at.run()
    no_exceptions(at)
    assert [b.label for b in at.button] == ["Log in with corp", "Log in with partner"]
