"""Logins, roles and the reviewer's identity in a real browser: Debian's Chromium drives `streamlit run` on loopback.

- Typed-name mode: a name typed in the sidebar survives Queue -> Review through the real "Review these in this
  order" button and Add post -> Review through "Review it now", and decisions are stored under it.
- OpenID Connect: `oidc-provider-mock` (PyPI) runs on 127.0.0.1 as the provider. A visitor sees only the login
  screen; a reviewer logs in through the provider's form, reviews (the decision is stored under the provider's
  identity), is refused "Make active" on the Models page, logs out; an admin logs in and activates a version.

Servers listen on 127.0.0.1, on ports 8800-8899. Screenshots are saved under the test's tmp folder (path printed).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import ModelVersion
from db.schema import open_database
from tests.app.test_browser import (  # noqa: F401  (browser is a fixture)
    CHROMEDRIVER,
    CHROMIUM,
    REPO,
    browser,
    open_page,
    press,
    rows,
    wait_for,
    wait_idle,
)

PORTS = range(8800, 8900)
REVIEWER_EMAIL = "rev@example.org"
ADMIN_EMAIL = "admin@example.org"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium + chromium-driver (.ci/services/browser.sh installs them)",
    ),
]


def port_in_range() -> int:
    """A free loopback port of this test's range (8800-8899)."""
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 8800-8899 on 127.0.0.1")


@contextlib.contextmanager
def serving(args: list[str], health_url: str, log_path: Path, env: dict | None = None, timeout: float = 60):
    """Run a server process until the block ends; wait until `health_url` answers first."""
    log = open(log_path, "w")  # noqa: SIM115  (closed below, after the process)
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(health_url, timeout=2).read()
                break
            except OSError as err:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"{args[2:4]} did not start: {log_path.read_text()}") from err
                time.sleep(0.3)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@contextlib.contextmanager
def streamlit_app(url: str, feature_cache: Path, tmp_path: Path, secrets: str = ""):
    """The app on a loopback port of the range, with the given secrets.toml text (empty: typed-name mode)."""
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text(secrets)
    port = port_in_range()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "MRELENS_FEATURE_CACHE": str(feature_cache),
        "MRELENS_EXPORT_DIR": str(tmp_path / "exports"),
        "MRELENS_UPLOAD_DIR": str(tmp_path / "uploads"),
        "TORCH_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    env.pop("MRELENS_ADMINS", None)
    args = [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port)]
    # only this file's secrets: never a developer's ~/.streamlit/secrets.toml
    args += ["--server.address", "127.0.0.1", "--secrets.files", str(secrets_file)]
    app_url = f"http://127.0.0.1:{port}"
    with serving(args, f"{app_url}/_stcore/health", tmp_path / "streamlit.log", env):
        yield app_url


def body(driver) -> str:
    """The page's text as a person reads it: without the invisible word joiners app.ui.render.plain puts into
    URLs and e-mail addresses (so Streamlit does not make links of them)."""
    return driver.find_element("css selector", "body").text.replace("\u2060", "")


def click_button(driver, label: str, leaves_app: bool = False) -> None:
    driver.find_element("xpath", f"//button[.//p[normalize-space(.)='{label}']]").click()
    if not leaves_app:  # the provider's pages have no Streamlit run to wait for
        wait_idle(driver)


def wait_for_any(driver, *texts: str, timeout: float = 60, in_app: bool = True) -> None:
    """Until the page shows one of `texts` (across page loads: the provider's pages and the app's)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(
        driver, timeout, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
    ).until(lambda d: any(t in body(d) for t in texts))
    if in_app:
        wait_idle(driver)


def choose(driver, label: str, option: str) -> None:
    """Pick `option` in the selectbox labelled `label`, as a user does: open it, click the option."""
    driver.find_element(
        "xpath", f"//*[@data-testid='stSelectbox'][.//label[normalize-space(.)='{label}']]//input"
    ).click()
    from selenium.webdriver.support.ui import WebDriverWait

    # the option list opens with an animation: wait for the option
    WebDriverWait(driver, 10).until(
        lambda d: d.find_element("xpath", f"//*[@role='option'][contains(normalize-space(.), '{option}')]")
    ).click()
    wait_idle(driver)


def shown_pair(driver) -> int:
    return int(body(driver).split("Pair ", 1)[1].split(" ", 1)[0])


def test_typed_name_survives_switch_page_in_the_browser(seeded_url, app_feature_cache, browser, tmp_path):  # noqa: F811
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nscreenshots: {shots}")
    with streamlit_app(seeded_url, app_feature_cache, tmp_path) as url:
        browser.get(url)
        wait_for_any(browser, "pairs shown")
        assert "Typed-name mode" in body(browser), "the page says which mode it runs in"
        box = wait_for(browser, 'input[aria-label="Your name"]')
        box.send_keys("Dee Browser\n")
        wait_idle(browser)

        click_button(browser, "Review these in this order")  # st.switch_page
        wait_for_any(browser, "Keys:", "Enter your name")
        browser.save_screenshot(str(shots / "queue_to_review.png"))
        assert "Enter your name" not in body(browser)
        assert "reviewing as Dee Browser" in body(browser)
        name_box = browser.find_element("css selector", 'input[aria-label="Your name"]')
        assert name_box.get_attribute("value") == "Dee Browser"
        first = shown_pair(browser)
        press(browser, "a")
        wait_for_any(browser, f"Pair {first}: accepted")
        assert rows(seeded_url)[-1][::3] == (first, "Dee Browser")

        open_page(browser, "add_post")
        wait_for_any(browser, "mark the head and the tail")
        browser.find_element("css selector", 'textarea[aria-label="Post text"]').send_keys(
            "Ann met Bo in Paris"
        )
        browser.find_element("css selector", "h1").click()  # leaving the text area sends the text
        wait_idle(browser)
        wait_for_any(browser, "Head entity")
        for group, word in (("Head entity", "Ann"), ("Tail entity", "Paris")):
            browser.find_element(
                "xpath",
                f"//*[@data-testid='stButtonGroup'][.//*[contains(normalize-space(.), '{group}')]]"
                f"//button[normalize-space(.)='{word}']",
            ).click()
            wait_idle(browser)
        click_button(browser, "Add, ground and predict")
        wait_for_any(browser, "Review it now", timeout=120)
        click_button(browser, "Review it now")  # st.switch_page
        wait_for_any(browser, "Keys:", "Enter your name")
        browser.save_screenshot(str(shots / "add_post_to_review.png"))
        assert "reviewing as Dee Browser" in body(browser) and "Enter your name" not in body(browser)
        added = shown_pair(browser)
        press(browser, "x")
        wait_for_any(browser, f"Pair {added}: rejected")
        assert rows(seeded_url)[-1] == (added, "rejected", None, "Dee Browser")
        assert "Traceback" not in body(browser)


MOCK_PROVIDER = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port"]


@contextlib.contextmanager
def oidc_provider(tmp_path: Path):
    """The provider's URL: the one .ci/services/oidc.sh started (MRELENS_TEST_OIDC_URL), else one of our own."""
    started = os.environ.get("MRELENS_TEST_OIDC_URL")
    if started:
        yield started.rstrip("/")
        return
    port = port_in_range()
    url = f"http://127.0.0.1:{port}"
    with serving(
        [*MOCK_PROVIDER, str(port)], f"{url}/.well-known/openid-configuration", tmp_path / "provider.log"
    ):
        yield url


def secrets_toml(app_port_placeholder: str, provider_url: str) -> str:
    return f"""
[auth]
redirect_uri = "{app_port_placeholder}/oauth2callback"
cookie_secret = "mrelens-browser-test-cookie-secret"
client_id = "mrelens"
client_secret = "mrelens-test-secret"
server_metadata_url = "{provider_url}/.well-known/openid-configuration"

[mrelens.roles]
admins = ["{ADMIN_EMAIL}"]
"""


def set_claims(provider_url: str, sub: str, claims: dict) -> None:
    """What the mock provider sends for subject `sub` (its PUT /users/<sub>); without it, it sends only the subject
    as the email claim, unverified."""
    request = urllib.request.Request(
        f"{provider_url}/users/{urllib.parse.quote(sub, safe='')}",
        data=json.dumps(claims).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).read()


def log_in(driver, identity: str, expect: str | None = None) -> None:
    """From the app's login screen through the provider's login form (subject `identity`), back to the app, until
    it shows `expect` (default: "Logged in as <identity>")."""
    wait_for_any(driver, "Log in to review")
    click_button(driver, "Log in", leaves_app=True)
    wait_for_any(driver, "Authorize", in_app=False)
    driver.find_element("css selector", 'input[name="sub"]').send_keys(identity)
    driver.find_element("xpath", "//button[normalize-space(.)='Authorize']").click()
    wait_for_any(driver, expect or f"Logged in as {identity}")


def active_version(url: str) -> str:
    engine, sessions = open_database(url)
    with sessions() as s:
        active = s.scalars(select(ModelVersion.version_id).where(ModelVersion.is_active)).one()
    engine.dispose()
    return active


def test_logins_roles_and_stored_identity_with_a_real_provider(
    seeded_url,
    app_feature_cache,
    browser,  # noqa: F811
    tmp_path,
):
    from db.provenance import register_model_version

    engine, sessions = open_database(seeded_url)
    with sessions.begin() as s:
        register_model_version(s, "second", "/nowhere/second", "objects")
    engine.dispose()
    seeded_version = active_version(seeded_url)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nscreenshots: {shots}")

    with oidc_provider(tmp_path) as provider_url:
        for email in (REVIEWER_EMAIL, ADMIN_EMAIL):  # the provider vouches for both emails
            set_claims(provider_url, email, {"email": email, "email_verified": True})
        # the app's port is only known once it is picked: Streamlit fills in {port} itself
        secrets = secrets_toml("http://127.0.0.1:{port}", provider_url)
        with streamlit_app(seeded_url, app_feature_cache, tmp_path, secrets) as url:
            browser.get(f"{url}/review")  # a page's own address shows the login screen too
            wait_for_any(browser, "Log in to review")
            browser.save_screenshot(str(shots / "login.png"))
            text = body(browser)
            assert "Keys:" not in text and "Review queue" not in text and "Your name" not in text
            assert not browser.find_elements("css selector", '[data-testid="stSidebarNav"]'), "no page list"

            log_in(browser, REVIEWER_EMAIL)
            assert f"Logged in as {REVIEWER_EMAIL} (reviewer)" in body(browser)
            assert "Your name" not in body(browser)
            wait_for_any(browser, "pairs shown")  # the login comes back to the default page, Queue
            click_button(browser, "Review these in this order")
            wait_for_any(browser, "Keys:")
            assert f"reviewing as {REVIEWER_EMAIL}" in body(browser)
            pair = shown_pair(browser)
            press(browser, "a")
            wait_for_any(browser, f"Pair {pair}: accepted")
            assert rows(seeded_url)[-1][::3] == (pair, REVIEWER_EMAIL), "the provider's identity is stored"

            open_page(browser, "models")
            wait_for_any(browser, "is a reviewer here")
            choose(browser, "Version", "second")
            click_button(browser, "Make active")
            wait_for_any(browser, f"{REVIEWER_EMAIL} is a reviewer: only an admin may activate")
            browser.save_screenshot(str(shots / "reviewer_refused.png"))
            assert active_version(seeded_url) == seeded_version, "refused: nothing changed in the store"

            click_button(browser, "Log out", leaves_app=True)
            wait_for_any(browser, "End Session", in_app=False)  # the provider's end-session page
            browser.find_element("xpath", "//button[normalize-space(.)='End session']").click()
            browser.get(url)
            log_in(browser, ADMIN_EMAIL)
            assert f"Logged in as {ADMIN_EMAIL} (admin)" in body(browser)
            open_page(browser, "models")
            wait_for_any(browser, "Retrain on the curated labels")
            assert "is a reviewer here" not in body(browser)
            choose(browser, "Version", "second")
            click_button(browser, "Make active")
            # the page reruns right after its success message: the store is what tells
            deadline = time.time() + 30
            while active_version(seeded_url) != "second" and time.time() < deadline:
                time.sleep(0.3)
            wait_idle(browser)
            browser.save_screenshot(str(shots / "admin_activated.png"))
            assert active_version(seeded_url) == "second"
            assert "only an admin may" not in body(browser)
            assert "Traceback" not in body(browser)


def test_look_alike_and_unverified_identities_are_never_the_admin(
    seeded_url,
    app_feature_cache,
    browser,  # noqa: F811
    tmp_path,
):
    """The admin is admin@example.org. A login whose verified email is "аdmin@example.org" (Cyrillic а) is refused
    with a message; one whose email is the admin's but marked "true" (a string, not the boolean) is the subject,
    a reviewer."""
    with oidc_provider(tmp_path) as provider_url:
        look_alike = "\u0430dmin@example.org"
        set_claims(provider_url, "u-look-alike", {"email": look_alike, "email_verified": True})
        set_claims(provider_url, "u-unverified", {"email": ADMIN_EMAIL, "email_verified": "true"})
        secrets = secrets_toml("http://127.0.0.1:{port}", provider_url)
        with streamlit_app(seeded_url, app_feature_cache, tmp_path, secrets) as url:
            browser.get(url)
            log_in(browser, "u-look-alike", expect="cannot be used here")
            text = body(browser)
            assert "mixes the scripts" in text and "Logged in as" not in text
            assert not browser.find_elements("css selector", '[data-testid="stSidebarNav"]'), "no page list"
            click_button(browser, "Log out", leaves_app=True)
            wait_for_any(browser, "End Session", in_app=False)
            browser.find_element("xpath", "//button[normalize-space(.)='End session']").click()
            browser.get(url)
            log_in(browser, "u-unverified", expect="Logged in as u-unverified")
            assert "Logged in as u-unverified (reviewer)" in body(browser)
            assert "Traceback" not in body(browser)
