"""MRE Lens: the review app. `streamlit run app/main.py`, or `python -m app.serve` (the same, with the page modules,
the label store and the active model warmed at server start). `make app` (app.launch) imports the data, starts the
job worker, queues the first trainings and serves the app through app.serve.

The entrypoint asks for a login when a provider is configured (app.ui.auth), draws the shared frame (who is reviewing;
which model is active, or what is training) and runs the page picked in the navigation: Queue, Review and Add post;
Inspect and Experiments; Label errors, Loop, Export, Models and Jobs. Every page lives in app/views/, calls
app/services for its data (plain data, no database session in a page) and app/ui for the shared frame and its
panels, and reads top to bottom.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# `streamlit run app/main.py` from anywhere
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.ui.auth import require_login  # noqa: E402
from app.ui.identity import identity_sidebar  # noqa: E402
from app.ui.model_status import sidebar_model_status  # noqa: E402
from app.ui.state import init_state  # noqa: E402

# torch is imported only by the pages that run a model (app.ui.resources sets one thread per request there), so the
# Queue opens in a new session without paying seconds for it.
st.set_page_config(page_title="MRE Lens", page_icon=":material/hub:", layout="wide")
init_state()
# with a login provider configured, nothing (not even the page list) is shown before a login
require_login()

pages = {
    "Review": [
        st.Page("views/queue.py", title="Queue", icon=":material/list:", default=True),
        st.Page("views/review.py", title="Review", icon=":material/rate_review:"),
        st.Page("views/add_post.py", title="Add post", icon=":material/add_photo_alternate:"),
    ],
    "Understand": [
        st.Page("views/inspect.py", title="Inspect", icon=":material/visibility:"),
        st.Page("views/experiments.py", title="Experiments", icon=":material/science:"),
    ],
    "Curate": [
        st.Page("views/label_errors.py", title="Label errors", icon=":material/rule:"),
        st.Page("views/loop.py", title="Loop", icon=":material/autorenew:"),
        st.Page("views/export.py", title="Export", icon=":material/download:"),
        st.Page("views/models.py", title="Models", icon=":material/model_training:"),
        st.Page("views/jobs.py", title="Jobs", icon=":material/pending_actions:"),
    ],
}
page = st.navigation(pages)
identity_sidebar()
# every page says which model is active, or what is training and when a model is due
sidebar_model_status()
page.run()
