"""Agreement between reviewers, without Streamlit: on the labels (db.agreement.agreement: Cohen's kappa per pair of
reviewers, Krippendorff's alpha) and on the rationales (db.agreement.rationale_agreement: token kappa, token F1,
box IoU), as the rows the Queue page shows side by side and `python -m db agreement` prints.

    reviewer_agreement(sessions, dataset=None) -> ReviewerAgreement
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import sessionmaker

from db.agreement import agreement, rationale_agreement


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


@dataclass(frozen=True)
class ReviewerAgreement:
    items: int  # pairs decided by two or more reviewers
    alpha: float | None  # Krippendorff's alpha (nominal) on the labels; None when undefined
    labels: list[dict[str, Any]]  # per pair of reviewers: pairs, Cohen's kappa
    rationales: list[dict[str, Any]]  # per pair of reviewers: pairs, token kappa, token F1, box IoU


def reviewer_agreement(sessions: sessionmaker, dataset: str | None = None) -> ReviewerAgreement:
    with sessions() as session:
        labels = agreement(session, dataset)
        rationales = rationale_agreement(session, dataset)
    return ReviewerAgreement(
        items=labels.items,
        alpha=_number(labels.alpha),
        labels=[
            {"reviewers": f"{a} / {b}", "pairs": labels.kappa_items[(a, b)], "Cohen's kappa": _number(kappa)}
            for (a, b), kappa in labels.kappa.items()
        ],
        rationales=[
            {
                "reviewers": f"{a} / {b}",
                "pairs": rationales.pairs[(a, b)],
                "token kappa": _number(rationales.kappa[(a, b)]),
                "token F1": _number(rationales.f1[(a, b)]),
                "pairs with words": rationales.f1_items[(a, b)],
                "box IoU": _number(rationales.iou[(a, b)]),
                "pairs with two boxes": rationales.iou_items[(a, b)],
            }
            for (a, b) in rationales.pairs
        ],
    )
