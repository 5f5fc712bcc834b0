"""Who is reviewing, shown in the sidebar: the provider's identity after st.login, else a name typed once.

The identity lives in st.session_state["reviewer"] (app.ui.auth.IDENTITY_KEY), which is never a widget key: Streamlit
drops widget keys when st.switch_page changes the page (Queue's "Review these in this order", Add post's "Review
it now"), so the typed-name box has a key of its own and is mirrored into the identity by its on_change callback,
and refilled from the identity whenever Streamlit has dropped it.
"""

from __future__ import annotations

import streamlit as st

from app.ui.auth import IDENTITY_KEY, current_actor, oidc_configured
from app.ui.render import plain
from db.validate import identity_problem

NAME_BOX_KEY = "identity_name_box"
NAME_PROBLEM_KEY = "identity_name_problem"  # why the typed name was not taken, shown until it is fixed


def _keep_typed_name() -> None:
    name = (st.session_state.get(NAME_BOX_KEY) or "").strip()
    # stored with every decision: the same checks as any identity entering the store (db.validate)
    problem = identity_problem(name) if name else None
    st.session_state[NAME_PROBLEM_KEY] = problem
    st.session_state[IDENTITY_KEY] = "" if problem else name


def identity_sidebar() -> None:
    """Show who is reviewing (and their role) in the sidebar; in typed-name mode ask for the name."""
    with st.sidebar:
        if oidc_configured():
            actor = current_actor()
            if st.user.is_logged_in:
                st.caption(f"Logged in as **{plain(actor.identity)}** ({actor.role})")
                st.button("Log out", on_click=st.logout, key="identity_logout")
            return
        if NAME_BOX_KEY not in st.session_state:  # first run, or dropped by a page switch
            st.session_state[NAME_BOX_KEY] = st.session_state.get(IDENTITY_KEY, "")
        st.text_input(
            "Your name",
            key=NAME_BOX_KEY,
            on_change=_keep_typed_name,
            placeholder="recorded with every decision",
            help="Asked once per browser session; stored with every review action.",
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
