"""Which open images "Apply to remaining images" gives a fine-tuned model, and what it says about the others.

A model segments the kind of image it learnt from: a WBC model run on a smear field (or an RBC one on a single-cell
crop) gives a layer of nonsense. So only the images not used for training that are of its kind are segmented,
and the others are named with why (GUI audit L2: a WBC fine-tune was applied to an open RBC field without a word).
Kept free of Qt so the rule reads, and is tested, on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .layers import meta
from .model_choices import image_kind

if TYPE_CHECKING:  # pragma: no cover
    from napari.layers import Image, Layer

#: how an image of each kind (:func:`~napari_bloodseg.models.zoo.schema_for_image`) is called: one, several
KIND_NAMES = {"wbc": ("a single-cell crop", "single-cell crops"), "rbc": ("a smear field", "smear fields")}


def model_kinds(schema: str, trained_on: Iterable[Image]) -> set[str]:
    """The kinds of image a fine-tuned model segments: its schema's, and those of the images it was trained on
    (an RBC model taught on small field crops, a WBC one on big crops, is for such images too)."""
    return {schema} | {kind for image in trained_on if (kind := image_kind([image])) is not None}


def remaining_of_kind(layers: Iterable[Layer], used: Iterable[str], kinds: set[str]) -> tuple[list[str], list[str]]:
    """(image layers to segment, image layers left out for their kind), by name: those not in ``used`` and no
    uncertainty map, in layer order."""
    from napari.layers import Image

    skip = set(used)
    fit: list[str] = []
    left_out: list[str] = []
    for layer in layers:
        if isinstance(layer, Image) and meta(layer).get("role") != "uncertainty" and layer.name not in skip:
            (fit if image_kind([layer]) in kinds else left_out).append(layer.name)
    return fit, left_out


def left_out_note(model: str, kinds: set[str], left_out: list[str]) -> str:
    """Why ``left_out`` are not segmented: ``"wbc-ft1 segments single-cell crops: left out field (a smear field)"``."""
    what = " and ".join(KIND_NAMES[k][1] for k in sorted(kinds, reverse=True))
    other = {"wbc", "rbc"} - kinds
    kind = KIND_NAMES[other.pop()][0 if len(left_out) == 1 else 1] if len(other) == 1 else "another kind"
    return f"{model} segments {what}: left out {', '.join(left_out)} ({kind})"
