"""Microscope image reading: any of bmp/png/jpg/tif, 8/10/12/14/16-bit, grey/RGB/RGBA → RGB."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_SUFFIXES = (".bmp", ".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".tif", ".tiff")
#: arrays (a ``.npy`` file, a ``.zarr`` folder) that ``read_image`` and the CLI take too; napari opens them itself
ARRAY_SUFFIXES = (".npy", ".zarr")


class ImageReadError(ValueError):
    """An image file is missing, unreadable or of an unsupported layout."""


class LeftOutImagesWarning(UserWarning):
    """A file holds further images beside the one read (a TIFF's pages of another size): they are not segmented."""


#: Pillow refuses images over ~179 MP as possible "decompression bombs"; whole smear scans are that big, and
#: reading is what the user asked for. Above this (3 GB as RGB), a tiled TIFF is the way (read in parts)
MAX_WHOLE_PIXELS = 1_000_000_000


def _read_raw(path: Path, *, values: bool = False) -> np.ndarray:
    """The stored pixels as viewers show them (see :func:`_read_tiff` for TIFFs); ``values``: a mask's raw values."""
    from PIL import Image

    problem = file_problem(path)
    if problem:
        raise ImageReadError(f"{path}: {problem}")
    try:
        if is_tiff(path):  # by content: a 16-bit TIFF saved under another suffix went through Pillow at 8 bits
            return _read_tiff(path, values=values)
        if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_WHOLE_PIXELS:
            Image.MAX_IMAGE_PIXELS = MAX_WHOLE_PIXELS
        deep = _png16_colour(path)
        if deep is not None:
            return deep
        with naming_warnings(path), Image.open(path) as im:  # a JPEG's EXIF is parsed (and warned about) on open
            im = _upright(im)
            if im.mode in ("P", "CMYK", "YCbCr", "PA", "1"):
                im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
            return np.asarray(im)
    except ImageReadError:
        raise
    except Image.DecompressionBombError:
        raise ImageReadError(
            f"{path}: over {MAX_WHOLE_PIXELS // 1_000_000} megapixels, too big to read whole; save it as a tiled "
            "TIFF, which is read in parts"
        ) from None
    except Exception as exc:  # PIL/tifffile raise many types for corrupt files
        raise ImageReadError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from None


def file_problem(path: Path) -> str | None:
    """Why ``path`` is no file to read, in the user's words, or None: a folder named like an image (``002.png``)
    was reported as "no such file" although it exists, and an empty file as Pillow's "cannot identify image
    file"."""
    import stat

    try:
        st = path.stat()
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:  # permission denied on a folder on the way, a name too long, a loop of links
        return (exc.strerror or str(exc)).lower()
    if stat.S_ISDIR(st.st_mode):
        return "a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a device, pipe or socket)"
    if st.st_size == 0:
        return "empty file (0 bytes)"
    return None


def _upright(im: Any) -> Any:
    """The image turned as its EXIF orientation says, as every viewer shows a camera JPEG and as its mask was drawn;
    as stored when that tag cannot be read (a broken EXIF block must not make the pixels unreadable)."""
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - Pillow raises several types for malformed EXIF
        return im


@contextmanager
def naming_warnings(path: Path) -> Iterator[None]:
    """Pillow's warnings about a file's metadata ("Corrupt EXIF data", "Tag data larger than file") name no file:
    in a batch of hundreds the user could not tell which one. Re-issued with the path in front, in the main
    thread only: ``catch_warnings`` swaps process-wide state, and two threads inside it at once could leave a
    recorder installed for good (every later warning lost); worker threads' warnings stay as Pillow says them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        warnings.warn(f"{path}: {w.message}", w.category, stacklevel=3)


TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders
#: TIFF photometric interpretations that need converting to be seen as viewers show them
MINISWHITE, RGB, PALETTE, SEPARATED = 0, 2, 3, 5
#: TIFF ExtraSamples values that mean alpha (1 associated, 2 unassociated; 0 is "unspecified data")
ALPHA_SAMPLES = (1, 2)


def is_tiff(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) in TIFF_MAGIC
    except OSError:
        return False


def tiff_stack_problem(axes: str, shape: tuple[int, ...]) -> str | None:
    """Why a TIFF series is a stack rather than one image (z or time planes, or pages of one size), else None:
    3 or 4 planes read as channels looked like RGB(A). Unnamed planes (tifffile's Q) stay channels, as
    (3, H, W) colour arrays are written without metadata; more than 4 of them are planes, and so are any beside
    samples of their own (S: RGB pages, tifffile's default for an (n, H, W, 3) array), which are pages."""
    if grey_alpha_pages(axes, shape):
        return None
    samples = "S" in axes
    stacked = [
        f"{ax}={n}"
        for ax, n in zip(axes, shape, strict=True)
        if (ax in "ZTI" and n > 1) or (ax == "Q" and (n > 4 or (samples and n > 1)))
    ]
    if not stacked:
        return None
    what = "pages" if any(s[0] == "I" or (s[0] == "Q" and samples) for s in stacked) else "planes"
    return (
        f"a stack of {what} ({', '.join(stacked)}; axes {axes}), not one image: save the one to segment as its own file"
    )


def grey_alpha_pages(axes: str, shape: tuple[int, ...]) -> bool:
    """An (H, W, 2) array as tifffile writes it by default, H pages of W x 2: how this tool saved partial
    corrections (grey + alpha) before it declared the alpha. Read as grey + alpha, so those files still open."""
    return axes == "QYX" and len(shape) == 3 and shape[-1] == 2


def refuse_stack(path: Path, series: Any) -> None:
    """Raise ImageReadError naming ``path`` when the TIFF series is a stack (:func:`tiff_stack_problem`)."""
    problem = tiff_stack_problem(series.axes, tuple(series.shape))
    if problem:
        raise ImageReadError(f"{path}: {problem}")


#: TIFF NewSubfileType bits of pages that belong to the image before them: a reduced-resolution copy (a pyramid
#: level, a thumbnail) and a transparency mask
REDUCED_RESOLUTION, TRANSPARENCY_MASK = 1, 4
#: further images named in a warning; more are counted
_NAMED_LEFT_OUT = 3


def tiff_left_out(tif: Any) -> list[str]:
    """The images of a TIFF that reading its first series leaves out, as "page 2 (800 x 600)": further series
    (tifffile makes a page of another size a series of its own; pages of one size are one series, refused as a
    stack). Pages marked as belonging to the image (:data:`REDUCED_RESOLUTION`, :data:`TRANSPARENCY_MASK`) are not
    named, nor are pyramid levels in SubIFDs (tifffile puts those in the first series' levels)."""
    out = []
    for series in tif.series[1:]:
        if int(series.keyframe.subfiletype or 0) & (REDUCED_RESOLUTION | TRANSPARENCY_MASK):
            continue
        first = next((page.index for page in series.pages if page is not None), None)
        count = len(series.pages)
        where = "" if first is None else f"page {first + 1}" if count == 1 else f"pages {first + 1}-{first + count}"
        dims = dict(zip(series.axes, series.shape, strict=True))
        size = f"{dims['X']} x {dims['Y']}" if "X" in dims and "Y" in dims else " x ".join(map(str, series.shape))
        label = " ".join(part for part in (where, repr(series.name) if series.name else "") if part)
        out.append(f"{label} ({size} pixels)" if label else f"{size} pixels")
    return out


def warn_left_out(path: Path, tif: Any) -> None:
    """Warn (:class:`LeftOutImagesWarning`) when a TIFF holds images beside the first one, which alone is read: a
    field saved with a crop of it opened as the field, without a word about the crop. napari's reader shows the
    warning as a notification, ``bloodseg predict`` prints it."""
    left = tiff_left_out(tif)
    if not left:
        return
    first = tif.series[0]
    dims = dict(zip(first.axes, first.shape, strict=True))
    more = f" and {len(left) - _NAMED_LEFT_OUT} more" if len(left) > _NAMED_LEFT_OUT else ""
    images = "image" if len(left) == 1 else "images"
    warnings.warn(
        f"{path}: read its first image ({dims.get('X', '?')} x {dims.get('Y', '?')} pixels) only; the file holds "
        f"{len(left)} more {images}, left out: {', '.join(left[:_NAMED_LEFT_OUT])}{more}. Save each image to "
        "segment as its own file",
        LeftOutImagesWarning,
        stacklevel=2,
    )


def tiff_needs_converting(page: Any) -> bool:
    """Whether a TIFF page's pixels, as stored, are not what viewers show (palette, CMYK, MinIsWhite, a turned
    Orientation tag, premultiplied alpha): streaming reads stored pixels, so such files are read whole. Extra
    samples that are not alpha need no converting: streaming drops them too (:func:`tiff_alpha`)."""
    extras = tuple(page.extrasamples or ())
    return int(page.photometric) in (MINISWHITE, PALETTE, SEPARATED) or _orientation(page) != 1 or extras[:1] == (1,)


def tiff_alpha(page: Any) -> bool | None:
    """Whether a TIFF page's extra sample is alpha (True), declared as something else (False), or absent (None)."""
    extras = tuple(page.extrasamples or ())
    return None if not extras else extras[0] in ALPHA_SAMPLES


def _read_tiff(path: Path, *, values: bool = False) -> np.ndarray:
    """The first image of a TIFF, channels last, as viewers show it: palette colours applied, CMYK converted, a
    MinIsWhite grey image inverted (``values=True`` keeps a mask's stored values: ImageJ saves binary masks so),
    the Orientation tag applied. A stack of planes or pages is refused rather than read as colours; channels that
    are neither colour nor declared alpha (a 2-channel fluorescence image) are refused rather than guessed."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        refuse_stack(path, series)
        warn_left_out(path, tif)
        page = series.keyframe
        try:
            a = np.asarray(series.asarray())
        except ValueError as exc:
            if "imagecodecs" in str(exc):  # LZW/JPEG need it: a dependency, but an environment may lack it
                raise ImageReadError(f"{path}: {exc} (pip install imagecodecs)") from None
            raise
        axes = series.axes
        photometric, extras = int(page.photometric), tuple(page.extrasamples or ())
        if grey_alpha_pages(axes, tuple(series.shape)):
            axes, extras = "YXS", (2,)
        colormap, orientation = page.colormap, _orientation(page)
    # length-1 axes dropped (a (1, H, W, 3) array), declared channels (S, C) last
    keep = [i for i, (ax, n) in enumerate(zip(axes, a.shape, strict=True)) if n > 1 or ax in "YX"]
    a = a.reshape([a.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    if "Q" in axes and "C" not in axes and "S" not in axes:  # unnamed planes, at most 4 (else a stack): channels
        axes = axes.replace("Q", "C")
    for ax in "CS":
        if ax in axes and axes.index(ax) != len(axes) - 1:
            a = np.moveaxis(a, axes.index(ax), -1)
            axes = axes.replace(ax, "") + ax
    if photometric == PALETTE and colormap is not None and a.ndim == 2:
        a = np.moveaxis(colormap_uint8(colormap)[:, a], 0, -1)
    elif photometric == SEPARATED and a.ndim == 3 and a.shape[-1] >= 4:
        a = _cmyk_to_rgb(a)
    channels = a.shape[-1] if a.ndim == 3 and axes[-1] in "CS" else 1
    has_alpha = bool(extras) and extras[0] in ALPHA_SAMPLES
    if photometric == MINISWHITE and not values:
        a = _inverted_grey(a, alpha=has_alpha and channels > 1)
    if has_alpha and extras[0] == 1 and channels > 1:  # associated alpha: the colour is premultiplied already
        opaque = dtype_full_scale(a.dtype)
        a = on_white(a, opaque, premultiplied=True)
        channels, has_alpha = channels - 1, False
    if channels == 2 and not has_alpha:
        raise ImageReadError(f"{path}: 2 channels that are neither colour nor alpha: save the channel to segment")
    if channels > 3 and not has_alpha:
        if photometric != RGB:  # 4+ channels of a grey image: fluorescence, not RGBA
            raise ImageReadError(f"{path}: {channels} channels, not RGB: save the channels to segment as RGB")
        a = a[..., :3]  # RGB + data that is not alpha: not composited as if it were transparency
    return _oriented(a, orientation)


def _inverted_grey(a: np.ndarray, *, alpha: bool) -> np.ndarray:
    """A MinIsWhite grey image as viewers show it (0 is white); its alpha channel, if any, stays as it is."""
    grey = a[..., :-1] if alpha else a
    if grey.dtype == bool:
        inverted = ~grey
    else:
        inverted = (value_top(grey.dtype, peak_value(grey)) - grey.astype(np.float64)).astype(grey.dtype)
    return np.concatenate([inverted, a[..., -1:]], axis=-1) if alpha else inverted


def colormap_uint8(colormap: Any) -> np.ndarray:
    """A TIFF colormap (3, 2**bits) as 8-bit colours: 16-bit values by their high byte; some writers store 8-bit
    values in the 16-bit table, kept as they are."""
    cmap = np.asarray(colormap)
    return (cmap >> 8 if cmap.max() > 255 else cmap).astype(np.uint8)


def _orientation(page: Any) -> int:
    tag = page.tags.get("Orientation")
    try:
        return int(tag.value) if tag is not None else 1
    except (TypeError, ValueError):
        return 1


def _oriented(a: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels turned as the TIFF Orientation tag says (as EXIF: 6 is a quarter turn clockwise), as viewers show it."""
    turns = {
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: np.swapaxes(x, 0, 1),
        6: lambda x: np.rot90(x, -1),
        7: lambda x: np.rot90(x, 1)[:, ::-1],
        8: lambda x: np.rot90(x, 1),
    }
    turn = turns.get(orientation)
    return np.ascontiguousarray(turn(a)) if turn else a


def dtype_full_scale(dtype: np.dtype) -> float:
    """The largest value a dtype stores (255, 65535, ...), 1.0 for floats: full opacity of an alpha channel, full
    ink of a CMYK one."""
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def _cmyk_to_rgb(a: np.ndarray) -> np.ndarray:
    """CMYK (+ extras) → RGB in the same dtype: (1 - C)(1 - K), as Pillow converts it."""
    top = dtype_full_scale(a.dtype)
    cmy, k = a[..., :3].astype(np.float64), a[..., 3:4].astype(np.float64)
    return ((top - cmy) * (top - k) / top + (0.5 if top > 1 else 0)).astype(a.dtype)


def _png16_colour(path: Path) -> np.ndarray | None:
    """A 16-bit colour PNG at full depth (Pillow reads only its high bytes: a 10-14 bit camera's values came out
    near black, a dim full-range image 8x coarser), through libpng in ``imagecodecs``; None for other files."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR" or head[24] != 16:
        return None
    if head[25] not in (2, 6):  # colour type RGB / RGBA; 16-bit grey Pillow reads at full depth
        return None
    import imagecodecs
    from PIL import Image

    with Image.open(path) as im, naming_warnings(path):
        orientation = int(im.getexif().get(0x0112, 1) or 1)  # EXIF Orientation, as Pillow's 8-bit path applies it
    return _oriented(np.asarray(imagecodecs.png_decode(path.read_bytes())), orientation)


def to_rgb_uint8(arr: np.ndarray, name: str = "image") -> np.ndarray:
    """Any grey/RGB/RGBA array of 8/16-bit ints or floats → HxWx3 uint8 (the compact in-memory form)."""
    a = np.asarray(arr)
    while a.ndim > 3 and a.shape[0] == 1:
        a = a[0]
    if channel_first(a.shape):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 2, 3, 4):
        raise ImageReadError(f"{name}: expected a 2-D grey or RGB(A) image, got shape {a.shape}")
    if a.shape[-1] in (2, 4) and a.dtype != bool:
        opaque = dtype_full_scale(a.dtype)
        if 0 < a[..., -1].max() and a[..., -1].min() < opaque:
            a = on_white(a, opaque)  # partly transparent; a wholly transparent one is a tool's unused alpha: dropped
    a = rgb_channels(a)
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).any():
        raise ImageReadError(f"{name}: no finite pixel values (all NaN or infinite)")
    return scale_to_uint8(a, value_top(a.dtype, peak_value(a)))


def channel_first(shape: tuple[int, ...]) -> bool:
    """A (1|3|4, H, W) array (a channel-first TIFF); not an (n, W, 2) grey + alpha image 1, 3 or 4 rows tall."""
    return len(shape) == 3 and shape[0] in (1, 3, 4) and shape[-1] not in (1, 2, 3, 4)


def on_white(
    a: np.ndarray, opaque: float = 255.0, *, premultiplied: bool = False, white: float | None = None
) -> np.ndarray:
    """Grey/RGB + alpha composited onto white, in the colours' own range: a cut-out cell on a transparent
    background is a cell on a bright smear background, not on black (black around a cell was segmented as
    cytoplasm). ``opaque``: the alpha value of full opacity (255 for 8 bits, 65535 for 16); ``premultiplied``:
    the colours are already multiplied by alpha (a TIFF's associated alpha); ``white``: the colours' full
    intensity (default: found from them, as reading scales them)."""
    alpha = a[..., -1:].astype(np.float32) / opaque
    colour = a[..., :-1].astype(np.float32)
    if not premultiplied:
        colour = colour * alpha
    if a.dtype == np.uint8:
        return (colour + 255.0 * (1 - alpha) + 0.5).clip(0, 255).astype(np.uint8)
    if white is None:
        white = value_top(a.dtype, peak_value(a[..., :-1]))
    return colour + np.float32(white) * (1 - alpha)


def peak_value(a: np.ndarray) -> float:
    """The largest finite value (0 if none): NaN marks "no data" in float scans (outside a stitched field), so it
    must not decide the intensity range; it is shown as black."""
    if np.issubdtype(a.dtype, np.floating):
        return float(a.max(where=np.isfinite(a), initial=0))
    return float(a.max(initial=0))


def rgb_channels(a: np.ndarray) -> np.ndarray:
    """(H, W, 1|2|3|4) → (H, W, 3): alpha dropped, grey repeated."""
    if a.shape[-1] == 2:  # grey + alpha
        a = a[..., :1]
    if a.shape[-1] == 4:
        a = a[..., :3]
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return a


#: bit depths microscope cameras store in 16-bit files (10, 12, 14 bits: values up to 1023, 4095, 16383)
CAMERA_BITS = (10, 12, 14, 16)


def value_top(dtype: np.dtype, peak: float) -> float:
    """The value that means full intensity: for integers 255, or the top of the smallest camera bit depth the data
    fit (a 12-bit camera's 0-4095 in a 16-bit file is not a picture 16x too dark: scaled by 65535, the networks saw
    near-black and found no nucleus), more for wider data. Floats: 1 for 0..1 data, 255 for 0..255 data (both with
    some overshoot), above that as integers (camera units kept as floats were clipped to white)."""
    if np.issubdtype(dtype, np.integer):
        if peak <= 255:
            return 255.0
        if peak > 65535:
            return peak
        return float(next(2**bits - 1 for bits in CAMERA_BITS if peak <= 2**bits - 1))
    # 0..1 data may overshoot a little (interpolation, deconvolution): one pixel at 1.02 made the image black
    if peak <= FLOAT_UNIT_SLACK:
        return 1.0
    if peak <= 255 * FLOAT_BYTE_SLACK:  # 0..255 data overshoots too: one pixel at 256.5 made it 4x darker
        return 255.0
    if peak > 65535:  # wider than any camera: its own peak
        return peak
    # camera units kept as floats (ImageJ's 32-bit conversion of a 12-bit image): scaled as the integers are
    return float(next(2**bits - 1 for bits in CAMERA_BITS if peak <= 2**bits - 1))


#: floats up to this peak are read as 0..1 data (values above 1 clipped); above it as 0..255
FLOAT_UNIT_SLACK = 1.5
#: floats up to 255 times this are read as 0..255 data (above 255 clipped); above it as camera units (0..1023 ...)
FLOAT_BYTE_SLACK = 1.1


def scale_to_uint8(a: np.ndarray, top: float) -> np.ndarray:
    """``a`` scaled so that ``top`` is 255, clipped; NaN becomes 0 (the cast alone would be undefined)."""
    out = (a.astype(np.float32) * (255.0 / top) + 0.5).clip(0, 255)
    if np.issubdtype(a.dtype, np.floating):
        np.nan_to_num(out, copy=False, nan=0.0)
    return out.astype(np.uint8)


def read_image(path: str | Path, *, as_float: bool = True) -> np.ndarray:
    """Read an image as RGB: float32 in [0, 1] (default) or uint8 with ``as_float=False``.

    uint8 is what big smears should use: a quarter of the memory, normalised tile by tile at inference.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy" or is_zarr(path):  # arrays saved by analysis code: the lazy reader knows them
        from .lazy import open_lazy

        rgb = np.asarray(open_lazy(path))
    else:
        rgb = to_rgb_uint8(_read_raw(path), str(path))
    return rgb.astype(np.float32) / 255.0 if as_float else rgb


def list_images(paths: Iterable[str | Path], suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    """Expand files and folders into a sorted, de-duplicated list of image files."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in suffixes and not hidden(q)))
        else:
            out.append(p)
    seen: set[Path] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def is_zarr(path: Path) -> bool:
    """A zarr store (v2 or v3 metadata inside), not merely a folder whose name ends in .zarr."""
    return path.is_dir() and any((path / name).is_file() for name in (".zarray", ".zgroup", "zarr.json"))


def hidden(path: Path) -> bool:
    """Files a folder listing skips: hidden ones, such as the ``._name`` resource forks macOS leaves on shared
    drives (not images, though they carry an image suffix)."""
    return path.name.startswith(".")
