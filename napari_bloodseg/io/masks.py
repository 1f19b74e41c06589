"""Expert masks: read any grey/RGB encoding into label values, write back in the schema's grey convention."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..schemas import IGNORE_INDEX, LabelSchema, get_schema, guess_schema
from .atomic import atomic_write
from .images import ImageReadError, _read_raw


class MaskError(ValueError):
    """A mask is unreadable or does not fit its image."""


def grey_from_array(raw: np.ndarray) -> np.ndarray:
    """A mask's pixels as one uint8 grey plane. RGB(A) masks carry the same grey in each channel (the channel
    maximum is taken; alpha dropped); 16-bit ones the 8-bit levels times 257 (0/32896/65535), floats 0..1."""
    a = np.asarray(raw)
    if a.ndim == 3:
        if a.shape[-1] in (2, 4):
            a = a[..., :-1]
        if a.shape[-1] == 3 and colour_coded(a):
            raise MaskError(
                "a colour-coded mask (classes as colours): its colours cannot be told apart as grey levels; save it "
                "as grey levels (WBC 0/128/255, RBC 0/255), label values (0/1/2) or a palette image of class indices"
            )
        a = a.max(axis=-1)
    if a.ndim != 2:
        raise MaskError(f"expected a 2-D mask, got shape {a.shape}")
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if a.dtype != np.uint8:
        top = float(np.nanmax(a, initial=0)) if a.size else 0.0
        if np.issubdtype(a.dtype, np.floating) and top <= 1.0:
            a = np.nan_to_num(a) * 255.0  # 0 / 0.5 / 1 -> 0 / 128 / 255
        elif top > 65535:
            a = a.astype(np.float64) * (255.0 / top)
        elif top > 255:
            a = a / 257.0  # a 16-bit file of 8-bit levels: not by its own maximum, which made cytoplasm nucleus
        a = np.nan_to_num(np.asarray(a, dtype=np.float64)).round().clip(0, 255).astype(np.uint8)
    return a


def colour_coded(rgb: np.ndarray) -> bool:
    """Classes painted in different hues (red cytoplasm, blue nucleus; VOC colours): the channel maximum would
    merge them (both became nucleus). One hue at several brightnesses (dark and bright red) reads fine, as do grey
    masks, JPEG-bent ones included. The hue of a lit pixel: which channels reach half its brightest."""
    sub = rgb[:: max(1, rgb.shape[0] // 512), :: max(1, rgb.shape[1] // 512)].astype(np.int32)
    top = sub.max(axis=-1)
    lit = top > 64
    if not lit.any():
        return False
    hues = ((sub[lit] * 2 > top[lit, None]) * np.array([1, 2, 4])).sum(axis=-1)
    counts = np.bincount(hues, minlength=8)
    return int((counts >= 0.005 * lit.sum()).sum()) > 1


def palette_indices(path: Path) -> np.ndarray | None:
    """Class indices of a palette image (P mode) whose palette is not grey: what annotation tools save (VOC-style
    colours, pixel value = class). None for other files, and for grey palettes (read as grey levels)."""
    from PIL import Image

    from .images import _upright, is_tiff, naming_warnings

    if is_tiff(path):
        return _tiff_palette_indices(path)
    try:
        with naming_warnings(path), Image.open(path) as im:
            if im.mode != "P":
                return None
            im = _upright(im)
            indices = np.asarray(im)
            palette = np.asarray(im.getpalette() or [], dtype=np.int32).reshape(-1, 3)
    except Exception:  # noqa: BLE001 - unreadable: _read_raw says why
        return None
    used = np.unique(indices)
    colours = palette[used[used < len(palette)]]
    if colours.size == 0 or (colours.max(axis=1) - colours.min(axis=1) <= 8).all():
        return None
    return indices


def _tiff_palette_indices(path: Path) -> np.ndarray | None:
    """:func:`palette_indices` for a palette TIFF (photometric 3) of one page, read by tifffile as the rest."""
    import tifffile

    from .images import PALETTE, _orientation, _oriented, colormap_uint8

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            if int(page.photometric) != PALETTE or page.colormap is None or len(tif.series[0].shape) != 2:
                return None
            indices, orientation = np.asarray(tif.series[0].asarray()), _orientation(page)
            palette = colormap_uint8(page.colormap).T.astype(np.int64)  # as reading the image scales it
    except Exception:  # noqa: BLE001 - unreadable: _read_raw says why
        return None
    colours = palette[np.unique(indices)[np.unique(indices) < len(palette)]]
    if colours.size == 0 or (colours.max(axis=1) - colours.min(axis=1) <= 8).all():
        return None
    return _oriented(indices, orientation)


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


#: a mask whose values all lie below this is in label space (0/1/2), perhaps with JPEG noise (a 3 here and there)
LABEL_SPACE_TOP = 16

#: the grey levels of the schemas' masks on disk (WBC 0/128/255; RBC 0/255 is among them)
MASK_GREY_LEVELS = (0, 128, 255)
#: :func:`grey_photo_share` above which a grey image is a photograph, not a mask. Measured (all 380 expert masks
#: of the shared data, and copies): masks 0 %, JPEG or resized copies up to 0.06 %, a half-size copy saved as JPEG
#: 0.9 %; every image there in grey from 11 % (5.5 % at half size): ``benchmarks/grey_photo_masks.py``
GREY_PHOTO_SHARE = 0.02
#: ... and at least this many such pixels: a tiny mask with one odd patch is not a photograph
GREY_PHOTO_MIN_PIXELS = 50
#: pixels sampled (in tiles) from a bigger plane: a slide-sized mask is judged without filtering all of it
_PHOTO_SAMPLE_TILE, _PHOTO_SAMPLE_TILES = 256, 16


def grey_photo_share(grey: np.ndarray, unlabelled: np.ndarray | None = None) -> tuple[float, int]:
    """(share, count) of a grey plane's labelled pixels that no mask has: a mask is flat patches of its grey levels
    and steps between them, whereas a photograph's shades vary smoothly everywhere. After a 3x3 median (stray
    pixels gone), a pixel counts unless its 3x3 patch is flat, a step between levels (over 64 grey levels) lies
    within 2 px (a resized or anti-aliased edge), or it is within 16 of a level with such a step within 7 px (JPEG
    ringing stays in the step's 8x8 block). The share of grey values off the levels would not do: a resized mask
    has 3-6 % of them, a grey photograph of red cells 1 %. A plane over 1 MP is judged on 16 tiles of it."""
    from scipy import ndimage as ndi

    g = np.asarray(grey, dtype=np.uint8)
    off = np.abs(np.arange(256)[:, None] - np.asarray(MASK_GREY_LEVELS)[None, :]).min(axis=1).astype(np.uint8)
    found = total = 0
    for rows, cols in _sample_tiles(g.shape):
        tile = g[rows, cols]
        keep = None if unlabelled is None else ~np.asarray(unlabelled, dtype=bool)[rows, cols]
        total += tile.size if keep is None else int(keep.sum())
        if not (off[tile] > 0).any():
            continue  # only the levels themselves: a clean mask
        tile = ndi.median_filter(tile, size=3, mode="nearest")
        near_step = _spread(tile, 15) > 64
        odd = (_spread(tile, 3) > 0) & ~(_spread(tile, 5) > 64) & ~(near_step & (off[tile] <= 16))
        found += int(odd.sum() if keep is None else (odd & keep).sum())
    return (found / total if total else 0.0), found


def _spread(a: np.ndarray, size: int) -> np.ndarray:
    """Max - min over each size x size window."""
    from scipy import ndimage as ndi

    return ndi.maximum_filter(a, size, mode="nearest") - ndi.minimum_filter(a, size, mode="nearest")


def _sample_tiles(shape: tuple[int, ...]) -> list[tuple[slice, slice]]:
    """The whole plane up to 1 MP; else up to 16 tiles of 256 x 256 spread evenly over it (16 in a row or a column
    of a long thin plane)."""
    height, width = int(shape[0]), int(shape[1])
    t, n = _PHOTO_SAMPLE_TILE, _PHOTO_SAMPLE_TILES
    if height * width <= n * t * t:
        return [(slice(None), slice(None))]
    th, tw = min(height, t), min(width, t)
    ny, nx = min(-(-height // th), 4), min(-(-width // tw), 4)
    if ny < 4:
        nx = min(-(-width // tw), n // ny)
    elif nx < 4:
        ny = min(-(-height // th), n // nx)
    ys = np.linspace(0, height - th, ny).round().astype(int)
    xs = np.linspace(0, width - tw, nx).round().astype(int)
    return [(slice(y, y + th), slice(x, x + tw)) for y in ys for x in xs]


def looks_like_grey_photo(grey: np.ndarray, unlabelled: np.ndarray | None = None) -> bool:
    """A grey photograph (or a colour one saved as grey), not a mask: see :func:`grey_photo_share`. Read as a mask,
    its shades were snapped to the levels and scored as an expert's mask. Label-space masks (0/1/2) are not
    judged: their levels are not grey levels."""
    g = np.asarray(grey)
    if g.ndim != 2 or g.size == 0 or int(g.max()) < LABEL_SPACE_TOP:
        return False
    share, count = grey_photo_share(g, unlabelled)
    return share > GREY_PHOTO_SHARE and count >= GREY_PHOTO_MIN_PIXELS


#: at most this many grey values, together over 99 % of the pixels, make a plane of flat levels rather than shades
_FEW_LEVELS = 8


def _not_mask_levels(grey: np.ndarray) -> str:
    """Why a grey plane the photo test refused is not a mask: flat levels of which some are not the format's
    (0/64/255 was called "smooth shades", which sent users looking for blur), or shades."""
    counts = np.bincount(np.asarray(grey, dtype=np.uint8).ravel(), minlength=256)
    common = np.flatnonzero(counts >= 0.005 * counts.sum())
    if len(common) <= _FEW_LEVELS and counts[common].sum() >= 0.99 * counts.sum():
        levels = ", ".join(str(v) for v in common)
        odd = [int(v) for v in common if min(abs(int(v) - level) for level in MASK_GREY_LEVELS) > 16]
        which = ", ".join(str(v) for v in odd)
        return f"flat grey levels {levels}, of which {which} {'is' if len(odd) == 1 else 'are'} not a mask level"
    return "a grey picture (smooth shades, not flat grey levels), not a mask"


def labels_from_grey(grey: np.ndarray, schema: LabelSchema | str | None = None) -> tuple[np.ndarray, LabelSchema]:
    """Grey mask → (label values, schema). A mask already in label space (values < n_classes) is kept as is; one
    of small values a lossy format bent (0/1/2 saved as JPEG) has them clipped to the schema's classes."""
    sch = guess_schema(grey) if schema is None else get_schema(schema)
    top = int(grey.max()) if grey.size else 0
    if top < sch.num_classes:
        return grey.astype(np.uint8), sch
    if top < LABEL_SPACE_TOP:  # read as grey levels, 3 and everything else would snap to background
        return np.minimum(grey, sch.num_classes - 1).astype(np.uint8), sch
    return sch.from_disk(grey), sch


#: the key under which this tool writes a mask's schema (PNG text chunk; JSON in a TIFF's ImageDescription)
SCHEMA_KEY = "bloodseg:schema"
#: the key under which ``bloodseg predict`` records the model a mask was predicted with: ``predict --overwrite``
#: replaces only such files (an expert's mask, or a correction exported by this tool, is never replaced)
PREDICTED_BY_KEY = "bloodseg:predicted-by"


def mask_marks(schema: LabelSchema | str, predicted_by: str | None = None) -> dict[str, str]:
    """What this tool writes into a mask file besides its pixels (see :func:`stored_marks`)."""
    marks = {SCHEMA_KEY: get_schema(schema).name}
    if predicted_by:
        marks[PREDICTED_BY_KEY] = str(predicted_by)
    return marks


def stored_marks(path: str | Path) -> dict[str, str]:
    """The marks this tool wrote into a mask file (PNG text chunks, or JSON in a TIFF's description); ``{}`` for
    other files, unreadable ones included."""
    from .images import is_tiff

    path = Path(path)
    try:
        if is_tiff(path):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                text = tif.pages[0].description or ""
            found = json.loads(text) if text.startswith("{") else {}
        else:
            from PIL import Image

            with Image.open(path) as im:
                found = dict(im.info)
        return {k: v for k, v in found.items() if k.startswith("bloodseg:") and isinstance(v, str)}
    except Exception:  # noqa: BLE001 - no readable mark: the file is not one of ours
        return {}


def stored_schema(path: Path) -> str | None:
    """The schema this tool wrote into a mask file, None for other files. Grey 0/255 is nucleus in a WBC mask and
    cell in an RBC one: a partial WBC correction with no cytoplasm in it reopened as RBC, and switched back to WBC
    its nucleus became cytoplasm."""
    name = stored_marks(path).get(SCHEMA_KEY)
    try:
        return get_schema(name).name if name else None
    except (KeyError, ValueError):  # a schema this version does not know: the grey levels decide
        return None


def predicted_by(path: str | Path) -> str | None:
    """The model ``bloodseg predict`` wrote this mask with; None for an expert's mask or an exported correction."""
    return stored_marks(path).get(PREDICTED_BY_KEY)


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
    if schema is None:  # what this tool wrote, where it did: grey levels alone cannot tell 0/255 WBC from RBC
        schema = stored_schema(path)
    indices = palette_indices(path)
    try:
        raw = _read_raw(path, values=True) if indices is None else indices
    except ImageReadError as exc:
        raise MaskError(str(exc)) from None
    if looks_like_photo(raw):
        raise MaskError(f"{path}: a colour image, not a mask (masks are grey: WBC 0/128/255, RBC 0/255)")
    try:
        grey = grey_from_array(raw)
    except MaskError as exc:
        raise MaskError(f"{path}: {exc}") from None
    # only grey + alpha (how this tool saves partial corrections) marks unlabelled pixels: an RGBA mask's alpha is
    # an overlay's transparency, and reading it as "unlabelled" left nothing to score (every score 1.0)
    unlabelled = raw[..., -1] == 0 if raw.ndim == 3 and raw.shape[-1] == 2 else None
    if indices is None and looks_like_grey_photo(grey, unlabelled):
        raise MaskError(f"{path}: {_not_mask_levels(grey)} (masks are grey levels: WBC 0/128/255, RBC 0/255)")
    if shape is not None and tuple(grey.shape) != tuple(shape[:2]):
        size = f"{grey.shape[0]}x{grey.shape[1]}"
        raise MaskError(f"{path}: mask is {size} but {shape_of} is {shape[0]}x{shape[1]}")
    if indices is not None and int(grey.max(initial=0)) >= get_schema(schema or guess_schema(grey)).num_classes:
        raise MaskError(f"{path}: palette indices up to {int(grey.max())}: more classes than the schema has")
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


def write_mask(
    path: str | Path,
    labels: np.ndarray,
    schema: LabelSchema | str,
    *,
    overwrite: bool = False,
    predicted_by: str | None = None,
) -> Path:
    """Write label values as the schema's grey PNG (or TIFF by suffix), atomically; never overwrites silently.

    Partial labels (IGNORE_INDEX pixels, "not annotated") are kept as a transparent alpha channel, so the
    grey levels keep their meaning and the file still opens as a mask anywhere. The file records the schema,
    and ``predicted_by`` the model of a prediction (:func:`mask_marks`).
    """
    sch = get_schema(schema)
    path = Path(path)
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise MaskError(f"labels must be 2-D, got shape {labels.shape}")
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    elif not np.issubdtype(labels.dtype, np.integer):  # 0.85 was written as 0, NaN as background
        if not (np.isfinite(labels).all() and (labels == np.round(labels)).all()):
            raise MaskError(f"labels must be whole class values, not fractions or NaN ({labels.dtype})")
    in_range = not labels.size or (labels.min() >= 0 and labels.max() < sch.num_classes)
    if not in_range and not np.isin(labels, [*range(sch.num_classes), IGNORE_INDEX]).all():
        bad = np.setdiff1d(np.unique(labels), [*range(sch.num_classes), IGNORE_INDEX])[:5].tolist()
        raise MaskError(
            f"labels hold values {bad} outside the {sch.name} schema (0..{sch.num_classes - 1}, "
            f"{IGNORE_INDEX}: unlabelled)"
        )
    labels = labels.astype(np.uint8)
    grey = mask_pixels(labels, sch, alpha=bool((labels == IGNORE_INDEX).any()))
    suffix = path.suffix.lower()

    def _write(tmp: Path) -> None:
        if suffix in (".tif", ".tiff"):
            import tifffile

            alpha = {"photometric": "minisblack", "extrasamples": [2]} if grey.ndim == 3 else {}  # declared alpha
            description = json.dumps(mask_marks(sch, predicted_by))
            tifffile.imwrite(tmp, grey, compression="zlib", description=description, metadata=None, **alpha)
        elif suffix == ".png":
            from PIL import Image, PngImagePlugin

            info = PngImagePlugin.PngInfo()
            for key, value in mask_marks(sch, predicted_by).items():
                info.add_text(key, value)
            Image.fromarray(grey, mode="LA" if grey.ndim == 3 else "L").save(tmp, format="PNG", pnginfo=info)
        else:
            raise MaskError(f"{path.name}: masks are written as .png or .tif, not {suffix or 'no suffix'}")

    if suffix not in (".png", ".tif", ".tiff"):
        raise MaskError(f"{path.name}: masks are written as .png or .tif, not {suffix or 'no suffix'}")
    return atomic_write(path, _write, overwrite=overwrite)
