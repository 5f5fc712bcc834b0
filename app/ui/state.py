"""Session-wide state: initialised once per browser session with setdefault, read by every page."""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st


@dataclass
class ReviewSession:
    """What the reviewer is working through and what they did (for undo)."""

    queue: list[int] = field(default_factory=list)  # pair ids in the order the Queue page showed them
    position: int = 0
    actions: list[int] = field(default_factory=list)  # pair ids this session changed, last one last
    # the label-error audit: Review shows a model that never saw the pair against the gold label, and the
    # decisions record that they came from the audit
    audit: bool = False
    # the Queue filter and sort this queue came from (app.services.review_link): Review writes it into its link
    link: dict | None = None
    # the pairs handed to this reviewer under a lease (app.ui.review_leases); while `queue` is this list, Review takes
    # the next pair from the leases when it reaches the end; a queue picked on the Queue page is walked as it is
    leased: list[int] = field(default_factory=list)

    @property
    def pair_id(self) -> int | None:
        return self.queue[self.position] if 0 <= self.position < len(self.queue) else None

    def open(self, pair_id: int) -> None:
        if pair_id not in self.queue:
            self.queue.insert(self.position if self.queue else 0, pair_id)
        self.position = self.queue.index(pair_id)

    def move(self, step: int) -> None:
        if self.queue:
            self.position = min(max(self.position + step, 0), len(self.queue) - 1)

    def advance(self) -> None:
        """After a decision: the next pair, or past the last one (the end of the queue, `at_end`)."""
        self.position = min(self.position + 1, len(self.queue))

    @property
    def at_end(self) -> bool:
        return bool(self.queue) and self.position >= len(self.queue)


@dataclass
class QueueFilters:
    """The Queue's filters and view, kept outside the widget keys: Streamlit drops a widget's key when its page is
    left, and a key restored to None showed the placeholder "Choose an option" while the queue was unfiltered."""

    sort: str
    split: str | None = None  # None: every split
    dataset: str | None = None
    status: str | None = None
    annotator: str | None = None
    gold: str | None = None
    predicted: str | None = None
    text: str = ""
    suspects: int | None = None  # only the top N likely label errors
    limit: int = 200
    more_columns: bool = False


def queue_filters(**defaults) -> QueueFilters:
    """This session's Queue filters; `defaults` (the default sort, the split to start on) on the first visit."""
    return st.session_state.setdefault("queue_filters", QueueFilters(**defaults))


def init_state() -> None:
    # who is reviewing: a plain key, never a widget key, so it survives st.switch_page (see app.ui.identity)
    st.session_state.setdefault("reviewer", "")
    st.session_state.setdefault("review", ReviewSession())
    st.session_state.setdefault("flash", None)  # (kind, message) shown once on the next render


def review_session() -> ReviewSession:
    return st.session_state["review"]


def reviewer() -> str:
    return st.session_state.get("reviewer", "")


def flash(kind: str, message: str) -> None:
    st.session_state["flash"] = (kind, message)


def show_flash() -> None:
    message = st.session_state.get("flash")
    if message:
        kind, text = message
        {"success": st.success, "error": st.error, "warning": st.warning}.get(kind, st.info)(text)
        st.session_state["flash"] = None
