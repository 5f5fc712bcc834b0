"""Logins and roles for the app.

Two modes, chosen by the Streamlit secrets (see README "Logins and roles"):

- OpenID Connect: an `[auth]` section is configured. Nobody sees a page before logging in through `st.login`, and
  the identity stored with every decision is the provider's (the `email` claim when `email_verified` is the boolean
  true, else the subject `sub`). Admins are listed in `[mrelens.roles] admins = [...]` as {issuer, claim, value}
  tables (or plain emails, any provider) and/or the `MRELENS_ADMINS` environment variable (comma-separated emails);
  identities are compared with RFC 8265 (db.roles.identity_key), look-alikes refused; everyone else who logs in is
  a reviewer.
- Typed name: no `[auth]` section. One person on this machine types a name; the app refuses connections that do
  not come from loopback, and that person administers their own store.

Pages ask here who is acting (`current_actor`) and call `refuse_unless_admin` before an admin action; the store
functions check the same `db.roles.Actor` again.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping

import streamlit as st

from db.roles import (
    ADMIN,
    LOCAL_ADMIN,
    REVIEWER,
    Actor,
    AdminRule,
    IdentityError,
    PermissionDeniedError,
    admin_rules,
    identity_key,
    require_admin,
    role_for,
)
from db.validate import identity_problem

ADMINS_ENV = "MRELENS_ADMINS"
# The session_state key that holds who is reviewing. It is never a widget key: Streamlit drops widget keys when a
# page switches with st.switch_page, and the identity must survive every page switch.
IDENTITY_KEY = "reviewer"


# only reachable if a page runs without require_login: a reviewer, never an admin
NOT_LOGGED_IN = Actor("someone not logged in", REVIEWER)


class AuthConfigError(ValueError):
    """The login or role configuration is unusable; the message names the setting."""


def _secret(name: str) -> Mapping | None:
    try:
        value = st.secrets.get(name)
    except FileNotFoundError:  # no secrets.toml at all: nothing configured
        return None
    return value if isinstance(value, Mapping) else None


def oidc_configured() -> bool:
    """Whether an OpenID Connect provider is configured (a Streamlit secrets `[auth]` section)."""
    return _secret("auth") is not None


def login_providers() -> list[str | None]:
    """The providers to offer: None for a single provider in `[auth]`, else the names of `[auth.<name>]`."""
    auth = _secret("auth") or {}
    named = [name for name, value in auth.items() if isinstance(value, Mapping)]
    return [None] if "server_metadata_url" in auth or not named else named


def configured_admins() -> list[AdminRule]:
    """Admins from secrets `[mrelens.roles] admins` and the MRELENS_ADMINS environment variable
    (db.roles.admin_rules: tables {issuer, claim, value}, or plain strings: an email from any provider)."""
    roles = (_secret("mrelens") or {}).get("roles", {})
    if not isinstance(roles, Mapping):
        raise AuthConfigError('secrets: [mrelens.roles] must be a table, e.g. admins = ["you@example.org"]')
    admins = roles.get("admins", [])
    if not isinstance(admins, list | tuple) or not all(isinstance(a, str | Mapping) for a in admins):
        raise AuthConfigError(
            "secrets: [mrelens.roles] admins must be a list of {issuer, claim, value} tables or emails, e.g. "
            'admins = [{issuer = "https://idp.example.org", claim = "email", value = "you@example.org"}]'
        )
    try:
        return admin_rules([*admins, *os.environ.get(ADMINS_ENV, "").split(",")])
    except ValueError as err:
        raise AuthConfigError(f"secrets: [mrelens.roles] admins: {err}") from err


def provider_claim(user: Mapping) -> tuple[str | None, str, str]:
    """(issuer, claim, value) of the identity a provider vouches for: the `email` claim when the provider says it
    is verified (`email_verified` is the boolean true: "false", 0 or a missing claim are not), else the subject
    `sub`; value "" when it sent neither. `issuer` is the token's `iss` (None if absent)."""
    issuer = user.get("iss") if isinstance(user.get("iss"), str) else None
    claims = ("email", "sub") if user.get("email_verified") is True else ("sub",)
    for claim in claims:
        value = user.get(claim)
        if isinstance(value, str) and value.strip():
            return issuer, claim, value.strip()
    return issuer, "sub", ""


def provider_identity(user: Mapping) -> str:
    """The identity stored with what the user does: a verified email, else the subject; "" for neither."""
    return provider_claim(user)[2]


def current_actor() -> Actor:
    """Who is acting in this session. With a provider: the logged-in identity and its role (before a login, an
    anonymous reviewer, never an admin). In typed-name mode: the typed name, or the local user, as admin."""
    if oidc_configured():
        issuer, claim, identity = provider_claim(st.user) if st.user.is_logged_in else (None, "sub", "")
        if not identity or usable_identity_problem(identity, claim):
            return NOT_LOGGED_IN
        return Actor(identity, role_for(identity, configured_admins(), claim, issuer))
    name = (st.session_state.get(IDENTITY_KEY) or "").strip()
    # typed-name mode serves one person on loopback, who administers their own store
    return Actor(name, ADMIN) if name else LOCAL_ADMIN


def remote_client(ip: object) -> bool:
    """Whether a connection's address is another machine's (Streamlit gives None for a loopback connection)."""
    if not isinstance(ip, str) or not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:  # not an address: cannot be shown to be loopback
        return True
    mapped = getattr(address, "ipv4_mapped", None)
    return not (mapped or address).is_loopback


def require_login() -> None:
    """Stop the run unless the visitor may see pages; in OIDC mode also record the provider's identity.

    Called by the entrypoint before st.navigation, so that no page (nor the page list) is shown before a login.
    """
    if not oidc_configured():
        if remote_client(st.context.ip_address):
            st.title("MRE Lens")
            st.error(
                f"This app runs in typed-name mode, which serves only this machine (loopback); the connection "
                f"came from {st.context.ip_address}. For a team, configure an OpenID Connect provider "
                "(README: Logins and roles)."
            )
            st.stop()
        return
    try:
        configured_admins()
    except AuthConfigError as err:
        st.error(str(err))
        st.stop()
    if not st.user.is_logged_in:
        # after a logout nothing may still be saved under the previous identity (callbacks run before this check)
        st.session_state[IDENTITY_KEY] = ""
        st.title("MRE Lens")
        st.markdown(
            "Log in to review. The identity your provider sends (email, else subject) is recorded with every "
            "decision; admins are set in the app's configuration."
        )
        for provider in login_providers():
            st.button(
                f"Log in with {provider}" if provider else "Log in",
                type="primary",
                on_click=st.login,
                args=(provider,) if provider else (),
                key=f"auth_login_{provider or 'default'}",
            )
        st.stop()
    _, claim, identity = provider_claim(st.user)
    if not identity:
        st.session_state[IDENTITY_KEY] = ""
        st.error(
            "The identity provider sent neither an email nor a subject (sub) it vouches for (an unverified email "
            "does not count): nothing can be recorded."
        )
        st.button("Log out", on_click=st.logout, key="auth_logout_unknown")
        st.stop()
    problem = usable_identity_problem(identity, claim)
    if problem:
        st.session_state[IDENTITY_KEY] = ""
        st.error(f"This identity cannot be used here: {problem}. Log in with another account.")
        st.button("Log out", on_click=st.logout, key="auth_logout_unusable")
        st.stop()
    st.session_state[IDENTITY_KEY] = identity


def usable_identity_problem(identity: str, claim: str) -> str | None:
    """Why a provider's identity cannot be used (too long for the store, control characters, not in its RFC 8265
    normal form, look-alike scripts mixed), or None."""
    problem = identity_problem(identity)
    if problem:
        return f"the identity {problem}"
    try:
        identity_key(identity, claim)
    except IdentityError as err:
        return str(err)
    return None


def refuse_unless_admin(action: str) -> Actor | None:
    """The acting admin; for anyone else show the refusal in the page and return None (the caller does nothing)."""
    try:
        return require_admin(current_actor(), action)
    except PermissionDeniedError as err:
        st.error(f"Refused: {err}")
        return None
