"""Shared helpers for napari layers: schema colours and class names, bloodseg metadata, name pairing.

Every Labels layer the plugin makes carries ``metadata["bloodseg"]`` (schema, role, source image, model,
corrected flag) so the other widgets, the writer and the exporter know what the label values mean without
guessing, and ``features`` with one row per label value so napari's status bar shows the class name.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from ..schemas import IGNORE_INDEX, LabelSchema, get_schema, guess_schema

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Image, Labels, Layer

#: Key of the plugin's entry in ``layer.metadata``.
META_KEY = "bloodseg"

_BRACKET_SUFFIX = re.compile(r"\s*\[[^\[\]]*\]\s*$")
_MASK_TAG = re.compile(
    r"(?:[\s_\-]+|^)\(?(?:expert|mask|masks|label|labels|gt|truth|ground[\s_\-]?truth|annotation|errors)\)?$",
    re.IGNORECASE,
)


def strip_tags(name: str) -> str:
    """Name without `` [model]`` / `` [1]`` suffixes and mask tags, case kept (``"001 mask [1]"`` → ``"001"``).

    This is the stem a prediction shares with its image and expert mask, so it pairs layers and names exported files.
    """
    s = name.strip()
    while True:
        t = _BRACKET_SUFFIX.sub("", s)
        t = _MASK_TAG.sub("", t).strip()
        if t == s or not t:
            return t or s
        s = t


def pair_key(name: str) -> str:
    """Case-insensitive key that pairs a prediction layer with its expert mask layer."""
    return strip_tags(name).lower()


def image_file(layer: Layer) -> str | None:
    """The file behind an Image layer, or behind the image a Labels layer segments or annotates, as recorded by
    the plugin's reader and Segment; None when unknown. Layers of two same-named files from two folders (napari
    calls the second ``001 [1]``) pair by this, not by their names."""
    info = layer.metadata.get(META_KEY)
    if not isinstance(info, dict):
        return None
    path = info.get("image_path") or (info.get("path") if info.get("role") == "image" else None)
    return os.path.abspath(str(path)) if path else None


def same_image(a: Layer, b: Layer) -> bool | None:
    """True / False when both layers know their image file, None when either does not."""
    fa, fb = image_file(a), image_file(b)
    return None if fa is None or fb is None else fa == fb


def meta(layer: Layer) -> dict[str, Any]:
    """The layer's bloodseg metadata dict, created on first use (so every widget can write to it)."""
    md = layer.metadata
    entry = md.get(META_KEY)
    if not isinstance(entry, dict):
        entry = {}
        md[META_KEY] = entry
    return entry


def label_colormap(colors: dict[int | None, tuple[float, ...]]):
    """A DirectLabelColormap, so label 1 is always the same colour (napari's default cycles colours)."""
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(color_dict=colors)


def class_features(names: list[str] | tuple[str, ...], *, unlabelled: bool = False) -> dict[str, Any]:
    """One feature row per label value: napari's status bar then reads ``class: nucleus`` under the cursor.

    ``unlabelled`` adds a row for the not-annotated value (IGNORE_INDEX) that the Correct widget paints."""
    index, classes = list(range(len(names))), list(names)
    if unlabelled:
        index.append(IGNORE_INDEX)
        classes.append("unlabelled")
    return {"index": np.array(index), "class": classes}


def schema_layer_kwargs(
    schema: LabelSchema | str,
    name: str,
    *,
    role: str,
    source: str | None = None,
    model: str | None = None,
    path: str | None = None,
    opacity: float = 0.6,
    **extra: Any,
) -> dict[str, Any]:
    """Keyword arguments for ``viewer.add_labels`` (or a reader's layer-data tuple) in ``schema``'s colours.

    ``role`` is ``"prediction"``, ``"mask"`` (expert) or ``"errors"``; the evaluate widget pairs by it.
    """
    sch = get_schema(schema)
    info: dict[str, Any] = {
        "schema": sch.name,
        "class_names": list(sch.class_names),
        "role": role,
        "source": source if source is not None else strip_tags(name),
        "model": model,
        "corrected": False,
    }
    if path is not None:
        info["path"] = str(path)
    info.update(extra)
    return {
        "name": name,
        "colormap": label_colormap(sch.napari_colors()),
        "features": class_features(sch.class_names, unlabelled=True),
        "metadata": {META_KEY: info},
        "opacity": opacity,
    }


def guess_labels_schema(data: np.ndarray) -> LabelSchema:
    """Schema of label-space data (0/1 → RBC, 0/1/2 → WBC) or of on-disk grey levels (0/128/255, 0/255)."""
    values = np.unique(np.asarray(data))
    values = values[values != IGNORE_INDEX] if values.size and values.max() <= IGNORE_INDEX else values
    if values.size == 0 or values.max() <= 1:
        return get_schema("rbc")
    if values.max() == 2:
        return get_schema("wbc")
    return guess_schema(np.asarray(data))


def layer_schema(layer: Labels) -> LabelSchema:
    """Schema from the layer's bloodseg metadata, guessed from its values otherwise."""
    name = meta(layer).get("schema")
    if name:
        try:
            return get_schema(name)
        except ValueError:
            pass
    return guess_labels_schema(np.asarray(layer.data))


def apply_schema(layer: Labels, schema: LabelSchema | str) -> None:
    """Record ``schema`` as the layer's (metadata, colours, class names in the status bar) for every widget."""
    sch = get_schema(schema)
    info = meta(layer)
    info["schema"], info["class_names"] = sch.name, list(sch.class_names)
    layer.colormap = label_colormap(sch.napari_colors())
    layer.features = class_features(sch.class_names, unlabelled=True)
    layer.events.metadata()


def labels_in_schema(data: np.ndarray, schema: LabelSchema) -> np.ndarray:
    """Label values for ``schema``: label-space data as is, grey levels (0/128/255) mapped back.

    Anything else (e.g. instance ids 3, 4, …) is refused rather than silently snapped to a class.
    """
    arr = np.asarray(data)
    values = np.unique(arr)
    allowed = set(range(schema.num_classes)) | {IGNORE_INDEX}
    if set(values.tolist()) <= allowed:
        return arr.astype(np.uint8)
    if set(values.tolist()) <= set(schema.grey_levels):
        return schema.from_disk(arr.astype(np.uint8))
    bad = sorted(set(values.tolist()) - allowed)[:5]
    raise ValueError(
        f"label values {bad} are not classes of the {schema.name} schema "
        f"({', '.join(f'{i} {n}' for i, n in enumerate(schema.class_names))})"
    )


def level0(layer: Layer) -> Any:
    """The layer's full-resolution data (level 0 of a multiscale layer)."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def is_lazy(data: Any) -> bool:
    """Not a plain in-memory numpy array: dask, zarr, a memory map or another array-like read on demand.

    Such data may be far bigger than memory, so nothing here converts it whole."""
    return not isinstance(data, np.ndarray) or isinstance(data, np.memmap)


def too_big_to_load(data: Any) -> bool:
    """Lazy data of at least the reader's ``LAZY_MIN_PIXELS`` (a 2-D plane): loading it whole may not fit."""
    from . import reader

    return is_lazy(data) and len(data.shape) >= 2 and data.shape[0] * data.shape[1] >= reader.LAZY_MIN_PIXELS


def _lazy_rgb(layer: Image, data: Any) -> Any:
    """Stream source of a lazy layer: its file through ``open_lazy`` when the reader recorded one (a memmap or
    zarr array, cheaper than going through dask), else the layer's own level 0, converted band by band."""
    from ..io.images import ImageReadError
    from ..io.lazy import as_rgb_uint8, open_lazy

    info = meta(layer)
    if info.get("lazy") and info.get("path"):
        try:
            src = open_lazy(info["path"])
        except ImageReadError:
            src = None
        if src is not None and tuple(src.shape[:2]) == tuple(data.shape[:2]):
            return src
    return as_rgb_uint8(data, layer.name)


def image_rgb(layer: Image, *, lazy: bool = False) -> Any:
    """A 2-D Image layer as the (H, W, 3) uint8 image the Predictor wants; stacks and volumes are refused.

    In-memory layers give a numpy array. A lazy layer (:func:`is_lazy`, e.g. a big TIFF the reader opened
    lazily) gives, with ``lazy=True``, an array-like read band by band and never converted whole; without it, a
    numpy array when it has fewer than the reader's ``LAZY_MIN_PIXELS``, else a ValueError (it may not fit)."""
    from ..io.images import to_rgb_uint8

    data = level0(layer)
    spatial = len(data.shape) - (1 if layer.rgb else 0)
    if spatial != 2:
        raise ValueError(f"{layer.name}: only 2-D images can be segmented, this one has shape {tuple(data.shape)}")
    if is_lazy(data) and lazy:
        return _lazy_rgb(layer, data)
    if too_big_to_load(data):
        raise ValueError(
            f"{layer.name}: a {data.shape[1]} x {data.shape[0]} image read from disk is too big to load into "
            "memory here (Segment streams it; crop a region into a new layer for this)"
        )
    return to_rgb_uint8(np.asarray(data), layer.name)


def find_layer(viewer: napari.Viewer, name: str) -> Layer | None:
    """Layer by name, or None (``name in viewer.layers`` plus indexing, in one call)."""
    for layer in viewer.layers:
        if layer.name == name:
            return layer
    return None
