"""Review's queue when nothing was picked on the Queue page: pairs handed out one at a time under leases
(app.services.leases), so two reviewers never see the same pair unless the dataset's overlap asks for it."""

from __future__ import annotations

import streamlit as st
from sqlalchemy.orm import sessionmaker

from app.services.leases import keep_lease, next_pair
from app.ui.state import ReviewSession


def fill_review_queue(sessions: sessionmaker, review: ReviewSession, reviewer: str) -> None:
    """Start a leased queue when the session has none; at its end take the next pair; renew the lease on the pair
    shown (activity), and warn when someone else holds the pair now: the reviewer's lease lapsed, or the pair was
    picked on the Queue or opened from a shared link (walked as picked, without a lease)."""
    if not review.queue:
        review.queue, review.leased, review.position = [], [], 0
    picked = review.queue != review.leased  # a queue picked on the Queue page or opened from a link
    if not picked and (review.at_end or not review.queue):
        pair_id = next_pair(sessions, reviewer, exclude=review.queue)
        if pair_id is not None:
            review.queue.append(pair_id)
            review.leased = list(review.queue)
            review.position = len(review.queue) - 1
    if review.pair_id is not None:
        warning = keep_lease(sessions, review.pair_id, reviewer)
        if warning:
            st.warning(warning)
