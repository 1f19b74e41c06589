"""Training pairs from the viewer: which labels layer segments which image, and copies of them as samples.

Kept apart from the Fine-tune widget so that the checks a user meets before any training (one segmentation per
image, schema, size, label values) read in one place and can be tested without building the widget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..schemas import get_schema
from .evaluate_pairs import layer_key
from .layers import image_rgb, labels_in_schema, meta, pair_key, same_image, strip_tags

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Image, Labels

    from ..training import Sample


@dataclass
class LayerPair:
    """An image layer and a segmentation of it (prediction being corrected, or an expert mask)."""

    image: Image
    labels: Labels

    @property
    def key(self) -> str:
        return f"{self.image.name}\t{self.labels.name}"

    @property
    def corrected(self) -> bool:
        return bool(meta(self.labels).get("corrected", False))

    @property
    def is_mask(self) -> bool:
        return meta(self.labels).get("role") == "mask"

    @property
    def text(self) -> str:
        tag = "✓ corrected" if self.corrected else ("expert mask" if self.is_mask else "not marked corrected")
        return f"{self.image.name}  ←  {self.labels.name}   ({tag})"


def find_layer_pairs(viewer: napari.Viewer) -> list[LayerPair]:
    """Every (image, labels) pair in the viewer (:func:`image_for`)."""
    from napari.layers import Image, Labels

    images = [layer for layer in viewer.layers if isinstance(layer, Image) and meta(layer).get("role") != "uncertainty"]
    pairs = []
    for layer in viewer.layers:
        if isinstance(layer, Labels) and meta(layer).get("role") != "errors":
            image = image_for(layer, images)
            if image is not None:
                pairs.append(LayerPair(image, layer))
    return pairs


def image_for(labels: Labels, images: list[Image]) -> Image | None:
    """The image ``labels`` segments: the one read from the file it records, else the one named as its source,
    else one whose name pairs with it; never one recorded as another file (two folders' ``001``)."""
    by_file = [im for im in images if same_image(labels, im)]
    fits = by_file or [im for im in images if same_image(labels, im) is not False]
    source = str(meta(labels).get("source") or "")
    own = strip_tags(labels.name).lower()
    key = layer_key(labels)
    for test in (
        lambda im: im.name == source,
        lambda im: im.name.lower() == own,
        lambda im: pair_key(im.name) == key,
    ):
        found = next((im for im in fits if test(im)), None)
        if found is not None:
            return found
    return by_file[0] if by_file else None  # the same file opened twice, under names that pair with neither


def pair_samples(pairs: list[LayerPair], schema_name: str, base: str) -> list[Sample]:
    """Copies of the layers' data as training samples in ``schema_name``; ValueError with a user-facing reason."""
    from ..training import Sample

    schema = get_schema(schema_name)
    seen: dict[str, str] = {}
    out = []
    for pair in pairs:
        image, labels = pair.image, pair.labels
        if image.name in seen:
            raise ValueError(f"{image.name}: tick one segmentation per image ({seen[image.name]}, {labels.name})")
        seen[image.name] = labels.name
        recorded = meta(labels).get("schema")
        if recorded and recorded != schema.name:
            other = get_schema(recorded)
            raise ValueError(
                f"'{labels.name}' is a {other.name} segmentation ({', '.join(other.class_names)}) but {base} "
                f"segments {schema.name} ({', '.join(schema.class_names)}): choose a {other.name} base model"
            )
        rgb = image_rgb(image)
        data = np.asarray(labels.data)
        if data.ndim != 2:
            raise ValueError(f"'{labels.name}': only 2-D segmentations can be used, this one has shape {data.shape}")
        if data.shape != rgb.shape[:2]:
            raise ValueError(
                f"'{labels.name}' is {data.shape[0]}x{data.shape[1]} but its image '{image.name}' is "
                f"{rgb.shape[0]}x{rgb.shape[1]}: the segmentation must cover the image pixel for pixel"
            )
        try:
            values = labels_in_schema(data, schema)
        except ValueError as exc:
            raise ValueError(f"'{labels.name}': {exc}") from None
        out.append(Sample(image.name, np.array(rgb, copy=True), np.array(values, dtype=np.uint8, copy=True)))
    return out


def split_for_finetune(samples: list[Sample], val_fraction: float | None) -> tuple[list[Sample], list[Sample]]:
    """(train, val): ``val_fraction`` of the labelled images by name (seeded), or all for training when None."""
    from ..training.data import split_for_finetuning

    if val_fraction is None or val_fraction <= 0:
        return list(samples), []
    train, val = split_for_finetuning(samples, val_fraction)
    if not train:
        raise ValueError(
            f"a validation part of {val_fraction:.0%} leaves no image to train on: use a smaller part, "
            "more images, or 'use all for training'"
        )
    return train, val
