"""A review link: the Queue's filter and sort, and Review's pair, as URL query parameters, so a reload or a shared
link opens the same pair with the same filter. Nothing here trusts the link: every value is checked, and a bad one
becomes a sentence for the page (never an exception) while the rest of the link still applies.

    link_params(filters, pair_id) -> dict[str, str]            what the page writes into st.query_params
    parse_link(params) -> ReviewLink                           what a page reads back: values, and the problems
    linked_pair(sessions, pair_id, dataset) -> LinkedPair      whether the pair is in the store (and the dataset)
    linked_queue(sessions, filters, limit) -> list[int]        the filter's pairs in its order: Review's queue

The link never carries who is reviewing: an identity comes from the login or the typed name (app.ui.identity).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import sessionmaker

from app.services.queue_view import ANNOTATION_STATUSES, QUEUE_SORTS, QueueFilter, queue_page
from db.datasets import list_datasets, require_pair
from db.errors import LabelStoreError
from db.validate import identity_problem

PAIR_PARAM = "pair"
SORT_PARAM = "sort"  # always written with a filter: its presence says the link holds the whole filter
# the Queue filter's fields (app.ui.state.QueueFilters) that travel in the link, each under its own name
FILTER_PARAMS = ("dataset", "split", "status", "annotator", "gold", "predicted", "text", "suspects")
MAX_VALUE_CHARS = 200  # a dataset, split, label or search longer than this is no value the store holds
MAX_SUSPECTS = 100_000


@dataclass(frozen=True)
class ReviewLink:
    pair_id: int | None = None  # None: the link names no pair (or a bad one, said in `problems`)
    # None: the link carries no filter (the page's defaults apply); else every filter field, sort included
    filters: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)  # one sentence per value that was not taken


def link_params(filters: Mapping[str, Any] | None, pair_id: int | None = None) -> dict[str, str]:
    """The query parameters for a Queue filter (its sort and every field that is set) and a Review pair."""
    params: dict[str, str] = {}
    if filters is not None:
        params[SORT_PARAM] = str(filters[SORT_PARAM])
        for name in FILTER_PARAMS:
            value = filters.get(name)
            if value is not None and value != "":
                params[name] = str(value)
    if pair_id is not None:
        params[PAIR_PARAM] = str(pair_id)
    return params


def _single(value: Any) -> str:
    """One parameter's value: the last one when a link repeats it (as st.query_params reads it)."""
    if isinstance(value, list | tuple):
        value = value[-1] if value else ""
    return value if isinstance(value, str) else str(value)


def _text_problem(name: str, value: str) -> str | None:
    if len(value) > MAX_VALUE_CHARS:
        return f"the link's {name} is {len(value):,} characters long (at most {MAX_VALUE_CHARS})"
    # control and format characters: the same check as a stored name (a blank value is no value)
    problem = identity_problem(value) if value.strip() else None
    return f"the link's {name} {problem}" if problem else None


def parse_link(params: Mapping[str, Any]) -> ReviewLink:
    """Read a link's pair and filter. Values that cannot be used are dropped, each with a sentence in `problems`:
    a pair that is not a positive whole number, an unknown sort or status, a suspects count that is not a number,
    a value too long or with control characters."""
    problems: list[str] = []
    pair_id = None
    if PAIR_PARAM in params:
        raw = _single(params[PAIR_PARAM]).strip()
        if raw.isascii() and raw.isdigit() and len(raw) <= 12 and int(raw) > 0:
            pair_id = int(raw)
        else:
            problems.append(f"the link's pair {raw[:40]!r} is not a pair id (a positive whole number)")
    if SORT_PARAM not in params:
        return ReviewLink(pair_id, None, problems)
    filters: dict[str, Any] = {name: None for name in FILTER_PARAMS}
    filters["text"] = ""
    sort = _single(params[SORT_PARAM])
    if sort in QUEUE_SORTS:
        filters[SORT_PARAM] = sort
    else:
        filters[SORT_PARAM] = None  # the page's default sort
        problems.append(f"the link's sort {sort[:40]!r} is not one of {', '.join(QUEUE_SORTS)}")
    for name in FILTER_PARAMS:
        if name not in params:
            continue
        value = _single(params[name])
        problem = _text_problem(name, value)
        if problem:
            problems.append(problem)
        elif name == "status" and value not in ANNOTATION_STATUSES:
            problems.append(f"the link's status {value!r} is not one of {', '.join(ANNOTATION_STATUSES)}")
        elif name == "suspects":
            if value.isascii() and value.isdigit() and 0 < int(value) <= MAX_SUSPECTS:
                filters[name] = int(value)
            else:
                problems.append(
                    f"the link's suspects {value[:40]!r} is not a count from 1 to {MAX_SUSPECTS:,}"
                )
        else:
            filters[name] = value if name == "text" else value.strip() or None
    return ReviewLink(pair_id, filters, problems)


@dataclass(frozen=True)
class LinkedPair:
    pair_id: int | None  # None: the link's pair cannot be opened (`problem` says why)
    problem: str | None = None


def linked_pair(sessions: sessionmaker, pair_id: int, dataset: str | None = None) -> LinkedPair:
    """The link's pair if the store has it (and it is in the link's dataset, when the link names one)."""
    with sessions() as session:
        try:
            pair = require_pair(session, pair_id)
        except LabelStoreError:
            return LinkedPair(None, f"the link's pair {pair_id} is not in the label store")
        names = {item.id: item.name for item in list_datasets(session)}
    if dataset is not None and names.get(pair.dataset_id) != dataset:
        return LinkedPair(
            None,
            f"the link's pair {pair_id} is in the dataset {names.get(pair.dataset_id)!r}, not in the link's "
            f"dataset {dataset!r}",
        )
    return LinkedPair(pair_id)


def queue_filter_of(filters: Mapping[str, Any]) -> QueueFilter:
    """The db.review_queue.QueueFilter of a link's (or the Queue page's) filter fields."""
    text = (filters.get("text") or "").strip()
    return QueueFilter(
        filters.get("dataset"),
        filters.get("split"),
        filters.get("predicted"),
        filters.get("gold"),
        filters.get("status"),
        filters.get("annotator"),
        text or None,
        suspects=filters.get("suspects"),
    )


def linked_queue(sessions: sessionmaker, filters: Mapping[str, Any], limit: int) -> list[int]:
    """The pair ids the Queue shows for this filter and sort, in its order (what Review walks)."""
    return [
        item.pair_id
        for item in queue_page(sessions, queue_filter_of(filters), filters["sort"], limit, None).items
    ]
