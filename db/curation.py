"""Curated training data: the store's review decisions applied to records read from a dataset's source files."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.annotations import UNREVIEWED, current_states
from db.errors import LabelStoreError
from db.models import Dataset, EntityPair
from db.spans import Span
from model.mnre_format import Entity


@dataclass
class CurationReport:
    records: int = 0
    corrected: int = 0  # label changed from the source label
    dropped: int = 0  # rejected pairs
    not_in_store: int = 0  # records with no pair in the dataset (not imported)
    spans_fixed: int = 0  # records trained on a head or tail span a reviewer fixed
    added: int = 0  # pairs a reviewer added to a post of these records (db.annotations.add_pair)
    changes: Counter = field(default_factory=Counter)  # (source label, curated label) -> count

    def summary(self) -> str:
        return (
            f"{self.records} records: {self.corrected} relabelled, {self.dropped} dropped (rejected), "
            f"{self.not_in_store} not in the label store, {self.spans_fixed} with a fixed span, "
            f"{self.added} added on Review"
        )


# the decisions that give a pair a label a reviewer stands behind
REVIEWED_LABEL_STATUSES = ("accepted", "corrected")


def curated_training_records(
    session: Session,
    records: Sequence,
    dataset: str,
    split: str,
    report: CurationReport | None = None,
    reviewed_only: bool = False,
) -> list:
    """Apply the store's curated labels and spans to records read from `split` of the dataset's source files.

    Records are matched by their source line. Corrections (and accepted labels) override the source label,
    rejected pairs are dropped, unreviewed and skipped pairs keep their previous label. Each record's head and tail
    are the spans in effect (db.annotations.CurrentState.spans, the rule every export follows): a span a reviewer
    fixed, else the record's own. A pair a reviewer added to a post of these records (it has no source line) follows
    the record of its post it was read with, with its own spans and label, after the source records; an added pair
    whose post has no record here (a limited read) is left out with its post. The input is not modified.
    reviewed_only: keep only the pairs a reviewer accepted or corrected (the labelled set of an annotation loop
    that starts from unlabelled posts); the others count as dropped.
    """
    report = report if report is not None else CurationReport()
    dataset_row = session.scalar(select(Dataset).where(Dataset.name == dataset))
    if dataset_row is None:
        raise LabelStoreError(f"no dataset named {dataset!r} in the label store; import it first")
    pairs = {}
    added = []
    for pair in session.execute(
        select(
            EntityPair.id,
            EntityPair.source_line,
            EntityPair.raw_line,
            EntityPair.post_id,
            EntityPair.added_by,
            *(getattr(EntityPair, f"{role}_{part}") for role in ("head", "tail") for part in SPAN_PARTS),
        )
        .where(EntityPair.dataset_id == dataset_row.id, EntityPair.split == split)
        .order_by(EntityPair.id)
    ):
        if pair.source_line is not None:
            pairs[pair.source_line] = pair
        elif pair.added_by is not None:
            added.append(pair)
    states = current_states(session, None)
    curated = []
    post_records = {}  # post id -> the first record read of it: what an added pair's record starts from
    for record in records:
        report.records += 1
        pair = pairs.get(record.line)
        if pair is None:
            report.not_in_store += 1
            curated.append(record)
            continue
        if record.raw_line and pair.raw_line is not None and pair.raw_line != record.raw_line:
            # a changed source file: labels reviewed for one record must not land on another
            raise LabelStoreError(
                f"{split} line {record.line} differs from the record stored in dataset "
                f"{dataset!r}; re-import the changed file under a new dataset name"
            )
        post_records.setdefault(pair.post_id, record)
        record = _curated(
            record, pair, states.get(pair.id, UNREVIEWED), record.relation, reviewed_only, report
        )
        if record is not None:
            curated.append(record)
    for pair in added:
        record = post_records.get(pair.post_id)
        if record is None:
            continue
        record = replace(record, line=0, source=None, raw_line="")
        record = _curated(record, pair, states.get(pair.id, UNREVIEWED), None, reviewed_only, report)
        if record is not None:
            report.added += 1
            curated.append(record)
    return curated


SPAN_PARTS = ("name", "start", "end")


def _entity(span: Span) -> Entity:
    return Entity(span.text, span.start, span.end)


def _curated(record, pair, state, source_label: str | None, reviewed_only: bool, report: CurationReport):
    """`record` with the label and spans in effect for `pair`, or None when the pair is dropped (counted)."""
    label = state.curated_label(source_label)
    if reviewed_only and state.status not in REVIEWED_LABEL_STATUSES:
        label = None
    if label is None:
        report.dropped += 1
        return None
    if source_label is not None and label != source_label:
        report.corrected += 1
        report.changes[(source_label, label)] += 1
    head, tail = state.spans(pair)
    if state.head is not None or state.tail is not None:
        report.spans_fixed += 1
    if source_label is None or state.head is not None or state.tail is not None or label != source_label:
        record = replace(record, head=_entity(head), tail=_entity(tail), relation=label)
    return record
