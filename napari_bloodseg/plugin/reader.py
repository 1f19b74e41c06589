"""npe2 reader: smear images open as RGB image layers, expert masks as Labels layers in their schema.

A file "looks like a mask" when it is grey (one channel, or equal RGB channels) and nearly all pixels sit on the
schema grey levels (0/128/255, 0/255) or on tiny label values (0, 1, 2): near them (JPEG ringing) and most of them
exactly on them (a grey photo's smooth background only comes near 255). A folder in the public datasets' layouts
(``NNN.bmp`` + ``NNN.png``, or ``images/`` + ``masks/``) opens as image + mask pairs, each mask named
``"<image> mask"`` so the evaluate widget pairs it with ``"<image> [model]"`` predictions.

A TIFF of :data:`LAZY_MIN_PIXELS` or more (a whole smear scan) opens lazily: a multiscale image layer over
:func:`napari_bloodseg.io.lazy.open_lazy` (napari reads a whole 2-D plane of a single-scale layer at once), the
TIFF's own pyramid levels when it has them. Without them, an uncompressed TIFF gets strided views of its memory map
(a view reads only the rows it keeps); a compressed or tiled one, whose every coarse pixel needs its tile decoded,
gets a 2x level averaged chunk by chunk from full resolution and coarser ones from one banded pass over the file
(:class:`napari_bloodseg.io.pyramid.Pyramid`, in the background while a viewer is open: they fill in as it goes,
:mod:`.progressive`). Full resolution is read only where napari shows it; the Segment widget streams from the
file (``metadata["bloodseg"]["lazy"]``). A TIFF that cannot be read in parts (e.g. one compressed strip holding the
whole image, or compressed without ``zarr``) is read whole as before.

Bad input (corrupt file, mask of the wrong size, not an image) never raises into napari: the reader shows an
error notification, opens whatever else it could, and returns napari's "nothing to add" sentinel otherwise.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..io.images import IMAGE_SUFFIXES, ImageReadError, LeftOutImagesWarning, _read_raw, to_rgb_uint8
from ..io.lazy import open_lazy
from ..io.masks import MaskError, grey_from_array, palette_indices, read_mask
from ..io.pairs import find_pairs
from ..io.pyramid import Pyramid, reduce2
from ..schemas import SCHEMAS
from .layers import META_KEY, schema_layer_kwargs
from .progressive import redraw_while_building, viewer_open

LayerData = tuple[Any, ...]
#: napari's "the reader handled this path but there is nothing to add" value.
NOTHING: list[LayerData] = [(None,)]
#: Folders with more pairs open only the first ones, as the Zheng sample opens 6: napari adds a layer in 0.1-0.5 s
#: on the GUI thread (24 pairs, 48 layers, froze it ~9 s). Whole folders: Fine-tune's Folder source, or the CLI.
MAX_FOLDER_PAIRS = 8
#: palette indices below this are class indices (a mask); more colours make a palette image
MAX_CLASSES = max(s.num_classes for s in SCHEMAS.values())

_MASK_LEVELS = np.array([0, 128, 255])

#: TIFFs with at least this many pixels open lazily (see the module docstring); smaller ones are read whole
LAZY_MIN_PIXELS = 100_000_000
#: a TIFF whose compressed strips or tiles are bigger than this cannot be read in parts: it is read whole
MAX_CHUNK_BYTES = 64 * 2**20
#: strided levels are added to a TIFF without a pyramid until the coarsest fits this many pixels a side
MIN_LEVEL_SIDE = 1024
#: dask chunk side over memory-mapped levels: what napari reads for one screenful, a few MB
_CHUNK_SIDE = 1024
#: rows read from the top, middle and bottom of a big TIFF to tell a mask from a smear
_SAMPLE_ROWS = 64
#: evenly spaced rows looked at first to tell a colour image from a grey one (see :func:`_coloured`)
_COLOUR_SAMPLE_ROWS = 64
#: pixels per block when every row must be looked at
_COLOUR_BLOCK_PIXELS = 2**20


def _notify_error(message: str) -> None:
    from napari.utils.notifications import show_error

    show_error(message)


def _notify_warning(message: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(message)


def _channel_spread(rgb: np.ndarray) -> int:
    """Largest difference between a pixel's channels (0 for grey)."""
    rgb = rgb.astype(np.int16)
    return int(np.abs(rgb - rgb[..., :1]).max(initial=0))


def _coloured(rgb: np.ndarray) -> bool:
    """Any pixel whose channels differ by more than 2. Strided rows first: a colour photo is told from them in
    milliseconds, where converting a 36 MP image whole took 2 s; only a sample that looks grey (a grey picture or
    mask saved as RGB) goes on to every row, in blocks, so the answer is always the whole image's."""
    h, w = rgb.shape[:2]
    step = h // _COLOUR_SAMPLE_ROWS
    if step > 1 and _channel_spread(rgb[::step]) > 2:
        return True
    block = max(1, _COLOUR_BLOCK_PIXELS // max(w, 1))
    return any(_channel_spread(rgb[y : y + block]) > 2 for y in range(0, h, block))


def looks_like_mask(raw: np.ndarray) -> bool:
    """Grey image whose values are (nearly all) schema grey levels or tiny label values, most exactly so.

    Known limit: a grey photo so over-exposed that over 94 % of it is exactly white may still pass."""
    a = np.asarray(raw)
    if a.ndim == 3 and a.shape[-1] == 2:  # grey + alpha: how a partly corrected mask is saved (alpha 0: unlabelled)
        a = a[..., 0]
    if a.ndim == 3:
        if a.shape[-1] not in (3, 4):
            return False
        if _coloured(a[..., :3]):
            return False  # a smear
        a = a[..., 0]
    if a.ndim != 2 or a.size == 0:
        return False
    if a.dtype == bool:
        return True
    if not np.issubdtype(a.dtype, np.integer):
        return False
    a = grey_from_array(a)  # 16-bit masks are rescaled to 0..255 like read_mask does
    values, counts = np.unique(a, return_counts=True)
    if values.size == 1 and values[0] > 0:
        return False  # one flat colour: a blank picture rather than a mask that is all cell
    if values.max() < 8:  # label space: 0/1/2 ...
        return True
    n = a.size
    distance = np.abs(values[:, None].astype(np.int16) - _MASK_LEVELS[None, :]).min(axis=1)
    # natural images have many grey values, few of them near the levels (a Dataset 1 crop in grey: 0.7 %); a JPEG
    # mask has many too, from ringing at the edges, but most of its pixels on the levels (quality 75: 94-97 %)
    if counts[distance <= 8].sum() < (0.9 if values.size > 64 else 0.99) * n:
        return False
    # ... and exactly on them: JPEG keeps a flat block's level exactly (>= 70 % of a mask's pixels, quality 60-95,
    # 100-px crops), whereas a photo's smooth bright background only comes near 255 (a grey RBC crop: 0.3 % exact,
    # 91 % near)
    exact = np.array([counts[values == level].sum() for level in _MASK_LEVELS]) / n
    if exact.sum() < 0.5:
        return False
    # a photo whose background is clipped to 255 is exact there, its cells a continuum; a mask's crop with one
    # level only has a few ringing pixels off it (<= 4.2 % measured)
    return bool((exact >= 0.01).sum() >= 2 or exact.sum() >= 0.94)


def _image_layer(path: Path, rgb: np.ndarray) -> LayerData:
    return (
        rgb,
        # absolute: layers pair by this file, and a relative path would change meaning with the working folder
        {"name": path.stem, "rgb": True, "metadata": {META_KEY: {"path": str(path.absolute()), "role": "image"}}},
        "image",
    )


def _mask_layer(path: Path, labels: np.ndarray, schema, image: Path | None = None) -> LayerData:
    """An expert mask; opened with its image, it records that image's file, so it pairs with it whatever napari
    renames the layers to (``001 mask [1]`` when a second folder also holds a ``001``)."""
    name = f"{image.stem if image else path.stem} mask"
    extra = {"image_path": str(image.absolute())} if image else {}
    kwargs = schema_layer_kwargs(
        schema, name, role="mask", source=image.stem if image else path.stem, path=str(path), **extra
    )
    return (labels, kwargs, "labels")


class _Plan(NamedTuple):
    levels: int  # pyramid levels in the file
    pixels: int  # of full resolution
    rows: int  # per tile or strip of full resolution


def _tiff_plan(path: Path) -> _Plan | None:
    """How a TIFF is read when it is big and every level can be read in parts, else None.

    Decided from the tags alone: level 0 uncompressed and contiguous (memory-mapped), or every level in
    strips/tiles of at most :data:`MAX_CHUNK_BYTES` read through zarr (which must be installed)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            pixels = math.prod(s for s, ax in zip(series.shape, series.axes, strict=True) if ax in "YX")
            if pixels < LAZY_MIN_PIXELS or "Y" not in series.axes or "X" not in series.axes:
                return None
            for k, level in enumerate(series.levels):
                if k == 0 and level.dataoffset is not None:
                    continue
                page = level.keyframe
                rows = page.tilelength if page.is_tiled else page.rowsperstrip
                cols = page.tilewidth if page.is_tiled else page.imagewidth
                chunk = rows * cols * page.samplesperpixel * max(page.bitspersample // 8, 1)
                if chunk > MAX_CHUNK_BYTES or importlib.util.find_spec("zarr") is None:
                    return None
            page = series.levels[0].keyframe
            rows = page.tilelength if page.is_tiled else (page.rowsperstrip or 1)
            return _Plan(len(series.levels), pixels, min(int(rows), int(page.imagelength)))
    except Exception:  # noqa: BLE001 - a corrupt or odd TIFF is left to the whole-file path and its error message
        return None


class _Unowned:
    """An array-like that only slices its source. ``dask.array.from_array`` copies anything with a ``copy``
    method whole first (a 432 MB memmap cost 820 MB), and slices a plain ndarray eagerly; through this it does
    neither."""

    def __init__(self, source: Any) -> None:
        self.source, self.shape, self.dtype, self.ndim = source, tuple(source.shape), source.dtype, source.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.source[key])


def _as_dask(arr: Any) -> Any:
    """A lazy (H, W, 3) uint8 array-like as a dask array napari can slice; chunks follow the source's own."""
    import dask.array as da

    own = getattr(arr, "chunks", None)
    if isinstance(own, tuple) and len(own) == 3 and all(isinstance(c, int) and c > 0 for c in own):
        chunks = tuple(max(c, _CHUNK_SIDE // c * c) for c in own[:2]) + (3,)
    else:
        chunks = (_CHUNK_SIDE, _CHUNK_SIDE, 3)
    # name=False: no hashing of the source; meta: dask must not read a slice to learn the type
    return da.from_array(_Unowned(arr), chunks=chunks, name=False, meta=np.empty((0, 0, 0), np.uint8))


def _halved(level0: Any) -> Any:
    """A dask level 0 at half size, each chunk averaged from the one chunk of level 0 it covers."""
    chunks = (*(tuple(-(-c // 2) for c in dim) for dim in level0.chunks[:2]), level0.chunks[2])
    return level0.map_blocks(reduce2, chunks=chunks, dtype=np.uint8, meta=np.empty((0, 0, 0), np.uint8))


def _levels(path: Path, top: Any, plan: _Plan, *, progressive: bool) -> tuple[list[Any], Pyramid | None]:
    """Levels, largest first: the file's pyramid, else coarser ones down to MIN_LEVEL_SIDE (see the module
    docstring), and the :class:`Pyramid` making them when there is one to build."""
    levels = [_as_dask(top)] + [_as_dask(open_lazy(path, level=k)) for k in range(1, plan.levels)]
    factors: list[int] = []
    while plan.levels == 1 and max(top.shape[:2]) / 2 ** (len(factors) + 1) > MIN_LEVEL_SIDE / 2:
        factors.append(2 ** (len(factors) + 1))
    if isinstance(top, np.ndarray):  # a memmap view reads only the rows it keeps (and one in memory, nothing)
        return levels + [_as_dask(top[::f, ::f]) for f in factors], None
    if 2 in factors:  # reads what napari shows at 2x only, a few MB a screen: not worth a quarter of the slide on disk
        levels.append(_halved(levels[0]))
    coarse = [f for f in factors if f > 2]
    if not coarse:
        return levels, None
    try:
        # its own handle: the background pass must not share the file with napari's reads of level 0
        pyramid = Pyramid(open_lazy(path, quiet=True), coarse, align=plan.rows, progressive=progressive)
    except OSError:  # no room for the levels in the temporary folder: strided views (slow, but they show)
        return levels + [levels[0][::f, ::f] for f in coarse], None
    return levels + [pyramid.level(f) for f in coarse], pyramid


def _looks_like_mask_sample(image: Any) -> bool:
    """:func:`looks_like_mask` on bands from the top, middle and bottom of a big image (never the whole)."""
    h = image.shape[0]
    starts = sorted({0, max(h // 2 - _SAMPLE_ROWS // 2, 0), max(h - _SAMPLE_ROWS, 0)})
    return looks_like_mask(np.concatenate([np.asarray(image[y : y + _SAMPLE_ROWS]) for y in starts]))


def read_big_tiff(path: Path) -> LayerData | None:
    """A big smear TIFF as a lazy multiscale image layer; None for small, mask-like or unstreamable files."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        return None
    plan = _tiff_plan(path)
    if plan is None:
        return None
    try:
        top = open_lazy(path)
    except ImageReadError:
        return None  # e.g. a stack: the whole-file path says what is wrong with it
    if _looks_like_mask_sample(top):
        return None
    progressive = viewer_open()
    try:
        levels, pyramid = _levels(path, top, plan, progressive=progressive)
    except ImageReadError:
        return None  # a pyramid level that cannot be read in parts: the whole-file path reads level 0
    if pyramid is not None and progressive:
        pyramid.start()
        redraw_while_building(pyramid, path.name)
    info = {"path": str(path.absolute()), "role": "image", "lazy": True}
    kwargs = {"name": path.stem, "rgb": True, "multiscale": True, "contrast_limits": (0, 255)}
    return (levels, {**kwargs, "metadata": {META_KEY: info}}, "image")


def read_file(path: Path) -> LayerData:
    """One image file → image or Labels layer data. Raises ImageReadError/MaskError with a readable message."""
    big = read_big_tiff(path)
    if big is not None:
        return big
    raw = _read_raw(path)
    indices = palette_indices(path)  # an annotation tool's palette mask: class indices, shown in colours
    # indices beyond every schema's classes: a palette *image* (a GIF-like 12-colour picture), not a mask
    if looks_like_mask(raw) or (indices is not None and int(indices.max(initial=0)) < MAX_CLASSES):
        labels, schema = read_mask(path)
        return _mask_layer(path, labels, schema)
    return _image_layer(path, to_rgb_uint8(raw, str(path)))


def read_pairs(pairs: Sequence[tuple[Path, Path | None]], errors: list[str]) -> list[LayerData]:
    """(image, mask or None) pairs → image layer + ``"<image> mask"`` Labels layer each; problems go to ``errors``.

    A mask of another size than its image is refused (it would score against the wrong pixels); its image still opens.
    """
    out: list[LayerData] = []
    for img_path, mask_path in pairs:
        try:
            layer = read_big_tiff(img_path) or _image_layer(img_path, to_rgb_uint8(_read_raw(img_path), str(img_path)))
        except ImageReadError as exc:
            errors.append(str(exc))
            continue
        out.append(layer)
        if mask_path is None:
            continue
        level0 = layer[0][0] if layer[1].get("multiscale") else layer[0]
        try:
            labels, schema = read_mask(mask_path, shape=level0.shape[:2])
        except MaskError as exc:
            errors.append(str(exc))
            continue
        out.append(_mask_layer(mask_path, labels, schema, image=img_path))
    return out


def read_folder(folder: Path, errors: list[str]) -> list[LayerData]:
    """Image + mask pairs of a dataset folder, or every image of a plain folder (each classified on its own)."""
    pairs = find_pairs(folder)
    paired = any(mask is not None for _, mask in pairs)
    if len(pairs) > MAX_FOLDER_PAIRS:
        # the Evaluate widget scores open layers only; Fine-tune's Folder source reads a folder's pairs itself
        what, whole = (
            (
                "image/mask pairs",
                "Fine-tune's Folder source, or `bloodseg predict`/`bloodseg evaluate` on the command line",
            )
            if paired
            else ("images", "`bloodseg predict` on the command line")
        )
        _notify_warning(
            f"{folder.name}: opened the first {MAX_FOLDER_PAIRS} of {len(pairs)} {what}. For the whole folder: {whole}"
        )
        pairs = pairs[:MAX_FOLDER_PAIRS]
    if not pairs:  # e.g. a folder named like an image: opening nothing without a word looked like a hang
        errors.append(f"{folder.name}: no images in this folder ({', '.join(IMAGE_SUFFIXES)})")
        return []
    if paired:
        return read_pairs(pairs, errors)
    out = []
    for img, _ in pairs:
        try:
            out.append(read_file(img))
        except (ImageReadError, MaskError) as exc:
            errors.append(str(exc))
    return out


@contextmanager
def _left_out_notified() -> Iterator[None]:
    """Each :class:`~napari_bloodseg.io.images.LeftOutImagesWarning` of one open becomes a warning notification,
    once per open: as a Python warning napari showed it only the first time a file was opened in a session (the
    warning registry and napari's ``_seen_warnings`` drop repeats), so opening the file again said nothing about the
    images left out. Other warnings are passed on as they came."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LeftOutImagesWarning)
            yield
    finally:
        said: set[str] = set()
        for w in caught:
            if not issubclass(w.category, LeftOutImagesWarning):
                warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)
            elif str(w.message) not in said:  # a big TIFF read whole after all warns a second time
                said.add(str(w.message))
                _notify_warning(str(w.message))


def read_paths(paths: str | Sequence[str], **_: Any) -> list[LayerData]:
    """napari reader function: every readable path becomes layers; each failure is one error notification, each
    TIFF's left-out images one warning notification (:func:`_left_out_notified`)."""
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    layers: list[LayerData] = []
    errors: list[str] = []
    with _left_out_notified():
        for item in map(Path, items):
            try:
                if item.is_dir():
                    layers.extend(read_folder(item, errors))
                elif item.suffix.lower() not in IMAGE_SUFFIXES:
                    errors.append(f"{item.name}: not an image napari-bloodseg can read ({', '.join(IMAGE_SUFFIXES)})")
                else:
                    layers.append(read_file(item))
            except (ImageReadError, MaskError, OSError, ValueError) as exc:
                errors.append(str(exc))
    for msg in errors:
        _notify_error(f"napari-bloodseg: {msg}")
    return layers or NOTHING


def _holds_images(folder: Path) -> bool:
    """Images directly inside, or one level down (``images/`` + ``masks/``)."""
    for p in folder.iterdir():
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            return True
        if p.is_dir() and any(q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES for q in p.iterdir()):
            return True
    return False


#: files that make a folder a zarr store, another reader's
_ZARR_MARKERS = frozenset({".zarray", ".zgroup", ".zattrs", "zarr.json"})
#: a folder with more entries than this and no image among the first ones is left to other readers unexamined
_PEEK_ENTRIES = 200


def _nothing_for_others(folder: Path) -> bool:
    """A folder without images that no other installed reader could take either: empty, or plain files whose names
    no other reader's patterns match (notes, a ``.DS_Store``). Claimed, so the reader says "no images in this
    folder" rather than napari's "refused the file"; a sub-folder, a zarr store or a ``.csv`` leaves it to others,
    as returning None means "not mine" and napari tries the next reader."""
    if folder.suffix.lower() == ".zarr":
        return False
    entries = []
    for entry in folder.iterdir():
        if entry.is_dir() or entry.name in _ZARR_MARKERS or len(entries) == _PEEK_ENTRIES:
            return False
        entries.append(str(entry))
    if not entries:
        return True
    try:
        from npe2 import PluginManager
    except ImportError:  # pragma: no cover - napari brings npe2
        return False
    readers = PluginManager.instance()
    return not any(
        r.plugin_name != "napari-bloodseg" for entry in entries for r in readers.iter_compatible_readers([entry])
    )


def get_reader(path: str | list[str]) -> Callable[..., list[LayerData]] | None:
    """npe2 reader command: claim image files and folders holding images (a list if any item is one), and folders
    no reader could take (:func:`_nothing_for_others`), to say why nothing opens, as for a folder named like an
    image.

    Other items of a claimed list are reported by the reader as notifications rather than dropped silently.
    """
    items = [path] if isinstance(path, str | Path) else list(path)
    for item in map(Path, items):
        try:
            if item.is_dir() and (_holds_images(item) or _nothing_for_others(item)):
                return read_paths
        except OSError:
            continue
        if item.suffix.lower() in IMAGE_SUFFIXES:
            return read_paths
    return None
