"""Who is reviewing, shown in the sidebar: the provider's identity after st.login, else a name typed once.

The identity lives in st.session_state["reviewer"] (app.ui.auth.IDENTITY_KEY), which is never a widget key: Streamlit
drops widget keys when st.switch_page changes the page (Queue's "Review these in this order", Add post's "Review
it now"), so the typed-name box has a key of its own and is mirrored into the identity by its on_change callback,
and refilled from the identity whenever Streamlit has dropped it.

The typed name survives a reload (a new browser session) in a cookie of this browser, never in the URL: a link may
be shared, a cookie stays with the browser that typed the name. Typed-name mode serves one person on loopback and
checks no name, so the cookie vouches for nothing more than the box did; it is read only in that mode, through the
same checks as a typed name, and written by a one-line script with the name JSON-escaped.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

import streamlit as st

from app.ui.auth import IDENTITY_KEY, current_actor, oidc_configured
from app.ui.render import plain
from db.validate import identity_problem

NAME_BOX_KEY = "identity_name_box"
NAME_PROBLEM_KEY = "identity_name_problem"  # why the typed name was not taken, shown until it is fixed
NAME_COOKIE = "mrelens_typed_name"  # this browser's typed name (typed-name mode only)
COOKIE_PENDING_KEY = "identity_cookie_pending"  # the name to write into the cookie on the next run
COOKIE_DAYS = 30


def _keep_typed_name() -> None:
    name = (st.session_state.get(NAME_BOX_KEY) or "").strip()
    # stored with every decision: the same checks as any identity entering the store (db.validate)
    problem = identity_problem(name) if name else None
    st.session_state[NAME_PROBLEM_KEY] = problem
    st.session_state[IDENTITY_KEY] = "" if problem else name
    if not problem:
        st.session_state[COOKIE_PENDING_KEY] = name  # "" clears the cookie


def remembered_name() -> str:
    """The name this browser typed before (its cookie), "" when none or when it would not pass as a typed name."""
    value = unquote(st.context.cookies.get(NAME_COOKIE) or "").strip()
    return "" if not value or identity_problem(value) else value


def cookie_script(name: str) -> str:
    """The script that keeps `name` in this browser's cookie ("" removes it); the name is a JSON string literal,
    with "<" escaped so it cannot close the script."""
    literal = json.dumps(name).replace("<", "\\u003c")
    age = COOKIE_DAYS * 86400 if name else 0
    return (
        f"<script>document.cookie = {json.dumps(NAME_COOKIE)} + '=' + encodeURIComponent({literal}) + "
        f"'; path=/; max-age={age}; SameSite=Strict';</script>"
    )


def identity_sidebar() -> None:
    """Show who is reviewing (and their role) in the sidebar; in typed-name mode ask for the name."""
    with st.sidebar:
        if oidc_configured():
            actor = current_actor()
            if st.user.is_logged_in:
                st.caption(f"Logged in as **{plain(actor.identity)}** ({actor.role})")
                st.button("Log out", on_click=st.logout, key="identity_logout")
            return
        if not st.session_state.get(IDENTITY_KEY) and not st.session_state.get("identity_cookie_read"):
            st.session_state["identity_cookie_read"] = True  # a new browser session: the name typed before it
            st.session_state[IDENTITY_KEY] = remembered_name()
        if NAME_BOX_KEY not in st.session_state:  # first run, or dropped by a page switch
            st.session_state[NAME_BOX_KEY] = st.session_state.get(IDENTITY_KEY, "")
        pending = st.session_state.pop(COOKIE_PENDING_KEY, None)
        if pending is not None:
            st.html(cookie_script(pending), unsafe_allow_javascript=True)
        st.text_input(
            "Your name",
            key=NAME_BOX_KEY,
            on_change=_keep_typed_name,
            placeholder="recorded with every decision",
            help="Stored with every review action; this browser keeps it (a cookie) across reloads.",
        )
        if st.session_state.get(NAME_PROBLEM_KEY):
            st.error(
                f"This name cannot be recorded: the identity {plain(st.session_state[NAME_PROBLEM_KEY])}."
            )
        st.caption(
            "Typed-name mode: for one person on this machine (loopback only), who is also the admin. Names are "
            "not checked; for a team, configure a login provider (README: Logins and roles)."
        )


def require_reviewer() -> str:
    """The reviewer's identity, or stop the page with a prompt to give it (pages that write call this)."""
    name = (st.session_state.get(IDENTITY_KEY) or "").strip()
    if st.session_state.get(NAME_PROBLEM_KEY):
        st.error(
            f"The name in the sidebar cannot be recorded: the identity {plain(st.session_state[NAME_PROBLEM_KEY])}."
        )
        st.stop()
    if not name:
        st.info("Enter your name in the sidebar first: every decision is saved with the reviewer's name.")
        st.stop()
    problem = identity_problem(name)
    if problem:
        st.error(f"This identity cannot be recorded: the identity {plain(problem)}.")
        st.stop()
    return name
