"""Curated training data: the store's review decisions applied to records read from a dataset's source files."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.annotations import UNREVIEWED, current_states
from db.errors import LabelStoreError
from db.models import Dataset, EntityPair


@dataclass
class CurationReport:
    records: int = 0
    corrected: int = 0  # label changed from the source label
    dropped: int = 0  # rejected pairs
    not_in_store: int = 0  # records with no pair in the dataset (not imported)
    changes: Counter = field(default_factory=Counter)  # (source label, curated label) -> count

    def summary(self) -> str:
        return (
            f"{self.records} records: {self.corrected} relabelled, {self.dropped} dropped (rejected), "
            f"{self.not_in_store} not in the label store"
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
    """Apply the store's curated labels to records read from `split` of the dataset's source files.

    Records are matched by their source line. Corrections (and accepted labels) override the source label,
    rejected pairs are dropped, unreviewed and skipped pairs keep their previous label. The input is not modified.
    reviewed_only: keep only the pairs a reviewer accepted or corrected (the labelled set of an annotation loop
    that starts from unlabelled posts); the others count as dropped.
    """
    from dataclasses import replace

    report = report if report is not None else CurationReport()
    dataset_row = session.scalar(select(Dataset).where(Dataset.name == dataset))
    if dataset_row is None:
        raise LabelStoreError(f"no dataset named {dataset!r} in the label store; import it first")
    pairs = {
        line: (pair_id, raw_line)
        for line, pair_id, raw_line in session.execute(
            select(EntityPair.source_line, EntityPair.id, EntityPair.raw_line).where(
                EntityPair.dataset_id == dataset_row.id, EntityPair.split == split
            )
        )
    }
    states = current_states(session, None)
    curated = []
    for record in records:
        report.records += 1
        pair_id, stored_line = pairs.get(record.line, (None, None))
        if pair_id is None:
            report.not_in_store += 1
            curated.append(record)
            continue
        if record.raw_line and stored_line is not None and stored_line != record.raw_line:
            # a changed source file: labels reviewed for one record must not land on another
            raise LabelStoreError(
                f"{split} line {record.line} differs from the record stored in dataset "
                f"{dataset!r}; re-import the changed file under a new dataset name"
            )
        state = states.get(pair_id, UNREVIEWED)
        label = state.curated_label(record.relation)
        if reviewed_only and state.status not in REVIEWED_LABEL_STATUSES:
            label = None
        if label is None:
            report.dropped += 1
            continue
        if label != record.relation:
            report.corrected += 1
            report.changes[(record.relation, label)] += 1
            record = replace(record, relation=label)
        curated.append(record)
    return curated
