"""Add post: upload an image, paste the text, mark the two entities; the app grounds, predicts and opens it."""

from __future__ import annotations

import hashlib

import streamlit as st
from sqlalchemy.exc import OperationalError

from app.services.errors import LabelStoreError
from app.services.inference import ground_post, predict_pair
from app.services.paths import upload_dir
from app.services.store import UploadedImage, active_version, add_post
from app.ui.identity import require_reviewer
from app.ui.render import count, plain
from app.ui.resources import get_sessions, load_cam_grounder, load_model
from app.ui.state import review_session
from model.images import ImageError
from model.mnre_format import DataFormatError


def contiguous_span(indices: list[int]) -> tuple[int, int] | None:
    """[start, end) of selected word indices, or None when they are not one unbroken run."""
    if not indices:
        return None
    start, end = min(indices), max(indices) + 1
    return (start, end) if len(set(indices)) == end - start else None


st.title("Add a post")
upload = st.file_uploader(
    "Image (optional)", type=["jpg", "jpeg", "png", "gif", "bmp", "webp"], key="add_image"
)
text = st.text_area("Post text", key="add_text", placeholder="Paste the tweet; words are split on spaces.")
tokens = text.split()
if not tokens:
    st.caption("Type or paste the text, then mark the head and the tail entity by their words.")
    st.stop()

words = list(range(len(tokens)))
head = st.pills(
    "Head entity (click its words)",
    words,
    selection_mode="multi",
    format_func=lambda i: plain(tokens[i]),  # pills read Markdown: '&amp;' stays '&amp;'
    key=f"add_head_{hashlib.sha1(text.encode()).hexdigest()[:10]}",
)
tail = st.pills(
    "Tail entity (click its words)",
    words,
    selection_mode="multi",
    format_func=lambda i: plain(tokens[i]),  # pills read Markdown: '&amp;' stays '&amp;'
    key=f"add_tail_{hashlib.sha1(text.encode()).hexdigest()[:10]}",
)
head_span, tail_span = contiguous_span(head), contiguous_span(tail)
for name, chosen, span in (("head", head, head_span), ("tail", tail, tail_span)):
    if chosen and span is None:
        st.warning(f"The {name} entity must be consecutive words.")
ready = head_span is not None and tail_span is not None
if st.button("Add, ground and predict", type="primary", disabled=not ready, key="add_submit"):
    require_reviewer()
    sessions = get_sessions()
    # checked in memory first; a refused image is never left in the uploads folder, errors name upload.name
    image = UploadedImage(upload.getvalue(), upload.name) if upload is not None else None
    try:
        added = add_post(sessions, " ".join(tokens), head_span, tail_span, image, upload_dir())
        pair_id, post_id, created = added.pair_id, added.post_id, added.created
        active = active_version(sessions)
    except (DataFormatError, LabelStoreError) as err:
        st.error(f"The post was not added: {plain(err)}")
        st.stop()
    except OperationalError as err:
        st.error(f"The post was not added: the database is busy or unavailable ({plain(err.orig)}).")
        st.stop()
    with st.spinner("Grounding objects in the image ..."):
        names = [" ".join(tokens[slice(*head_span)]), " ".join(tokens[slice(*tail_span)])]
        try:
            found = ground_post(sessions, post_id, names, load_cam_grounder(), upload_dir() / "crops")
        except ImageError as err:
            # the stored copy changed or broke since the upload check: the post stays, without objects
            st.warning(
                f"The post was added, but its image can no longer be read ({plain(err.problem)}); no objects."
            )
            found = 0
    if active is None:
        st.warning("Added, but no model is active, so there is no prediction yet (see **Models**).")
    else:
        with st.spinner("Running the model ..."):
            model, tokenizer = load_model(active.folder)
            probabilities = predict_pair(sessions, model, tokenizer, active.key, pair_id)
        best = max(probabilities, key=probabilities.get)
        st.success(
            f"Pair {pair_id} {'added' if created else 'was already stored'}: {count(found, 'grounded object')}; "
            f"the model predicts **{plain(best)}** ({probabilities[best]:.1%})."
        )
    st.session_state["add_last_pair"] = pair_id

if st.session_state.get("add_last_pair") and st.button("Review it now", key="add_review"):
    review_session().open(st.session_state["add_last_pair"])
    st.switch_page("views/review.py")
