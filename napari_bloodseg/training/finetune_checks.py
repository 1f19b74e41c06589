"""What a fine-tune refuses, free of torch: the Fine-tune widget checks its layers on napari's GUI thread."""

from __future__ import annotations

import numpy as np

from ..schemas import IGNORE_INDEX
from .data import Sample, check_not_rbc_masks


class FinetuneError(ValueError):
    """Fine-tuning refused: bad inputs, or the result would wreck the base domain."""


def check_samples(samples: list[Sample], num_classes: int) -> None:
    """Refuse inputs that cannot teach anything, with messages a user can act on."""
    if not samples:
        raise FinetuneError("no corrected images given")
    for s in samples:
        if s.image.shape[:2] != s.labels.shape:
            raise FinetuneError(
                f"{s.name}: labels are {s.labels.shape[0]}x{s.labels.shape[1]} but the image is "
                f"{s.image.shape[0]}x{s.image.shape[1]}"
            )
        bad = np.setdiff1d(np.unique(s.labels), [*range(num_classes), IGNORE_INDEX])
        if bad.size:
            raise FinetuneError(
                f"{s.name}: label values {bad.tolist()} do not exist in the model's schema (0..{num_classes - 1})"
            )
    if not any((s.labels != IGNORE_INDEX).any() for s in samples):
        raise FinetuneError("the corrected labels contain no labelled pixels")
    present = set().union(*(np.unique(s.labels).tolist() for s in samples)) - {IGNORE_INDEX}
    if present == {0}:
        raise FinetuneError("the corrected labels mark no cell anywhere (all background): correct or load the cells")
    try:
        check_not_rbc_masks(samples, num_classes)
    except ValueError as exc:
        raise FinetuneError(f"{exc}; fine-tune an RBC model") from None
