"""npe2 writer and batch export: Labels layers → masks in the schema's grey convention (WBC 0/128/255, RBC 0/255).

The schema comes from the layer's bloodseg metadata, or is guessed from its values. Files are written atomically
through :func:`napari_bloodseg.io.write_mask`. napari's Save dialog has already asked about replacing a file, so
the npe2 writer overwrites; the batch export never replaces a file unless asked to.

Labels read from disk and too big to copy (a big image segmented by the Segment widget, backed by a memory map)
are written as TIFF band by band (:func:`napari_bloodseg.io.lazy.write_mask_banded`); as PNG they are refused
with a message, since a PNG is encoded from the whole image in memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..io.masks import write_mask
from ..schemas import LabelSchema, get_schema
from .layers import META_KEY, guess_labels_schema, labels_in_schema, layer_schema, meta, strip_tags, too_big_to_load

if TYPE_CHECKING:  # pragma: no cover
    from napari.layers import Labels

_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]+')


def _schema_from_attributes(data: np.ndarray, attributes: dict[str, Any]) -> LabelSchema:
    info = (attributes.get("metadata") or {}).get(META_KEY) or {}
    if info.get("schema"):
        return get_schema(info["schema"])
    return guess_labels_schema(data)


def _plane(data: Any, name: str) -> np.ndarray:
    arr = np.asarray(_level0(data))
    arr = arr.squeeze() if arr.ndim > 2 else arr
    if arr.ndim != 2:
        raise ValueError(f"{name}: only 2-D label layers can be written as masks (shape {arr.shape})")
    return arr


def _write_big(path: str | Path, data: Any, schema: str | None, name: str, *, overwrite: bool) -> Path:
    """Labels too big to copy: a PNG or TIFF written band by band, or a clear refusal."""
    from ..io.lazy import write_mask_banded

    h, w = data.shape[:2]
    if Path(path).suffix.lower() not in (".png", ".tif", ".tiff"):
        raise ValueError(
            f"{name}: {w} x {h} labels read from disk are written as .png or .tif (band by band); "
            f"a {Path(path).suffix or 'file without suffix'} would need the whole image in memory"
        )
    if not schema:
        raise ValueError(f"{name}: no schema recorded for these {w} x {h} labels (it is not guessed from disk)")
    try:
        return write_mask_banded(path, data, schema, overwrite=overwrite)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _level0(data: Any) -> Any:
    """Full-resolution data: level 0 of a multiscale layer's list (the writer gets data, not the layer)."""
    return data[0] if isinstance(data, list) else data


def write_labels(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """npe2 single-layer writer for Labels → ``.png``/``.tif`` grey mask. Returns the written path."""
    name = str(attributes.get("name", "labels"))
    if too_big_to_load(_level0(data)):
        schema_name = ((attributes.get("metadata") or {}).get(META_KEY) or {}).get("schema")
        return [str(_write_big(path, _level0(data), schema_name, name, overwrite=True))]
    arr = _plane(data, name)
    schema = _schema_from_attributes(arr, attributes)
    labels = labels_in_schema(arr, schema)
    out = write_mask(path, labels, schema, overwrite=True)
    return [str(out)]


def export_name(layer: Labels) -> str:
    """File stem for an exported mask: the source image's name (so it pairs with the image on disk)."""
    info = meta(layer)
    stem = info.get("source") or strip_tags(layer.name)
    stem = Path(str(stem)).stem if Path(str(stem)).suffix.lower() in (".png", ".bmp", ".jpg", ".tif") else stem
    return _UNSAFE.sub("_", str(stem)).strip() or "mask"


@dataclass
class ExportResult:
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # existed, overwrite not asked for
    failed: list[str] = field(default_factory=list)  # "layer: reason"


def export_stems(layers: list[Labels]) -> list[str]:
    """File stems for ``layers``, the same whatever their order in the layer list.

    A layer alone on its image gets the image's name. When several layers share one image (two models, a
    prediction beside its expert mask), the one marked corrected keeps the plain name if it is the only one; the
    others are tagged with their model (or ``mask``, or what their layer name adds to the image's name)."""
    stems = [export_name(layer) for layer in layers]
    groups: dict[str, list[int]] = {}
    for i, stem in enumerate(stems):
        groups.setdefault(stem.lower(), []).append(i)
    plain: set[int] = set()
    for members in groups.values():
        corrected = [i for i in members if meta(layers[i]).get("corrected")]
        if len(members) == 1 or len(corrected) == 1:
            plain.add(members[0] if len(members) == 1 else corrected[0])
    out = list(stems)
    used = {stems[i].lower() for i in plain}
    for key in sorted(groups):  # sorted, not in layer order: a tag that clashes gets its _2 the same way every time
        for i in sorted(groups[key], key=lambda i: layers[i].name.lower()):
            if i in plain:
                continue
            stem = f"{stems[i]}_{_export_tag(layers[i], stems[i])}"
            candidate, n = stem, 2
            while candidate.lower() in used:
                candidate, n = f"{stem}_{n}", n + 1
            used.add(candidate.lower())
            out[i] = candidate
    return out


def _export_tag(layer: Labels, stem: str) -> str:
    info = meta(layer)
    tag = info.get("model") or ("mask" if info.get("role") == "mask" else None)
    if not tag:
        rest = layer.name[len(stem) :] if layer.name.lower().startswith(stem.lower()) else layer.name
        tag = rest.strip(" _-") or "labels"
    return _UNSAFE.sub("_", str(tag)).replace(" ", "_")


def export_layers(
    layers: Iterable[Labels], folder: str | Path, *, suffix: str = ".png", overwrite: bool = False
) -> ExportResult:
    """Write each layer as ``folder/<source image><suffix>``; existing files are skipped unless ``overwrite``.

    Two layers from the same image (two models) get the model name appended so neither hides the other
    (:func:`export_stems`).
    """
    folder = Path(folder)
    result = ExportResult()
    layers = list(layers)
    for layer, stem in zip(layers, export_stems(layers), strict=True):
        target = folder / f"{stem}{suffix}"
        try:
            if too_big_to_load(_level0(layer.data)):
                _write_big(target, _level0(layer.data), meta(layer).get("schema"), layer.name, overwrite=overwrite)
            else:
                arr = _plane(layer.data, layer.name)
                schema = layer_schema(layer)
                write_mask(target, labels_in_schema(arr, schema), schema, overwrite=overwrite)
        except FileExistsError:
            result.skipped.append(target)
        except (ValueError, OSError) as exc:
            result.failed.append(f"{layer.name}: {exc}")
        else:
            result.written.append(target)
    return result
