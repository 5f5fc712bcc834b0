"""Per-post explanation results for the Inspect page, computed once per (pair, model, settings) and cached.

Every function takes plain keys (database URL, pair id, checkpoint folder, settings) so st.cache_data can key on
them; the model and the label-store engine come from st.cache_resource. A summary of what was computed is stored
in the label store (save_explanation) the first time, with the model version and settings.
"""

from __future__ import annotations

import importlib

import streamlit as st
from PIL import Image

from app.inference import pair_records
from app.paths import feature_cache_dir
from app.resources import get_sessions, load_model
from db.models import EntityPair
from db.queries import find_model_version, pair_detail, save_explanation
from model.grounding import GroundedObject


def _record(pair_id: int):
    with get_sessions()() as session:
        return pair_records(session, [pair_id])[0]


@st.cache_data(max_entries=64, show_spinner="Encoding the post ...")
def post_inputs(url: str, pair_id: int, model_path: str):
    from explain import encode_post

    model, tokenizer = load_model(model_path)
    return encode_post(model, tokenizer, _record(pair_id), str(feature_cache_dir()))


@st.cache_data(max_entries=64, show_spinner=False)
def prediction(url: str, pair_id: int, model_path: str):
    from explain import predict_post

    return predict_post(load_model(model_path)[0], post_inputs(url, pair_id, model_path))


@st.cache_data(max_entries=64, show_spinner="Reading the attention maps ...")
def attention(url: str, pair_id: int, model_path: str):
    from explain import token_object_attention

    return token_object_attention(load_model(model_path)[0], post_inputs(url, pair_id, model_path))


@st.cache_data(max_entries=64, show_spinner="Integrated gradients over the tokens ...")
def token_attribution(url: str, pair_id: int, model_path: str, baseline: str, n_steps: int):
    from explain import attribute_tokens

    model = load_model(model_path)[0]
    return attribute_tokens(model, post_inputs(url, pair_id, model_path), None, baseline, n_steps)


@st.cache_data(max_entries=64, show_spinner="Occluding image regions and crops ...")
def visual_attribution(url: str, pair_id: int, model_path: str, method: str, n_steps: int):
    from explain import attribute_visual

    model = load_model(model_path)[0]
    return attribute_visual(model, post_inputs(url, pair_id, model_path), None, method, n_steps)


@st.cache_data(max_entries=128, show_spinner="Measuring faithfulness ...")
def token_faithfulness(url: str, pair_id: int, model_path: str, baseline: str, n_steps: int):
    from explain import faithfulness

    model = load_model(model_path)[0]
    attribution = token_attribution(url, pair_id, model_path, baseline, n_steps)
    return faithfulness(model, post_inputs(url, pair_id, model_path), attribution)


@st.cache_data(max_entries=128, show_spinner="Measuring faithfulness ...")
def visual_faithfulness(url: str, pair_id: int, model_path: str, method: str, n_steps: int):
    from explain import faithfulness

    attribution = visual_attribution(url, pair_id, model_path, method, n_steps)
    if attribution is None:
        return None
    model = load_model(model_path)[0]
    return faithfulness(model, post_inputs(url, pair_id, model_path), attribution)


@st.cache_data(max_entries=64, show_spinner="Swapping in other posts' images ...")
def reliance(url: str, pair_id: int, model_path: str, k: int, seed: int):
    from sqlalchemy import select

    from db.models import Post
    from explain import choose_other_records, encode_post, image_reliance

    model, tokenizer = load_model(model_path)
    inputs = post_inputs(url, pair_id, model_path)
    with get_sessions()() as session:
        dataset_id = session.get(EntityPair, pair_id).dataset_id
        candidates = list(
            session.scalars(
                select(EntityPair.id)
                .join(Post, Post.id == EntityPair.post_id)
                .where(EntityPair.dataset_id == dataset_id, Post.has_image, EntityPair.id != pair_id)
                .order_by(EntityPair.id)
                .limit(300)
            )
        )
        records = pair_records(session, candidates)
    chosen = choose_other_records(inputs.record, records, k, seed) if inputs.has_image else []
    others = [encode_post(model, tokenizer, r, str(feature_cache_dir())) for r in chosen]
    return image_reliance(model, inputs, others, k, seed)


@st.cache_data(max_entries=64, show_spinner="Building the scene graph and MEGA's alignment ...")
def scene_graph(url: str, pair_id: int):
    """(SceneGraph, MegaAlignment, image or None) from the post's stored boxes, else the offline CAM grounder."""
    from app.resources import load_cam_grounder
    from model.mega_alignment import mega_alignment
    from model.scene_graph import build_scene_graph

    with get_sessions()() as session:
        detail = pair_detail(session, pair_id)
        tokens = list(detail.post.tokens)
        objects = [
            GroundedObject(
                (c.box_x0, c.box_y0, c.box_x1, c.box_y1), c.label or "object", None, c.score, c.source
            )
            for c in detail.crops
            if c.box_x0 is not None
        ]
        image_path = detail.post.image_path if detail.post.has_image else None
    image = None
    if image_path:
        with Image.open(image_path) as im:
            image = im.convert("RGB")
        if not objects:
            objects = load_cam_grounder().detect(image, None)
    graph = build_scene_graph(objects)
    alignment = mega_alignment(tokens, graph) if graph.nodes else None
    return graph, alignment, image


def store_summary(pair_id: int, method: str, summary: dict, settings: dict, version_id: str | None) -> bool:
    """Record an explanation summary once per (pair, model version, method, settings); True when written now."""
    with get_sessions().begin() as session:
        version = find_model_version(session, version_id) if version_id else None
        version_pk = version.id if version else None
        for e in pair_detail(session, pair_id).explanations:
            if e.method == method and e.settings == settings and e.model_version_id == version_pk:
                return False
        save_explanation(
            session, pair_id, method, summary, settings, version_pk, st.session_state.get("reviewer") or None
        )
    return True


def explain_module(name: str):
    """explain or explain.figures, or None with a message in the page when that part is not installed yet."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        st.info(f"Not available: `{name}` cannot be imported yet ({err}).")
        return None


def faithfulness_numbers(f, label: str) -> None:
    if f is None:
        st.caption(f"{label}: no faithfulness (nothing to remove).")
        return
    c1, c2, c3 = st.columns(3)
    c1.metric(
        f"{label} comprehensiveness",
        f"{f.comprehensiveness:.3f}",
        f"{f.comprehensiveness - f.random_comprehensiveness:+.3f} vs random",
        help="Drop in p(label) when the top-attributed units are removed (higher = more faithful).",
    )
    c2.metric(
        f"{label} sufficiency",
        f"{f.sufficiency:.3f}",
        help="Drop in p(label) when only the top-attributed units are kept (lower = more faithful).",
    )
    c3.metric("units", f.n_units)
