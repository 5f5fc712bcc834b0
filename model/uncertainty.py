"""How unsure one predicted distribution is: predicted label, confidence, top-2 margin and entropy.

Pure Python (no torch, no numpy), so the label store can compute the uncertainty of the predictions it stores
(db.provenance.save_predictions) without loading torch, and explain.inputs.predict_post reports the same numbers
for the post on screen. This is the only place they are computed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def uncertainty(probabilities: Mapping[str, float]) -> tuple[str, float, float, float]:
    """(predicted label, confidence, top-2 margin, entropy in nats) of one probability distribution.

    The margin of a one-label distribution is its only probability (the second is 0); zero probabilities add
    nothing to the entropy. Ties go to the label listed first.
    """
    if not probabilities:
        raise ValueError("empty probability distribution")
    ranked = sorted(probabilities.items(), key=lambda label_probability: label_probability[1], reverse=True)
    top_label, top_probability = ranked[0]
    second_probability = ranked[1][1] if len(ranked) > 1 else 0.0
    entropy = -sum(p * math.log(p) for p in probabilities.values() if p > 0)
    return top_label, float(top_probability), float(top_probability - second_probability), float(entropy)
