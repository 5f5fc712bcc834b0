"""The model status drawn: the sidebar's line on every page, and the warning on Review and Inspect when there is no
model or a weak one. What they say comes from app.services.model_status (the one status source)."""

from __future__ import annotations

import streamlit as st

from app.services.model_status import (
    model_status,
    model_status_line,
    no_active_model_text,
    training_text,
    weakness,
)
from app.ui.resources import get_sessions

SIDEBAR_REFRESH_SECONDS = 5


def sidebar_model_status() -> None:
    """The sidebar's status line, redrawn every few seconds while a model is training or queued (a fragment inside
    the sidebar: on a page that polls its own fragment, Jobs or Inspect, the sidebar moves with it)."""
    with get_sessions()() as session:
        training = model_status(session).training is not None

    def status_line() -> None:
        with get_sessions()() as session:
            st.caption(model_status_line(session))

    with st.sidebar:
        st.fragment(run_every=SIDEBAR_REFRESH_SECONDS if training else None)(status_line)()


def weak_model_warning() -> None:
    """On the pages that show the model's suggestions and explanations: say when they are not worth much."""
    with get_sessions()() as session:
        status = model_status(session)
        training = training_text(status.training) if status.training is not None else None
    later = f" Meanwhile {training}." if training else ""
    if status.version is None:
        st.info(no_active_model_text(status, "there are no suggestions or explanations"))
    elif status.weak:
        st.warning(
            f"The active model **{status.version}** is weak ({weakness(status.active)}): "
            f"treat its suggested labels, attention and attributions as noise.{later}"
        )
