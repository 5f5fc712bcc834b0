"""The review link in the address bar (st.query_params): Queue writes its filter and sort there, Review its pair as
well, whenever they change; the session's first Queue or Review run reads them back, so a reload or a shared link
opens the same pair with the same filter. What a link holds is checked (app.services.review_link); a value that
cannot be used is said once on the page and the rest still applies. Who is reviewing is never read from a link.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import streamlit as st

from app.services.queue_view import default_sort
from app.services.review_link import (
    FILTER_PARAMS,
    SORT_PARAM,
    link_params,
    linked_pair,
    linked_queue,
    parse_link,
)
from app.services.store import unreviewed_pairs
from app.ui.state import QueueFilters, ReviewSession, flash

REVIEW_LINK_READ = "review_link_read"  # session state: Review has read this session's link (once per session)
QUEUE_FILTERS = "queue_filters"  # app.ui.state.queue_filters' key


def link_filters(kept: QueueFilters) -> dict[str, Any]:
    """The Queue filter fields a link carries (the sort and the filters; not the row count or the columns)."""
    values = asdict(kept)
    return {name: values[name] for name in (SORT_PARAM, *FILTER_PARAMS)}


def _write(params: dict[str, str]) -> None:
    if st.query_params.to_dict() != params:  # an unchanged link is not written again
        st.query_params.from_dict(params)


def write_queue_link(kept: QueueFilters) -> None:
    """The Queue's filter and sort into the address bar."""
    _write(link_params(link_filters(kept)))


def write_review_link(review: ReviewSession, pair_id: int) -> None:
    """Review's pair, and the Queue filter its queue came from, into the address bar."""
    _write(link_params(review.link, pair_id))


def _kept_from_link(filters: dict[str, Any], defaults: dict[str, Any]) -> QueueFilters:
    return QueueFilters(**{**defaults, **{k: v for k, v in filters.items() if k != SORT_PARAM or v}})


def queue_filters_from_link(**defaults) -> QueueFilters:
    """This session's Queue filters (app.ui.state.queue_filters); on the session's first visit, the link's filter
    when the address bar holds one, a warning naming each value not taken."""
    if QUEUE_FILTERS not in st.session_state:
        link = parse_link(st.query_params.to_dict())
        if link.filters is not None:
            st.session_state[QUEUE_FILTERS] = _kept_from_link(link.filters, defaults)
        if link.problems:
            st.warning(f"Parts of this link were not used: {'; '.join(link.problems)}.")
    return st.session_state.setdefault(QUEUE_FILTERS, QueueFilters(**defaults))


def restore_review_from_link(sessions, review: ReviewSession) -> None:
    """On the session's first Review run, when it has no queue yet (a reload, a shared link): the link's queue (its filter and sort) at the link's pair. A pair that is
    not a number, not in the store or not in the link's dataset is said (flash) and the queue starts at its first
    pair; never an exception."""
    if st.session_state.get(REVIEW_LINK_READ):
        return
    st.session_state[REVIEW_LINK_READ] = True
    # this session already chose its queue (the Queue page, Add post): the link is its own echo
    if review.queue:
        return
    link = parse_link(st.query_params.to_dict())
    if link.pair_id is None and link.filters is None and not link.problems:
        return
    problems = list(link.problems)
    dataset = None
    if link.filters is not None:
        filters = {**link.filters, SORT_PARAM: link.filters[SORT_PARAM] or default_sort()}
        kept = st.session_state.get(QUEUE_FILTERS)
        limit = kept.limit if kept is not None else QueueFilters(sort=default_sort()).limit
        st.session_state[QUEUE_FILTERS] = _kept_from_link(filters, {"sort": default_sort(), "limit": limit})
        review.queue, review.position, review.link = linked_queue(sessions, filters, limit), 0, filters
        # reviewing in the label-error order is the audit, as when the Queue page starts it
        review.audit = filters[SORT_PARAM] == "label_error" or filters["suspects"] is not None
        dataset = filters["dataset"]
    opened = False
    if link.pair_id is not None:
        found = linked_pair(sessions, link.pair_id, dataset)
        if found.pair_id is not None:
            if not review.queue:
                review.queue, review.position = unreviewed_pairs(sessions), 0
            review.open(found.pair_id)
            opened = True
        else:
            problems.append(found.problem)
    if problems:
        start = "" if opened else " Review starts at the first pair of the queue."
        flash("warning", f"Parts of this link were not used: {'; '.join(problems)}.{start}")
