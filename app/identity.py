"""Who is reviewing: st.login when an identity provider is configured, else a name asked once per session."""

from __future__ import annotations

import streamlit as st


def identity_provider_configured() -> bool:
    try:
        return "auth" in st.secrets
    except FileNotFoundError:  # no secrets.toml at all: no identity provider
        return False


def identity_sidebar() -> None:
    """Fill st.session_state['reviewer'] and show it in the sidebar."""
    with st.sidebar:
        if identity_provider_configured():
            if not st.user.is_logged_in:
                st.button("Log in", on_click=st.login, key="identity_login")
                return
            st.session_state["reviewer"] = st.user.get("email") or st.user.get("name") or ""
            st.caption(f"Reviewing as **{st.session_state['reviewer']}**")
            st.button("Log out", on_click=st.logout, key="identity_logout")
            return
        st.text_input(
            "Your name",
            key="reviewer",
            placeholder="recorded with every decision",
            help="Asked once per browser session; stored with every review action.",
        )


def require_reviewer() -> str:
    """The reviewer's name, or stop the page with a prompt to give it (pages that write call this)."""
    name = (st.session_state.get("reviewer") or "").strip()
    if not name:
        st.info("Enter your name in the sidebar first: every decision is saved with the reviewer's name.")
        st.stop()
    return name
