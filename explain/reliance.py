"""Image reliance per post: does the prediction survive without the image, or with another post's image?

The paper's visual shuffle (Table 1) asks this for a whole test set; here it is asked per post, so the review queue
can be sorted by how much each prediction leans on its picture.

    p_original   p(pred | post)                                 pred = the model's label for the post
    p_no_image   p(pred | post, every visual slot masked out)    as for a post that has no image
    p_swapped    p(pred | post, the image and crops of k other posts, one at a time)
    score        max(|p_original - p_no_image|, mean_j |p_original - p_swapped_j|), in [0, 1]

The max keeps both ways a model can use the image: a prediction that collapses without any picture, and one that
follows whatever picture it is given. flip_rate (the share of swaps that change the label) is reported beside it.
The score is 0 by definition for a text_only model and for a post without an image: nothing visual can be removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from explain.inputs import PostInputs, probabilities, repeat_batch
from model.data import Record


@dataclass
class ImageReliance:
    p_original: float
    p_no_image: float
    p_swapped: np.ndarray  # (k,) p(pred) with each other post's visual inputs
    swapped_predictions: list[str]  # (k,) the label predicted with each swap
    score: float  # in [0, 1]; see the module docstring
    predicted_label: str = ""
    no_image_prediction: str = ""
    flip_rate: float = 0.0  # share of swaps whose predicted label differs from the original one
    # source line of each post whose image was swapped in
    swapped_lines: list[int] = field(default_factory=list)
    reason: str = ""  # why the score is 0 by definition ("text_only model", "no image"), else ""
    settings: dict = field(default_factory=dict)


def _same_picture(post: PostInputs, other: PostInputs) -> bool:
    key = post.visual_key
    return torch.equal(post.batch[key], other.batch[key]) and torch.equal(
        post.batch["image_mask"], other.batch["image_mask"]
    )


def pick_indices(n: int, k: int, seed: int) -> list[int]:
    """k of range(n) in a seeded random order (all of them, shuffled, when n <= k)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k].tolist()


def choose_other_records(record: Record, records: list[Record], k: int, seed: int) -> list[Record]:
    """k records with an image other than `record`'s, chosen reproducibly; for encoding only what will be swapped."""
    pool = [
        candidate
        for candidate in records
        if candidate is not record
        and candidate.image_path is not None
        and candidate.image_path != record.image_path
    ]
    return [pool[i] for i in pick_indices(len(pool), k, seed)]


def image_reliance(
    model, inputs: PostInputs, other_inputs: list[PostInputs], k: int = 5, seed: int = 0
) -> ImageReliance:
    """How much the predicted label's probability depends on this post's image (see the module docstring).

    other_inputs: encoded posts (explain.encode_post with the same model) whose visual inputs are swapped in; only
    their images and crops are used. Posts without an image or with exactly this post's picture are skipped, then k
    are chosen with torch.Generator(seed).
    """
    names = model.config.label_names
    settings = {
        "k": k,
        "seed": seed,
        "no_image": "image_mask = 0",
        "score": "max(|d no image|, mean |d swap|)",
    }
    if not model.config.uses_image or not inputs.has_image:
        probs = probabilities(model, inputs.batch)[0]
        pred = int(probs.argmax())
        probability = float(probs[pred])
        return ImageReliance(
            p_original=probability,
            p_no_image=probability,
            p_swapped=np.zeros(0),
            swapped_predictions=[],
            score=0.0,
            predicted_label=names[pred],
            no_image_prediction=names[pred],
            reason="text_only model" if not model.config.uses_image else "no image",
            settings=settings,
        )
    key = inputs.visual_key
    pool = [
        other
        for other in other_inputs
        if other.has_image and other.visual_key == key and not _same_picture(inputs, other)
    ]
    others = [pool[i] for i in pick_indices(len(pool), k, seed)]
    batch = repeat_batch(inputs.batch, 2 + len(others))  # row 0 post, row 1 no image, rows 2.. swaps
    batch["image_mask"][1] = 0.0
    for row, other in enumerate(others, start=2):
        batch[key][row] = other.batch[key][0]
        batch["image_mask"][row] = other.batch["image_mask"][0]
    all_probs = probabilities(model, batch)  # (2 + k, num_labels)
    pred = int(all_probs[0].argmax())
    label_probabilities = all_probs[:, pred].double().numpy()
    labels = all_probs.argmax(-1).tolist()
    swapped = label_probabilities[2:]
    d_swap = float(np.mean(np.abs(label_probabilities[0] - swapped))) if len(swapped) else 0.0
    score = float(np.clip(max(abs(label_probabilities[0] - label_probabilities[1]), d_swap), 0.0, 1.0))
    return ImageReliance(
        p_original=float(label_probabilities[0]),
        p_no_image=float(label_probabilities[1]),
        p_swapped=swapped,
        swapped_predictions=[names[i] for i in labels[2:]],
        score=score,
        predicted_label=names[pred],
        no_image_prediction=names[labels[1]],
        flip_rate=float(np.mean([i != pred for i in labels[2:]])) if len(swapped) else 0.0,
        swapped_lines=[other.record.line for other in others],
        settings=settings,
    )
