"""Microscope image reading: any of bmp/png/jpg/tif, 8/10/12/14/16-bit, grey/RGB/RGBA → RGB."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_SUFFIXES = (".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff")


class ImageReadError(ValueError):
    """An image file is missing, unreadable or of an unsupported layout."""


#: Pillow refuses images over ~179 MP as possible "decompression bombs"; whole smear scans are that big, and
#: reading is what the user asked for. Above this (3 GB as RGB), a tiled TIFF is the way (read in parts)
MAX_WHOLE_PIXELS = 1_000_000_000


def _read_raw(path: Path) -> np.ndarray:
    from PIL import Image

    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            return _read_tiff(path)
        if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_WHOLE_PIXELS:
            Image.MAX_IMAGE_PIXELS = MAX_WHOLE_PIXELS
        with Image.open(path) as im:
            _check_png_depth(path, im)
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


def _upright(im: Any) -> Any:
    """The image turned as its EXIF orientation says, as every viewer shows a camera JPEG and as its mask was drawn;
    as stored when that tag cannot be read (a broken EXIF block must not make the pixels unreadable)."""
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - Pillow raises several types for malformed EXIF
        return im


def _read_tiff(path: Path) -> np.ndarray:
    """The first image of a TIFF; a stack of z or time planes is refused rather than read as colours (3 or 4 planes
    looked like RGB(A)). Unnamed planes (tifffile's Q, I) stay channels, as (3, H, W) colour TIFFs are written."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        stacked = [f"{ax}={n}" for ax, n in zip(series.axes, series.shape, strict=True) if ax in "ZT" and n > 1]
        if stacked:
            raise ImageReadError(
                f"{path}: a stack of planes ({', '.join(stacked)}; axes {series.axes}), not one image: save the "
                "plane to segment as its own file"
            )
        return np.asarray(series.asarray())


def _check_png_depth(path: Path, im: Any) -> None:
    """Pillow reads a 16-bit colour PNG as its high bytes only: fine for full-range data, near black for a 10-14
    bit camera's values (a 12-bit image tops out at 15 of 255). Refuse those rather than segment a black image."""
    if im.format != "PNG" or im.mode not in ("RGB", "RGBA"):
        return
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[12:16] != b"IHDR" or head[24] != 16:
        return
    peak = int(np.asarray(im)[..., :3].max(initial=0))
    if peak < 128:
        raise ImageReadError(
            f"{path}: a 16-bit colour PNG whose values use only the lower bits (a 10-14 bit camera's?); it can be "
            "read only at 8 bits, which would make it near black: save it as a 16-bit TIFF, read at full depth"
        )


def to_rgb_uint8(arr: np.ndarray, name: str = "image") -> np.ndarray:
    """Any grey/RGB/RGBA array of 8/16-bit ints or floats → HxWx3 uint8 (the compact in-memory form)."""
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)  # channel-first TIFF
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 2, 3, 4):
        raise ImageReadError(f"{name}: expected a 2-D grey or RGB(A) image, got shape {a.shape}")
    if a.dtype == np.uint8 and a.shape[-1] in (2, 4) and 0 < a[..., -1].max() and a[..., -1].min() < 255:
        a = on_white(a)  # partly transparent; a wholly transparent one is a tool's unused alpha: dropped
    a = rgb_channels(a)
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).any():
        raise ImageReadError(f"{name}: no finite pixel values (all NaN or infinite)")
    return scale_to_uint8(a, value_top(a.dtype, peak_value(a)))


def on_white(a: np.ndarray) -> np.ndarray:
    """uint8 grey/RGB + alpha composited onto white: a cut-out cell on a transparent background is a cell on a
    bright smear background, not on black (black around a cell was segmented as cytoplasm)."""
    alpha = a[..., -1:].astype(np.float32) / 255.0
    return (a[..., :-1] * alpha + 255.0 * (1 - alpha) + 0.5).astype(np.uint8)


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
    near-black and found no nucleus), more for wider data; 1 or 255 for floats."""
    if np.issubdtype(dtype, np.integer):
        if peak <= 255:
            return 255.0
        if peak > 65535:
            return peak
        return float(next(2**bits - 1 for bits in CAMERA_BITS if peak <= 2**bits - 1))
    # 0..1 data may overshoot a little (interpolation, deconvolution): one pixel at 1.02 made the image black
    return 255.0 if peak > FLOAT_UNIT_SLACK else 1.0


#: floats up to this peak are read as 0..1 data (values above 1 clipped); above it as 0..255
FLOAT_UNIT_SLACK = 1.5


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


def hidden(path: Path) -> bool:
    """Files a folder listing skips: hidden ones, such as the ``._name`` resource forks macOS leaves on shared
    drives (not images, though they carry an image suffix)."""
    return path.name.startswith(".")
