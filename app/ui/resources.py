"""What the app loads once per process (st.cache_resource) or once per post (st.cache_data).

Engines and models are shared by every session and never mutated. Per-post results are keyed by pair id and
model version, and are also written to the label store, so the next process starts from them.
"""

from __future__ import annotations

import os

import streamlit as st
from sqlalchemy.orm import sessionmaker

from db.base import database_url
from db.model_versions import ModelVersionInfo


@st.cache_resource(show_spinner=False)
def _open(url: str) -> sessionmaker:
    from db.schema import open_database

    _engine, sessions = open_database(url)
    return sessions


def store_url() -> str:
    """The label store's URL (DATABASE_URL, else var/mrelens.db): the first key of every per-post cache."""
    return database_url()


def torch_threads() -> None:
    """One torch thread per request: on a busy 2-core machine two threads make a post ~5x slower, not faster.
    Called where a model is loaded, so pages that run none (Queue) never import torch."""
    import torch

    torch.set_num_threads(int(os.environ.get("TORCH_NUM_THREADS", "1")))


def get_sessions() -> sessionmaker:
    """The session factory of DATABASE_URL (one engine per URL per process; upgraded on first use). A store that
    cannot be opened stops the page with one error, its URL's password masked (db.redact.mask_secrets)."""
    from sqlalchemy.exc import SQLAlchemyError

    from db.errors import LabelStoreError
    from db.redact import mask_secrets

    try:
        return _open(database_url())
    except (LabelStoreError, SQLAlchemyError, ValueError, OSError) as err:
        st.error(f"The label store cannot be opened: {mask_secrets(str(err))}")
        st.stop()


@st.cache_resource(show_spinner="Loading the model ...", max_entries=2)
def load_model(path: str):
    """(model, tokenizer) of a checkpoint folder, loaded once; CPU with one thread per request."""
    from model.checkpoint import load_checkpoint

    torch_threads()
    return load_checkpoint(path)


def load_version(version: ModelVersionInfo):
    """(model, tokenizer) of a registered model version (its checkpoint folder, loaded once by load_model)."""
    return load_model(version.folder)


@st.cache_resource(show_spinner="Loading the grounding model ...")
def load_cam_grounder():
    """The offline grounding fallback (EfficientNet-Lite0 class activation maps)."""
    from model.grounding import CamGrounder

    torch_threads()
    return CamGrounder()
