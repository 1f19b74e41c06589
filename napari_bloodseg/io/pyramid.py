"""Coarse levels of a big image that has no pyramid of its own, built in one banded pass into temporary files.

A compressed or tiled slide has no cheap coarse view: every coarse pixel needs its tile decoded. Coarse levels
made as strided views of full resolution decoded the whole slide again for every look at the overview (a 105 MP
zlib-tiled TIFF froze napari 15-22 s and took 3.3 GB). :class:`Pyramid` reads full resolution once, band by band
(memory: one band), averages 2 x 2 blocks level after level, and keeps each requested level in an unlinked
temporary file, memory-mapped (the kernel may page it out; the disk holds a twelfth of the slide's RGB bytes for
levels 4x and coarser).

The pass runs in a background thread (:meth:`Pyramid.start`), and a read of a band it has not reached yet builds
that band first (in the reader's thread), unless the pyramid is ``progressive``: then such rows read as flat grey
(:data:`PLACEHOLDER`) at once, as napari's GUI thread must not wait, and :attr:`Pyramid.version` counts finished
bands so that the viewer knows when to draw again.
"""

from __future__ import annotations

import errno
import math
import os
import tempfile
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

#: the value of rows not built yet, in a progressive pyramid: a flat grey, unlike any stained smear
PLACEHOLDER = 128
#: full-resolution pixels per band of the building pass: its memory (3 bytes each, plus a quarter of that as the
#: 2x-reduced band in 16 bits), and how often a progressive pyramid has something new to show
BAND_PIXELS = 8_000_000


def reduce2(a: np.ndarray) -> np.ndarray:
    """An (H, W, C) uint8 image at half size, each pixel the rounded mean of a 2 x 2 block (an odd last row or column
    is repeated, so the result is ceil(H / 2) x ceil(W / 2), the shape of ``a[::2, ::2]``). Averaging, not
    striding: a coarse view of a smear should not flicker with every other pixel (aliasing of thin cell edges)."""
    h, w = a.shape[:2]
    if h % 2 or w % 2:
        a = np.pad(a, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    # four strided views added in place: 10x faster than a reshaped sum over axes (1, 3)
    s = a[0::2, 0::2].astype(np.uint16)
    s += a[1::2, 0::2]
    s += a[0::2, 1::2]
    s += a[1::2, 1::2]
    s += 2
    s >>= 2
    return s.astype(np.uint8)


def _temporary_array(shape: tuple[int, ...]) -> tuple[np.memmap, Any]:
    """A zeroed uint8 array in an unlinked temporary file (gone with the process, whatever ends it), its disk blocks
    claimed first: a memory map of a sparse file finds a full disk only when a page is written, with SIGBUS."""
    f = tempfile.TemporaryFile(prefix="napari-bloodseg-pyramid-")
    size = max(math.prod(shape), 1)
    try:
        fallocate = getattr(os, "posix_fallocate", None)
        if fallocate is not None:
            try:
                fallocate(f.fileno(), 0, size)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
        f.truncate(size)
        return np.memmap(f, dtype=np.uint8, mode="r+", shape=shape), f
    except BaseException:
        f.close()
        raise


class Pyramid:
    """Levels ``factors`` (powers of 2, at least 4) of an (H, W, 3) uint8 array-like ``source``, built on demand or in
    the background; :meth:`level` gives each as an array-like for napari."""

    def __init__(
        self,
        source: Any,
        factors: Sequence[int],
        *,
        align: int = 1,
        progressive: bool = False,
        band_pixels: int | None = None,
    ) -> None:
        """``align``: the source's own rows per tile or strip, so that bands start on them (a tile cut by a band
        edge is decoded twice); ``progressive``: reads never build (see the module docstring); ``band_pixels``:
        :data:`BAND_PIXELS` unless given."""
        factors = sorted(set(factors))
        if not factors or any(f < 2 or f & (f - 1) for f in factors):
            raise ValueError(f"pyramid factors must be powers of 2 above 1, got {factors}")
        self.source, self.progressive = source, progressive
        self.shape = tuple(int(s) for s in source.shape[:2])
        h, w = self.shape
        band_pixels = band_pixels or BAND_PIXELS
        top = factors[-1]
        unit = math.lcm(top, max(int(align), 1))
        if unit * w > 4 * band_pixels:  # a tall tile or strip: bands on the coarsest level's rows only
            unit = top
        self.band_rows = unit * max(1, band_pixels // (unit * w))
        self.n_bands = math.ceil(h / self.band_rows)
        self._arrays: dict[int, np.memmap] = {}
        self._files: list[Any] = []
        try:
            for f in factors:
                arr, file = _temporary_array((math.ceil(h / f), math.ceil(w / f), 3))
                self._arrays[f] = arr
                self._files.append(file)
        except BaseException:
            self.close()
            raise
        self._done = np.zeros(self.n_bands, bool)
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        #: finished bands so far (a progressive pyramid's readers redraw when it changes)
        self.version = 0
        #: what stopped the background pass, if anything did (a corrupt tile): its rows stay grey
        self.error: Exception | None = None

    @property
    def factors(self) -> list[int]:
        return sorted(self._arrays)

    @property
    def complete(self) -> bool:
        return bool(self._done.all())

    @property
    def finished(self) -> bool:
        """Nothing more will be built in the background: complete, failed or cancelled."""
        return self.complete or self.error is not None or self._cancel.is_set()

    def level(self, factor: int) -> PyramidLevel:
        return PyramidLevel(self, factor)

    def build_band(self, i: int) -> None:
        """Read band ``i`` of the source once and write its rows of every level."""
        with self._lock:
            if self._done[i]:
                return
            y0 = i * self.band_rows
            a = np.asarray(self.source[y0 : y0 + self.band_rows])
            f = 1
            while f < self.factors[-1]:
                a, f = reduce2(a), f * 2
                if f in self._arrays:
                    self._arrays[f][y0 // f : y0 // f + a.shape[0]] = a
            self._done[i] = True
            self.version += 1

    def build(self) -> None:
        """Every band not built yet, top to bottom, until :meth:`cancel`."""
        for i in range(self.n_bands):
            if self._cancel.is_set():
                return
            self.build_band(i)

    def start(self) -> None:
        """Build in a daemon thread; a failure is kept in :attr:`error` (the rows it did not reach stay grey)."""

        def run() -> None:
            try:
                self.build()
            except Exception as exc:  # noqa: BLE001 - a corrupt tile, a vanished file: reported by whoever watches
                self.error = exc

        self._thread = threading.Thread(target=run, name="napari-bloodseg-pyramid", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the background pass; whether it is over."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.finished

    def close(self) -> None:
        """Stop building and let go of the temporary files (their space is freed once no level reads them)."""
        self.cancel()
        for file in self._files:
            file.close()

    def read(self, factor: int, key: tuple) -> np.ndarray:
        """``level[key]`` of level ``factor``, built first where needed (grey there when progressive)."""
        arr = self._arrays[factor]
        rows = key[0] if key and key[0] is not Ellipsis else slice(None)
        index = np.arange(arr.shape[0])[rows]
        bands = np.unique(np.atleast_1d(index) * factor // self.band_rows)
        done = self._done.copy()
        if not self.progressive:
            for b in bands[~done[bands]]:
                self.build_band(int(b))
            return np.array(arr[key])
        out = np.array(arr[key])
        pending = ~done[np.atleast_1d(index) * factor // self.band_rows]
        if pending.any():
            if np.ndim(index) == 0:
                out[...] = PLACEHOLDER
            else:
                out[pending] = PLACEHOLDER
        return out


class PyramidLevel:
    """One level of a :class:`Pyramid`: an (h, w, 3) uint8 array-like that napari slices and reads."""

    dtype = np.dtype(np.uint8)
    ndim = 3

    def __init__(self, pyramid: Pyramid, factor: int) -> None:
        self.pyramid, self.factor = pyramid, factor
        self.shape = tuple(pyramid._arrays[factor].shape)
        self.size = math.prod(self.shape)  # napari's layer data protocol asks for it

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"PyramidLevel(factor={self.factor}, shape={self.shape})"

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.pyramid.read(self.factor, key if isinstance(key, tuple) else (key,))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out.astype(dtype) if dtype is not None else out
