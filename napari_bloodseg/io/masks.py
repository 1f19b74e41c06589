"""Expert masks: read any grey/RGB encoding into label values, write back in the schema's grey convention."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..schemas import IGNORE_INDEX, LabelSchema, get_schema, guess_schema
from .atomic import atomic_write
from .images import ImageReadError, _read_raw


class MaskError(ValueError):
    """A mask is unreadable or does not fit its image."""


def grey_from_array(raw: np.ndarray) -> np.ndarray:
    """Masks saved as RGB(A) carry the same grey in each channel: take the channel maximum (alpha dropped)."""
    a = np.asarray(raw)
    if a.ndim == 3:
        if a.shape[-1] in (2, 4):
            a = a[..., :-1]
        a = a.max(axis=-1)
    if a.ndim != 2:
        raise MaskError(f"expected a 2-D mask, got shape {a.shape}")
    if a.dtype != np.uint8:
        top = float(a.max(initial=0))
        a = (a.astype(np.float64) * (255.0 / top)).round() if top > 255 else a
        a = np.asarray(a).clip(0, 255).astype(np.uint8)
    return a


def looks_like_photo(raw: np.ndarray) -> bool:
    """A colour picture rather than a mask: channels that differ on over 5 % of the pixels, in more than 64 colours.
    A mask has a few grey levels (a colour-coded one a few colours); read as one, a photograph's channel maximum
    snapped to the levels scored as if it were an expert's mask."""
    a = np.asarray(raw)
    if a.ndim != 3 or a.shape[-1] < 3:
        return False
    rgb = a[..., :3][:: max(1, a.shape[0] // 256), :: max(1, a.shape[1] // 256)].astype(np.int64)
    if ((rgb.max(axis=-1) - rgb.min(axis=-1)) > 32).mean() <= 0.05:
        return False
    packed = (rgb[..., 0] << 40) | (rgb[..., 1] << 20) | rgb[..., 2]
    return np.unique(packed).size > 64


def labels_from_grey(grey: np.ndarray, schema: LabelSchema | str | None = None) -> tuple[np.ndarray, LabelSchema]:
    """Grey mask → (label values, schema). A mask already in label space (values < n_classes) is kept as is."""
    sch = guess_schema(grey) if schema is None else get_schema(schema)
    if grey.size and int(grey.max()) < sch.num_classes:
        return grey.astype(np.uint8), sch
    return sch.from_disk(grey), sch


def read_mask(
    path: str | Path,
    schema: LabelSchema | str | None = None,
    *,
    shape: tuple[int, int] | None = None,
    shape_of: str = "its image",
) -> tuple[np.ndarray, LabelSchema]:
    """Read an expert mask as label values, snapping stray grey values to the nearest level.

    ``shape`` is the image's (H, W): a mask of another size is refused rather than resized, since a
    resized mask would silently score against the wrong pixels. ``shape_of`` names what it must fit, for the error.
    """
    path = Path(path)
    try:
        raw = _read_raw(path)
    except ImageReadError as exc:
        raise MaskError(str(exc)) from None
    if looks_like_photo(raw):
        raise MaskError(f"{path.name}: a colour image, not a mask (masks are grey: WBC 0/128/255, RBC 0/255)")
    try:
        grey = grey_from_array(raw)
    except MaskError as exc:
        raise MaskError(f"{path}: {exc}") from None
    unlabelled = raw[..., -1] == 0 if raw.ndim == 3 and raw.shape[-1] in (2, 4) else None
    if shape is not None and tuple(grey.shape) != tuple(shape[:2]):
        size = f"{grey.shape[0]}x{grey.shape[1]}"
        raise MaskError(f"{path.name}: mask is {size} but {shape_of} is {shape[0]}x{shape[1]}")
    labels, sch = labels_from_grey(grey, schema)
    if unlabelled is not None and unlabelled.any():
        labels[unlabelled] = IGNORE_INDEX
    return labels, sch


def mask_pixels(labels: np.ndarray, schema: LabelSchema, *, alpha: bool) -> np.ndarray:
    """Label values → the file's pixels: the schema's grey levels, or with ``alpha`` grey + alpha where unlabelled
    (IGNORE_INDEX) pixels are transparent, so the grey levels keep their meaning."""
    grey = schema.to_disk(labels)
    if not alpha:
        return grey
    return np.dstack([grey, np.where(labels == IGNORE_INDEX, 0, 255).astype(np.uint8)])


def write_mask(path: str | Path, labels: np.ndarray, schema: LabelSchema | str, *, overwrite: bool = False) -> Path:
    """Write label values as the schema's grey PNG (or TIFF by suffix), atomically; never overwrites silently.

    Partial labels (IGNORE_INDEX pixels, "not annotated") are kept as a transparent alpha channel, so the
    grey levels keep their meaning and the file still opens as a mask anywhere.
    """
    sch = get_schema(schema)
    path = Path(path)
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise MaskError(f"labels must be 2-D, got shape {labels.shape}")
    if labels.size and (
        labels.max() >= sch.num_classes and not np.all(np.isin(labels, [*range(sch.num_classes), 255]))
    ):
        raise MaskError(f"labels hold values outside the {sch.name} schema (0..{sch.num_classes - 1})")
    grey = mask_pixels(labels, sch, alpha=bool((labels == IGNORE_INDEX).any()))
    suffix = path.suffix.lower()

    def _write(tmp: Path) -> None:
        if suffix in (".tif", ".tiff"):
            import tifffile

            tifffile.imwrite(tmp, grey, compression="zlib")
        elif suffix == ".png":
            from PIL import Image

            Image.fromarray(grey, mode="LA" if grey.ndim == 3 else "L").save(tmp, format="PNG")
        else:
            raise MaskError(f"{path.name}: masks are written as .png or .tif, not {suffix or 'no suffix'}")

    if suffix not in (".png", ".tif", ".tiff"):
        raise MaskError(f"{path.name}: masks are written as .png or .tif, not {suffix or 'no suffix'}")
    return atomic_write(path, _write, overwrite=overwrite)
