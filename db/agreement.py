"""Inter-annotator agreement: Cohen's kappa (two annotators) and Krippendorff's alpha (any number, missing data).

Both are computed overall (nominal categories: the labels, plus "<rejected>") and per label (that label vs the rest).
Each annotator contributes, per pair, their own latest decision that is still in effect (accepted, corrected or
rejected; skips and undone decisions do not count). Rationales of those decisions: token kappa and F1, box IoU
(rationale_agreement).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.datasets import check_filter_names
from db.models import Annotation, Dataset, EntityPair, Post
from db.rationales import decision_rationales
from db.redact import printable

REJECTED = "<rejected>"


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float:
    """Cohen's kappa of two raters over the same items; NaN when chance agreement is 1 (one category only)."""
    if len(first) != len(second):
        raise ValueError("both raters must rate the same items")
    n = len(first)
    if n == 0:
        return math.nan
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    count_a, count_b = Counter(first), Counter(second)
    expected = sum(count_a[c] * count_b[c] for c in count_a) / (n * n)
    if expected == 1:
        return math.nan
    return (observed - expected) / (1 - expected)


def krippendorff_alpha_nominal(units: Sequence[Sequence[Hashable | None]]) -> float:
    """Krippendorff's alpha for nominal data. `units`: per item, the values given by each rater (None = missing).

    Items with fewer than two values are not pairable and are ignored. NaN when there is no disagreement to expect
    (fewer than two pairable values, or one category only).
    """
    coincidence: dict[tuple[Hashable, Hashable], float] = defaultdict(float)
    for unit in units:
        values = [v for v in unit if v is not None]
        m = len(values)
        if m < 2:
            continue
        for i, c in enumerate(values):
            for j, k in enumerate(values):
                if i != j:
                    coincidence[(c, k)] += 1 / (m - 1)
    totals: dict[Hashable, float] = defaultdict(float)
    for (c, _), weight in coincidence.items():
        totals[c] += weight
    n = sum(totals.values())
    observed_disagreement = sum(w for (c, k), w in coincidence.items() if c != k)
    expected_pairs = sum(totals[c] * totals[k] for c in totals for k in totals if c != k)
    if n < 2 or expected_pairs == 0:
        return math.nan
    return 1 - (n - 1) * observed_disagreement / expected_pairs


@dataclass
class AgreementReport:
    annotators: list[str]
    items: int  # pairs rated by at least two annotators
    alpha: float
    alpha_per_label: dict[str, float] = field(default_factory=dict)
    # annotator pair -> kappa on shared items
    kappa: dict[tuple[str, str], float] = field(default_factory=dict)
    kappa_items: dict[tuple[str, str], int] = field(default_factory=dict)
    kappa_per_label: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)

    def format(self) -> str:
        def num(x: float) -> str:
            return "n/a" if math.isnan(x) else f"{x:.3f}"

        # names are shown printable: a stored name with a line break can never start a line of its own
        lines = [
            f"{len(self.annotators)} annotators ({', '.join(map(printable, self.annotators))}), {self.items} pairs rated by "
            f"two or more",
            f"Krippendorff's alpha (nominal): {num(self.alpha)}",
        ]
        for pair, kappa in self.kappa.items():
            lines.append(
                f"Cohen's kappa {printable(pair[0])} vs {printable(pair[1])}: {num(kappa)} on "
                f"{self.kappa_items[pair]} pairs"
            )
        if self.alpha_per_label:
            lines.append(
                "per label (label vs rest): alpha"
                + "".join(f" | kappa {printable(a)}/{printable(b)}" for a, b in self.kappa)
            )
            for label, alpha in sorted(self.alpha_per_label.items()):
                kappas = "".join(f" | {num(per[label])}" for per in self.kappa_per_label.values())
                lines.append(f"  {printable(label)}: {num(alpha)}{kappas}")
        return "\n".join(lines)


def decisions(session: Session, dataset: str | None = None) -> dict[int, dict[str, str]]:
    """pair id -> annotator -> category of that annotator's latest decision still in effect."""
    stmt = select(Annotation).order_by(Annotation.pair_id, Annotation.revision)
    if dataset:
        stmt = (
            stmt.join(EntityPair, EntityPair.id == Annotation.pair_id)
            .join(Dataset, Dataset.id == EntityPair.dataset_id)
            .where(Dataset.name == dataset)
        )
    rows = list(session.scalars(stmt))
    undone = {annotation.undoes_id for annotation in rows if annotation.undoes_id is not None}
    result: dict[int, dict[str, str]] = defaultdict(dict)
    for annotation in rows:
        if (
            annotation.undoes_id is not None
            or annotation.id in undone
            or annotation.status not in ("accepted", "corrected", "rejected")
        ):
            continue
        result[annotation.pair_id][annotation.annotator] = (
            REJECTED if annotation.status == "rejected" else annotation.label
        )
    return result


def agreement_from_decisions(
    by_pair: Mapping[int, Mapping[str, str]], annotators: Sequence[str] | None = None
) -> AgreementReport:
    annotators = sorted(annotators or {name for rated in by_pair.values() for name in rated})
    units = [[rated.get(name) for name in annotators] for rated in by_pair.values()]
    units = [unit for unit in units if sum(value is not None for value in unit) >= 2]
    labels = sorted({value for unit in units for value in unit if value is not None})
    report = AgreementReport(annotators=annotators, items=len(units), alpha=krippendorff_alpha_nominal(units))
    for label in labels:
        report.alpha_per_label[label] = krippendorff_alpha_nominal(
            [[None if value is None else value == label for value in unit] for unit in units]
        )
    for rater_a, rater_b in combinations(annotators, 2):
        shared = [
            (rated[rater_a], rated[rater_b])
            for rated in by_pair.values()
            if rater_a in rated and rater_b in rated
        ]
        first, second = [x for x, _ in shared], [y for _, y in shared]
        report.kappa[(rater_a, rater_b)] = cohen_kappa(first, second)
        report.kappa_items[(rater_a, rater_b)] = len(shared)
        report.kappa_per_label[(rater_a, rater_b)] = {
            label: cohen_kappa([x == label for x in first], [y == label for y in second]) for label in labels
        }
    return report


def agreement(
    session: Session, dataset: str | None = None, annotators: Sequence[str] | None = None
) -> AgreementReport:
    check_filter_names(session, dataset)
    for name in annotators or ():
        check_filter_names(session, annotator=name)
    by_pair = decisions(session, dataset)
    if annotators:
        by_pair = {
            pair_id: {annotator: category for annotator, category in rated.items() if annotator in annotators}
            for pair_id, rated in by_pair.items()
        }
    return agreement_from_decisions(by_pair, annotators)


# ----------------------------------------------------------------------------------------------------------------
# Agreement on rationales (db.rationales): which words and which image region two reviewers of a pair marked


def token_kappa(first: Iterable[int], second: Iterable[int], candidates: Iterable[int]) -> float:
    """Cohen's kappa (Cohen 1960) of two reviewers' evidence words as a yes/no rating of each candidate word (the
    post's words that may be evidence: not the entities'); NaN when chance agreement is 1 (both mark all or none)."""
    words = sorted(set(candidates))
    a, b = set(first), set(second)
    return cohen_kappa([w in a for w in words], [w in b for w in words])


def token_f1(first: Iterable[int], second: Iterable[int]) -> float:
    """F1 of one reviewer's evidence words against the other's, 2|A & B| / (|A| + |B|) (symmetric); 1.0 when both
    marked no word, 0.0 when only one did."""
    a, b = set(first), set(second)
    if not a and not b:
        return 1.0
    return 2 * len(a & b) / (len(a) + len(b))


def box_iou(first: Sequence[float], second: Sequence[float]) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1), in pixels of the same image."""
    ix = max(0.0, min(first[2], second[2]) - max(first[0], second[0]))
    iy = max(0.0, min(first[3], second[3]) - max(first[1], second[1]))
    inter = ix * iy
    area = (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1])
    return inter / (area - inter) if area - inter > 0 else math.nan


@dataclass
class RationaleAgreement:
    """Per pair of reviewers, over the entity pairs both gave a rationale for: token kappa pooled over the candidate
    words of all those pairs, mean token F1 over pairs where either marked words, mean box IoU over pairs where
    both drew a box."""

    pairs: dict[tuple[str, str], int] = field(default_factory=dict)
    kappa: dict[tuple[str, str], float] = field(default_factory=dict)
    f1: dict[tuple[str, str], float] = field(default_factory=dict)
    f1_items: dict[tuple[str, str], int] = field(default_factory=dict)
    iou: dict[tuple[str, str], float] = field(default_factory=dict)
    iou_items: dict[tuple[str, str], int] = field(default_factory=dict)

    def format(self) -> str:
        def num(x: float) -> str:
            return "n/a" if math.isnan(x) else f"{x:.3f}"

        lines = ["rationales: reviewers | pairs | token kappa | token F1 (pairs) | box IoU (pairs)"]
        for key in self.pairs:
            lines.append(
                f"  {printable(key[0])} / {printable(key[1])} | {self.pairs[key]} | {num(self.kappa[key])} | "
                f"{num(self.f1[key])} ({self.f1_items[key]}) | {num(self.iou[key])} ({self.iou_items[key]})"
            )
        return "\n".join(lines)


def rationale_agreement_from(
    by_pair: Mapping[int, Mapping[str, Any]], candidates: Mapping[int, Sequence[int]]
) -> RationaleAgreement:
    """by_pair: pair id -> reviewer -> db.rationales.Rationale; candidates: pair id -> its candidate words."""
    report = RationaleAgreement()
    reviewers = sorted({name for rated in by_pair.values() for name in rated})
    for rater_a, rater_b in combinations(reviewers, 2):
        shared = [
            (pair_id, rated[rater_a], rated[rater_b])
            for pair_id, rated in by_pair.items()
            if rater_a in rated and rater_b in rated
        ]
        if not shared:
            continue
        key = (rater_a, rater_b)
        first, second, f1s, ious = [], [], [], []
        for pair_id, a, b in shared:
            words = sorted(candidates[pair_id])
            first += [w in set(a.tokens) for w in words]
            second += [w in set(b.tokens) for w in words]
            if a.tokens or b.tokens:
                f1s.append(token_f1(a.tokens, b.tokens))
            if a.box is not None and b.box is not None:
                ious.append(box_iou(a.box, b.box))
        report.pairs[key] = len(shared)
        report.kappa[key] = cohen_kappa(first, second)
        report.f1[key] = sum(f1s) / len(f1s) if f1s else math.nan
        report.f1_items[key] = len(f1s)
        report.iou[key] = sum(ious) / len(ious) if ious else math.nan
        report.iou_items[key] = len(ious)
    return report


def rationale_agreement(session: Session, dataset: str | None = None) -> RationaleAgreement:
    """Agreement on the rationales of each reviewer's latest decision still in effect (as for the labels: skips and
    undone decisions do not count), between every two reviewers of the same entity pairs."""
    check_filter_names(session, dataset)
    stmt = select(Annotation).order_by(Annotation.pair_id, Annotation.revision)
    if dataset:
        stmt = (
            stmt.join(EntityPair, EntityPair.id == Annotation.pair_id)
            .join(Dataset, Dataset.id == EntityPair.dataset_id)
            .where(Dataset.name == dataset)
        )
    rows = list(session.scalars(stmt))
    undone = {annotation.undoes_id for annotation in rows if annotation.undoes_id is not None}
    latest: dict[int, dict[str, int]] = defaultdict(dict)  # pair -> reviewer -> annotation id
    for annotation in rows:
        in_effect = annotation.undoes_id is None and annotation.id not in undone
        if in_effect and annotation.status in ("accepted", "corrected", "rejected"):
            latest[annotation.pair_id][annotation.annotator] = annotation.id
    rationales = decision_rationales(session, [i for rated in latest.values() for i in rated.values()])
    by_pair = {
        pair_id: {name: rationales[i] for name, i in rated.items() if i in rationales}
        for pair_id, rated in latest.items()
    }
    by_pair = {pair_id: rated for pair_id, rated in by_pair.items() if len(rated) >= 2}
    candidates = {}
    for pair in session.scalars(select(EntityPair).where(EntityPair.id.in_(list(by_pair)))):
        n_words = len(session.get_one(Post, pair.post_id).tokens)
        entity = set(range(pair.head_start, pair.head_end)) | set(range(pair.tail_start, pair.tail_end))
        candidates[pair.id] = [w for w in range(n_words) if w not in entity]
    return rationale_agreement_from(by_pair, candidates)
