"""How far an attribution can be trusted: ERASER's comprehensiveness and sufficiency, as AOPC over top-k% units.

    comprehensiveness(k) = p(target | post) - p(target | post without its top-k units)   high = the units mattered
    sufficiency(k)       = p(target | post) - p(target | only the top-k units)           low  = they are enough

Both are averaged over the fractions (AOPC). The same numbers for k *random* units give the yardstick: an
explanation whose comprehensiveness is no higher than random's says nothing about the model.

Units: for a TokenAttribution the word pieces (never [CLS], [SEP] or the entity markers), removed by zeroing their
attention-mask entries (the token is invisible to every layer, positions of the rest unchanged); for a
VisualAttribution the 49 global-image regions and the present crops, removed as in attribution.remove_visual_units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from explain.attribution import TokenAttribution, VisualAttribution, remove_visual_units, visual_units
from explain.inputs import PostInputs, probabilities, repeat_batch, resolve_target


@dataclass
class Faithfulness:
    comprehensiveness: float  # AOPC over the fractions
    sufficiency: float
    per_fraction: dict[float, dict]  # fraction -> {k, comprehensiveness, sufficiency, random_compr...}
    random_comprehensiveness: float  # the same removal with k random units (mean over draws and fractions)
    kind: str = "tokens"  # "tokens" | "visual"
    target_label: str = ""
    n_units: int = 0
    settings: dict = field(default_factory=dict)

    @property
    def gain_over_random(self) -> float:
        """comprehensiveness - random comprehensiveness: > 0 when the attribution found units that matter."""
        return self.comprehensiveness - self.random_comprehensiveness


def _units_and_remover(inputs: PostInputs, attribution):
    if isinstance(attribution, TokenAttribution):
        units = [i for i, special in enumerate(inputs.special_mask) if not special]
        scores = np.asarray(attribution.scores)[units]

        def remove(batch, row, chosen):
            batch["attention_mask"][row, list(chosen)] = 0

        return "tokens", units, scores, remove
    if isinstance(attribution, VisualAttribution):
        units = visual_units(inputs)
        return "visual", units, attribution.unit_scores[units], remove_visual_units
    raise TypeError(f"expected a TokenAttribution or VisualAttribution, got {type(attribution).__name__}")


def faithfulness(
    model,
    inputs: PostInputs,
    attribution: TokenAttribution | VisualAttribution,
    target: int | str | None = None,
    fractions: tuple[float, ...] = (0.1, 0.2, 0.5),
    n_random: int = 3,
    seed: int = 0,
) -> Faithfulness:
    """Comprehensiveness / sufficiency of `attribution` for p(target) (default: the attribution's own target).

    k = ceil(fraction * units), at least 1; top units by score (largest positive contribution first). All
    1 + len(fractions) * (2 + n_random) perturbations run as one batch (each row costs about one forward pass, so
    n_random is kept small; 3 draws x 3 fractions average 9 random removals). Random draws use torch.Generator(seed), so results repeat exactly.
    """
    target_id = attribution.target_id if target is None else resolve_target(model, inputs, target)
    kind, units, scores, remove = _units_and_remover(inputs, attribution)
    n = len(units)
    settings = {"fractions": list(fractions), "n_random": n_random, "seed": seed, "output": "probability"}
    label = model.config.label_names[target_id]
    if n == 0:  # nothing to remove (e.g. a post of entities only): no evidence either way
        zero = {fraction: {"k": 0, "comprehensiveness": 0.0, "sufficiency": 0.0} for fraction in fractions}
        return Faithfulness(0.0, 0.0, zero, 0.0, kind, label, 0, settings)

    order = [units[i] for i in np.argsort(-scores, kind="stable")]  # most supportive first
    generator = torch.Generator().manual_seed(seed)
    plan = []  # (fraction, what, removed units) for rows 1..; row 0 is the post itself
    for fraction in fractions:
        k = max(1, math.ceil(fraction * n))
        top = order[:k]
        plan.append((fraction, "comprehensiveness", top))
        plan.append((fraction, "sufficiency", order[k:]))
        for _ in range(n_random):
            pick = [units[i] for i in torch.randperm(n, generator=generator)[:k].tolist()]
            plan.append((fraction, "random_comprehensiveness", pick))
    batch = repeat_batch(inputs.batch, 1 + len(plan))
    for row, (_, _, removed) in enumerate(plan, start=1):
        remove(batch, row, removed)
    label_probability = probabilities(model, batch)[:, target_id].double().numpy()  # (1 + rows,)

    per_fraction: dict[float, dict] = {}
    for row, (fraction, what, _) in enumerate(plan, start=1):
        entry = per_fraction.setdefault(fraction, {"k": max(1, math.ceil(fraction * n))})
        entry.setdefault(what, []).append(label_probability[0] - label_probability[row])
    for entry in per_fraction.values():
        for what in ("comprehensiveness", "sufficiency", "random_comprehensiveness"):
            entry[what] = float(np.mean(entry[what]))

    def aopc(what: str) -> float:
        return float(np.mean([per_fraction[fraction][what] for fraction in fractions]))

    return Faithfulness(
        comprehensiveness=aopc("comprehensiveness"),
        sufficiency=aopc("sufficiency"),
        per_fraction=per_fraction,
        random_comprehensiveness=aopc("random_comprehensiveness"),
        kind=kind,
        target_label=label,
        n_units=n,
        settings=settings,
    )
