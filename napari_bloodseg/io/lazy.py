"""Images too big for memory: open them lazily, segment them band by band, write labels straight to disk.

:func:`open_lazy` returns an (H, W, 3) uint8 array-like that reads only the rows asked for:

* uncompressed TIFF (contiguous strips): a read-only ``numpy.memmap`` (``tifffile.memmap``);
* compressed or tiled TIFF, pyramids included (level 0 by default): a zarr array over the TIFF
  (``tifffile.imread(..., aszarr=True)``; needs ``zarr``, part of the ``bench`` extra; without it the file is
  read whole, with a warning);
* ``.npy``: ``numpy.load(..., mmap_mode="r")``; a ``.zarr`` folder: ``zarr.open``;
* any other format (PNG, JPEG, BMP) is decoded whole: those codecs cannot decode rows lazily.

Grey, RGBA, channel-first, 16-bit and float sources are wrapped in :class:`RGBView`, which converts each slice
as :func:`napari_bloodseg.io.images.to_rgb_uint8` converts a whole image (the intensity range is found in one
banded pass first, so every band is scaled alike).

:func:`open_label_output` creates an (H, W) uint8 array on disk (uncompressed TIFF memmap, ``.npy`` memmap or
zarr) for ``Predictor.predict(image, out=...)``; :func:`predict_file` does both for one file. Labels are written
as label values (0..n-1, what ``read_mask`` reads back as is), or with ``schema=`` as that schema's grey levels
(what ``bloodseg predict --stream`` writes). :func:`write_mask_banded` writes an existing on-disk label array as
a grey-level TIFF or PNG mask the same way (the napari writer and Export widget use it for layers too big to copy).
"""

from __future__ import annotations

import errno
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .images import (
    ImageReadError,
    dtype_full_scale,
    file_problem,
    is_zarr,
    on_white,
    peak_value,
    read_image,
    rgb_channels,
    scale_to_uint8,
    tiff_needs_converting,
    value_top,
)
from .images import channel_first as is_channel_first

#: Formats that open lazily (others are decoded whole).
LAZY_SUFFIXES = (".tif", ".tiff", ".npy", ".zarr")
#: Rows per band when scanning a source for its intensity range.
_SCAN_ROWS = 256
#: every column (or row) of a source
_ALL = slice(None)


def _open_zarr_level(obj: Any, level: int) -> Any:
    """A zarr group (multiscale/pyramid) → its ``level`` array; an array is returned as is."""
    if hasattr(obj, "shape"):
        return obj
    keys = sorted(obj.array_keys()) if hasattr(obj, "array_keys") else sorted(obj.keys())
    key = str(level) if str(level) in keys else (keys[level] if level < len(keys) else None)
    if key is None:
        raise ImageReadError(f"no level {level} in zarr group (arrays: {', '.join(keys) or 'none'})")
    return obj[key]


def _tiff_layout(path: Path, *, warn: bool = True) -> dict[str, Any]:
    """What the tags say about reading a TIFF in parts: refused as a stack as when read whole, and with ``warn``
    the images it leaves out named as when read whole; ``whole``: its stored pixels are not what viewers show
    (read whole, converted); ``channel_first``: from the axes, not the shape; ``alpha``: whether its extra sample
    is alpha."""
    import tifffile

    from .images import grey_alpha_pages, refuse_stack, tiff_alpha, warn_left_out

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        refuse_stack(path, series)
        page = series.keyframe
        if warn and not tiff_needs_converting(page):  # one read whole warns itself
            warn_left_out(path, tif)
        alpha = tiff_alpha(page)
        axes = "".join(ax for ax, n in zip(series.axes, series.shape, strict=True) if n > 1 or ax in "YX")
        if alpha is False and page.samplesperpixel == 2:
            raise ImageReadError(f"{path}: 2 channels that are neither colour nor alpha: save the channel to segment")
        return {
            "whole": tiff_needs_converting(page),
            "channel_first": axes[:1] in ("S", "C", "Q") and not grey_alpha_pages(series.axes, tuple(series.shape)),
            "alpha": alpha is not False,  # none declared: a 4th channel is alpha, as when read whole
        }


def _open_tiff(path: Path, level: int, *, whole: bool = False) -> Any:
    """Level ``level`` of a TIFF, read in parts where it can be; ``whole``: it needs converting, so read whole."""
    import tifffile

    if whole:
        if level:
            raise ImageReadError(f"{path}: a TIFF read whole (stored colours converted) has no pyramid levels to read")
        return read_image(path, as_float=False)
    if level == 0:
        try:
            return tifffile.memmap(path, mode="r")
        except tifffile.TiffFileError:
            raise  # not a TIFF at all: no fallback, and no warning about zarr
        except ValueError:
            pass  # compressed, tiled or otherwise not contiguous on disk: go through zarr
    try:
        import zarr
    except ImportError:
        warnings.warn(
            f"{path}: compressed or tiled TIFF and zarr is not installed: reading it whole into memory "
            "(pip install zarr to stream it)",
            stacklevel=3,
        )
        return tifffile.imread(path, level=level)
    return _open_zarr_level(zarr.open(tifffile.imread(path, aszarr=True), mode="r"), level)


def open_lazy(path: str | Path, *, level: int = 0, quiet: bool = False) -> Any:
    """Open an image as an (H, W, 3) uint8 array-like that reads rows on demand (see the module docstring).

    ``level`` picks a pyramid level of multi-resolution TIFF/zarr files (0: full resolution). A TIFF holding
    images beside the first is warned about (:class:`~napari_bloodseg.io.images.LeftOutImagesWarning`) when its
    full resolution is opened, unless ``quiet`` (a second handle on a file opened already).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    zarr_store = is_zarr(path) or (suffix == ".zarr" and path.is_dir())
    problem = None if zarr_store else file_problem(path)  # a zarr store is a folder
    if problem:
        raise ImageReadError(f"{path}: {problem}")
    layout: dict[str, Any] = {}
    try:
        if suffix in (".tif", ".tiff"):
            layout = _tiff_layout(path, warn=level == 0 and not quiet)
            raw = _open_tiff(path, level, whole=layout["whole"])
        elif suffix == ".npy":
            raw = np.load(path, mmap_mode="r")
        elif zarr_store:
            import zarr

            raw = _open_zarr_level(zarr.open(str(path), mode="r"), level)
        else:
            return read_image(path, as_float=False)
    except ImageReadError:
        raise
    except Exception as exc:  # tifffile/zarr raise many types for corrupt or odd files
        raise ImageReadError(f"{path}: cannot open lazily ({type(exc).__name__}: {exc})") from None
    return as_rgb_uint8(raw, str(path), channel_first=layout.get("channel_first"), alpha=layout.get("alpha", True))


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file as it is shown (a TIFF Orientation of 5-8 swaps them), without reading its
    pixels where the format allows it: a TIFF's tags (also compressed ones, which :func:`open_lazy` reads whole
    when zarr is missing), a ``.npy`` header, zarr metadata. Other formats are decoded."""
    from .images import _orientation

    path = Path(path)
    if path.suffix.lower() in (".tif", ".tiff") and path.is_file():
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                axes, shape, turned = tif.series[0].axes, tif.series[0].shape, _orientation(tif.pages[0]) >= 5
        except Exception as exc:  # tifffile raises many types for corrupt files
            raise ImageReadError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from None
        if "Y" in axes and "X" in axes:
            height, width = int(shape[axes.index("Y")]), int(shape[axes.index("X")])
            return (width, height) if turned else (height, width)
    height, width = open_lazy(path).shape[:2]
    return int(height), int(width)


def as_rgb_uint8(raw: Any, name: str = "image", *, channel_first: bool | None = None, alpha: bool = True) -> Any:
    """``raw`` itself when it already is an (H, W, 3) uint8 numpy array (memmap included), else an
    :class:`RGBView` over it: zarr/dask reads decode on demand, and a corrupt chunk must name the file."""
    if isinstance(raw, np.ndarray) and raw.ndim == 3 and raw.shape[-1] == 3 and raw.dtype == np.uint8:
        return raw
    return RGBView(raw, name, channel_first=channel_first, alpha=alpha)


class RGBView:
    """Read-only (H, W, 3) uint8 view of a lazy grey/RGB(A), channel-first, 16-bit or float array.

    Slicing reads only the rows asked for and converts them; ``numpy.asarray(view)`` converts everything.
    """

    dtype = np.dtype(np.uint8)
    ndim = 3

    def __init__(self, raw: Any, name: str = "image", *, channel_first: bool | None = None, alpha: bool = True) -> None:
        """``channel_first``: the layout when the file says it (TIFF axes), else guessed from the shape; ``alpha``:
        whether a 2nd or 4th channel is alpha (composited onto white, as reading whole does) or other data."""
        shape = tuple(raw.shape)
        self._lead = 0  # leading length-1 axes (a (1, H, W, 3) array), indexed away
        while len(shape) > 3 and shape[0] == 1:
            shape, self._lead = shape[1:], self._lead + 1
        self._channel_first = is_channel_first(shape) if channel_first is None else channel_first and len(shape) == 3
        if self._channel_first:
            shape = (*shape[1:], shape[0])
        if len(shape) == 2:
            shape = (*shape, 1)
        if len(shape) != 3 or shape[-1] not in (1, 2, 3, 4):
            raise ImageReadError(f"{name}: expected a 2-D grey or RGB(A) image, got shape {tuple(raw.shape)}")
        self._raw, self._name, self._channels, self._alpha = raw, name, shape[-1], alpha
        self.shape = (shape[0], shape[1], 3)
        self._src_dtype = np.dtype(raw.dtype)
        self._top: float | None = None  # intensity scale, found on first read for non-uint8 sources

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"RGBView({self._name!r}, shape={self.shape}, source dtype={self._src_dtype})"

    def _read_rows(self, rows: slice, cols: slice = _ALL) -> np.ndarray:
        """Source rows (and columns) as an (n, w, c) numpy array; a part the file cannot give (truncated, corrupt)
        is an ImageReadError naming the file, as when an image is read whole."""
        try:
            lead = (0,) * self._lead
            if self._channel_first:
                return np.moveaxis(np.asarray(self._raw[(*lead, slice(None), rows, cols)]), 0, -1)
            block = np.asarray(self._raw[(*lead, rows, cols)])
        except Exception as exc:  # zarr/tifffile/codecs raise many types (zlib.error, ValueError, OSError)
            where = f"rows {rows.start or 0}-{rows.stop if rows.stop is not None else self.shape[0]}"
            raise ImageReadError(f"{self._name}: cannot read {where} ({type(exc).__name__}: {exc})") from None
        return block[..., None] if block.ndim == 2 else block

    def _scan_top(self) -> float:
        """The divisor that maps the source range to [0, 255], as ``to_rgb_uint8`` chooses it for the whole image."""
        dt = self._src_dtype
        if dt == np.uint8 or dt.kind == "b":
            return 255.0
        peak = 0.0
        for y in range(0, self.shape[0], _SCAN_ROWS):
            block = self._read_rows(slice(y, y + _SCAN_ROWS))
            if self._channels in (2, 4):  # alpha does not count
                block = block[..., : self._channels - 1]
            peak = max(peak, peak_value(block))
        return value_top(dt, peak)

    def _convert(self, a: np.ndarray) -> np.ndarray:
        if a.dtype != bool and a.dtype != np.uint8 and self._top is None:
            self._top = self._scan_top()  # one scale for the whole image, so bands of a streamed image match
        if self._alpha and self._channels in (2, 4) and a.dtype != bool:
            opaque = dtype_full_scale(a.dtype)
            if 0 < a[..., -1].max() and a[..., -1].min() < opaque:  # as to_rgb_uint8 decides, band by band
                a = on_white(a, opaque, white=self._top)
        a = rgb_channels(a)
        if a.dtype == np.uint8:
            return np.ascontiguousarray(a)
        if a.dtype == bool:
            return a.astype(np.uint8) * 255
        return scale_to_uint8(a, self._top)

    def _columns(self, rest: tuple) -> tuple[slice, tuple]:
        """The source columns a key's column part needs, and what is left of the key to apply to them.

        A tiled or striped source decodes only the tiles a read touches: a 1024 x 1024 chunk of a 10240-px-wide
        slide read whole rows, 10 times the tiles it needed. A source with alpha keeps whole rows: whether a
        band is composited onto white is decided from all its pixels (as :func:`to_rgb_uint8` decides for the
        image), and a region that is wholly transparent must not come out in its stored colours."""
        col = rest[0] if rest else None
        if self._channels in (2, 4) or col is None:
            return _ALL, rest
        width = self.shape[1]
        if isinstance(col, slice) and (col.step or 1) > 0:
            start, stop, step = col.indices(width)
            return slice(start, max(start, stop)), (slice(None, None, step), *rest[1:])
        if isinstance(col, (int, np.integer)) and -width <= col < width:
            x = int(col) % width
            return slice(x, x + 1), (0, *rest[1:])
        return _ALL, rest

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        rows, rest = (key[0] if key else slice(None)), key[1:]
        cols, rest = self._columns(rest)
        if isinstance(rows, (int, np.integer)):
            i = int(rows) + (self.shape[0] if rows < 0 else 0)
            if not 0 <= i < self.shape[0]:
                raise IndexError(f"row {rows} out of range for {self.shape[0]} rows")
            return self._convert(self._read_rows(slice(i, i + 1), cols))[(0, *rest)]
        if not isinstance(rows, slice):
            raise TypeError("RGBView takes a row slice or index first (e.g. view[y0:y1], view[y, x0:x1])")
        return self._convert(self._read_rows(rows, cols))[(slice(None), *rest)]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out.astype(dtype) if dtype is not None else out


def open_label_output(
    path: str | Path,
    shape: tuple[int, int],
    *,
    overwrite: bool = False,
    schema: Any = None,
    predicted_by: str | None = None,
) -> Any:
    """Create an (H, W) uint8 label array on disk: ``.tif``/``.tiff`` (uncompressed, memory-mapped), ``.npy``
    (memory-mapped) or ``.zarr`` (chunked). Memory maps are flushed by :func:`close_output` (or when freed).

    With ``schema`` a TIFF records it (and ``predicted_by``) as :func:`~napari_bloodseg.io.masks.write_mask`
    does, so the mask reopens in its schema (grey 0/255 alone is nucleus in WBC and cell in RBC)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)")
    h, w = (int(s) for s in shape)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        import tifffile

        if path.exists():
            path.unlink()
        marked = {} if schema is None else {"description": _marks(schema, predicted_by), "metadata": None}
        out = tifffile.memmap(path, shape=(h, w), dtype=np.uint8, photometric="minisblack", **marked)
        return _reserve(path, out)
    if suffix == ".npy":
        return _reserve(path, np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(h, w)))
    if suffix == ".zarr":
        import zarr

        return zarr.open_array(str(path), mode="w", shape=(h, w), dtype=np.uint8, chunks=(512, min(w, 4096)))
    raise ValueError(f"{path}: label output must be .tif, .tiff, .npy or .zarr")


def _marks(schema: Any, predicted_by: str | None) -> str:
    import json

    from .masks import mask_marks

    return json.dumps(mask_marks(schema, predicted_by))


def _reserve(path: Path, out: Any) -> Any:
    """Claim the disk blocks of a memory-mapped file now. A memory map of a sparse file finds a full disk only
    when a page is written, and the process then dies of SIGBUS with no message (napari with it, edits and all);
    reserved, a full disk is an OSError here, before any work."""
    # Linux and most Unixes (macOS and Windows skip this). On a file system without fallocate (NFSv3, some FUSE)
    # glibc emulates it by writing a byte per block: seconds per GB before the run, still better than SIGBUS.
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is None:
        return out
    size = path.stat().st_size
    try:
        with open(path, "r+b") as f:
            fallocate(f.fileno(), 0, size)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):  # a file system that cannot reserve
            return out
        del out
        path.unlink(missing_ok=True)
        raise OSError(exc.errno, f"{exc.strerror} (the labels need {size / 1e6:.1f} MB)", str(path)) from None
    return out


def close_output(out: Any) -> None:
    """Flush a memory-mapped output to disk (zarr arrays write through and need nothing)."""
    flush = getattr(out, "flush", None)
    if callable(flush):
        flush()


class _GreyLevels:
    """A label output that stores the schema's grey levels (the experts' on-disk convention) instead of label
    values, band by band as the Predictor writes them; reads give label values back (edge-cell clean-up reads
    and rewrites strips)."""

    def __init__(self, out: Any, schema: Any) -> None:
        from ..schemas import get_schema

        self.out, self.shape, self.dtype = out, out.shape, out.dtype
        self.schema = get_schema(schema)
        self.lut = self.schema.to_disk(np.arange(256, dtype=np.uint8))

    def __setitem__(self, key: Any, labels: np.ndarray) -> None:
        self.out[key] = self.lut[np.asarray(labels, dtype=np.uint8)]

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.schema.from_disk(np.asarray(self.out[key]))


def write_mask_banded(
    path: str | Path,
    labels: Any,
    schema: Any,
    *,
    overwrite: bool = False,
    rows: int = 1024,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    predicted_by: str | None = None,
) -> Path:
    """Write an (H, W) label array-like (memmap, zarr, dask) as ``schema``'s grey-level mask, ``rows`` rows at a
    time, atomically: the labels are never copied whole (:func:`~napari_bloodseg.io.masks.write_mask` needs them
    in memory). A ``.tif`` is uncompressed, like ``bloodseg predict --stream`` masks; a ``.png`` is compressed
    (:mod:`.banded_png`) and keeps unlabelled (255) pixels as transparent, as ``write_mask`` does. Both record the
    schema (and ``predicted_by``), as ``write_mask`` does. Other values that are not classes of the schema are
    refused, and so is 255 in a TIFF; nothing is left behind then.

    ``progress(done, total)`` is called after each band (a PNG reads the labels twice: ``total`` counts both
    passes); when ``cancel()`` says stop, :class:`~napari_bloodseg.cancellation.Cancelled` is raised and no file
    is left (an earlier file at ``path`` stays as it was)."""
    from ..cancellation import stop_if_cancelled
    from ..schemas import IGNORE_INDEX, get_schema
    from .atomic import atomic_path

    path, sch = Path(path), get_schema(schema)
    suffix = path.suffix.lower()
    if suffix not in (".tif", ".tiff", ".png"):
        raise ValueError(f"{path.name}: masks are written band by band only as .png or .tif/.tiff")
    if len(labels.shape) != 2:
        raise ValueError(f"labels must be 2-D, got shape {tuple(labels.shape)}")
    allowed = [*range(sch.num_classes), IGNORE_INDEX] if suffix == ".png" else list(range(sch.num_classes))
    starts = range(0, labels.shape[0], rows)
    total = len(starts) * (2 if suffix == ".png" else 1)
    done = 0

    def checked(band: np.ndarray) -> np.ndarray:
        if band.size and (band.min() < 0 or band.max() >= sch.num_classes) and not np.isin(band, allowed).all():
            bad = np.unique(band[~np.isin(band, allowed)])[:5].tolist()
            raise ValueError(f"label values {bad} are not classes of the {sch.name} schema")
        return band

    def bands():
        nonlocal done
        for y in starts:
            stop_if_cancelled(cancel, f"writing {path.name}")
            band = checked(np.asarray(labels[y : y + rows]))
            yield band
            done += 1
            if progress is not None:
                progress(done, total)

    with atomic_path(path, overwrite=overwrite) as tmp:
        if suffix == ".png":
            from .banded_png import write_png_bands
            from .masks import mask_marks, mask_pixels

            # one reading pass first: refuse bad values before writing, and know whether an alpha channel is needed
            alpha = any([bool((band == IGNORE_INDEX).any()) for band in bands()])
            pixels = (mask_pixels(band, sch, alpha=alpha) for band in bands())
            with open(tmp, "wb") as f:
                write_png_bands(f, labels.shape, pixels, alpha=alpha, text=mask_marks(sch, predicted_by))
        else:
            out = open_label_output(tmp, labels.shape, overwrite=True, schema=sch, predicted_by=predicted_by)
            try:
                levels = _GreyLevels(out, sch)
                for y, band in zip(starts, bands(), strict=True):
                    levels[y : y + rows] = band
            finally:
                close_output(out)
        stop_if_cancelled(cancel, f"writing {path.name}")  # a Cancel during the last band: nothing is placed
    return path


def predict_file(
    predictor: Any,
    src: str | Path,
    dst: str | Path,
    *,
    scale: float = 1.0,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    schema: Any = None,
    predicted_by: str | None = None,
):
    """Segment the image file ``src`` into the label file ``dst`` without holding either in memory, at any scale
    (see ``Predictor.predict``). Returns the :class:`~napari_bloodseg.inference.Prediction`, whose ``labels`` is
    the on-disk array.

    With ``schema`` the file holds that schema's grey levels (WBC 0/128/255, RBC 0/255, what ``read_mask`` and
    ``bloodseg predict`` use), else label values. A ``.tif``/``.npy`` is written beside ``dst`` and renamed onto it
    when complete, so a cancel or crash leaves no partial mask; a ``.zarr`` folder is written in place."""
    from dataclasses import replace

    from .atomic import atomic_path

    image = open_lazy(src)
    dst = Path(dst)

    def run(path: Path, overwrite: bool):
        out = open_label_output(path, image.shape[:2], overwrite=overwrite, schema=schema, predicted_by=predicted_by)
        try:
            target = _GreyLevels(out, schema) if schema is not None else out
            pred = predictor.predict(image, scale=scale, out=target, progress=progress, cancel=cancel)
            return replace(pred, labels=out)
        finally:
            close_output(out)

    if dst.suffix.lower() == ".zarr":
        return run(dst, overwrite)
    with atomic_path(dst, overwrite=overwrite) as tmp:
        return run(tmp, True)
