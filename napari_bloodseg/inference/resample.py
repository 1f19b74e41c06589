"""Resizing in row bands, so a prediction at another scale streams like one at scale 1.

A model that runs at half resolution (``rbc-deconvnet``), or a user scale, used to resize the whole image
before the network and upsample whole-image probabilities after it: for an 8000² field that was ~1.5 GB of
float buffers, and a slide too big for memory could not run at all. Here both ends work band by band:

* :class:`ResizedRows` is an array-like view of the image at another size; slicing rows computes only those
  (antialiased bilinear, the weights of ``torch.nn.functional.interpolate(..., antialias=True)``), reading only
  the source rows they need (memmap, zarr and dask sources stay lazy).
* :class:`RowUpsampler` takes the network's probabilities band by band, as tiling finishes them, and writes
  bilinear-upsampled labels (and probabilities, if asked) at the full size, holding one source row between
  bands.

Memory is bounded by the image width, not its area. Results equal whole-image resizing to float rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

#: Output rows computed per step inside one slice (bounds the float temporaries to ~rows x width x 3).
_CHUNK_ROWS = 128


def aa_taps(in_size: int, out_size: int, o0: int, o1: int) -> tuple[np.ndarray, np.ndarray]:
    """Source row indices and weights, each (taps, o1 - o0), of antialiased bilinear resizing from ``in_size`` to
    ``out_size`` for output rows ``o0..o1``: the filter PyTorch's ``antialias=True`` uses (a triangle as wide as
    the scale when shrinking, plain bilinear when enlarging), normalised per row; unused taps weigh 0."""
    scale = in_size / out_size
    support, inv = (scale, 1.0 / scale) if scale >= 1.0 else (1.0, 1.0)
    centre = scale * (np.arange(o0, o1, dtype=np.float64) + 0.5)
    lo = np.maximum((centre - support + 0.5).astype(np.int64), 0)
    hi = np.minimum((centre + support + 0.5).astype(np.int64), in_size)
    taps = int((hi - lo).max()) if o1 > o0 else 0
    j = lo[None, :] + np.arange(taps)[:, None]
    w = np.clip(1.0 - np.abs((j - centre[None, :] + 0.5) * inv), 0.0, None)
    w[j >= hi[None, :]] = 0.0
    w /= w.sum(0, keepdims=True)
    return np.minimum(j, in_size - 1), w.astype(np.float32)


class ResizedRows:
    """``image`` (H, W, 3) seen at ``size`` = (h, w): ``view[y0:y1]`` resizes just those rows.

    Same values as :func:`~napari_bloodseg.inference.predict.resize_image` on the whole image (uint8 stays
    uint8, within one grey level of rounding), but only the source rows under the filter are read and held.
    """

    def __init__(self, image: Any, size: tuple[int, int]) -> None:
        self.image = image
        self.size = (int(size[0]), int(size[1]))
        self.dtype = np.dtype(np.uint8) if image.dtype == np.uint8 else np.dtype(np.float32)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (*self.size, 3)

    @property
    def ndim(self) -> int:
        return 3

    def __len__(self) -> int:
        return self.size[0]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        arr = self[:]
        return arr if dtype is None else arr.astype(dtype)

    def __getitem__(self, key: Any) -> np.ndarray:
        rows = key[0] if isinstance(key, tuple) else key
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise IndexError("ResizedRows slices rows only (view[y0:y1] or view[y0:y1, ...])")
        o0, o1, _ = rows.indices(self.size[0])
        out = np.empty((max(o1 - o0, 0), self.size[1], 3), self.dtype)
        for c0 in range(o0, o1, _CHUNK_ROWS):
            c1 = min(o1, c0 + _CHUNK_ROWS)
            out[c0 - o0 : c1 - o0] = self._rows(c0, c1)
        return out[(slice(None), *key[1:])] if isinstance(key, tuple) and len(key) > 1 else out

    def _rows(self, o0: int, o1: int) -> np.ndarray:
        src_h = self.image.shape[0]
        idx, w = aa_taps(src_h, self.size[0], o0, o1)
        a, b = int(idx.min()), int(idx.max()) + 1
        src = torch.from_numpy(np.asarray(self.image[a:b], dtype=np.float32))  # (b-a, W, 3)
        rows = torch.zeros((o1 - o0, *src.shape[1:]), dtype=torch.float32)
        for t in range(idx.shape[0]):  # a handful of taps: one gather + multiply-add each
            rows.addcmul_(src[torch.from_numpy(idx[t] - a)], torch.from_numpy(w[t])[:, None, None])
        # columns: interpolate with the row count unchanged, which is the identity along rows
        x = rows.permute(2, 0, 1)[None]
        y = F.interpolate(x, size=(o1 - o0, self.size[1]), mode="bilinear", align_corners=False, antialias=True)
        y = y[0].permute(1, 2, 0)
        if self.dtype == np.uint8:
            return y.round().clamp(0, 255).to(torch.uint8).numpy()
        return y.numpy()


class RowUpsampler:
    """Bilinear upsampling (``align_corners=False``, as ``F.interpolate``) of class probabilities that arrive in
    consecutive row bands of a (C, h, w) map, into labels (and float16 probabilities) of size (H, W).

    ``feed(y0, y1, probs)`` takes source rows ``y0..y1`` ((C, y1-y0, w), any device) and writes every output
    row whose two source rows have arrived; one source row is kept for the next band.
    """

    def __init__(self, src_size: tuple[int, int], size: tuple[int, int], labels: Any, probs: Any = None) -> None:
        self.src_h = src_size[0]
        self.size = size
        self.labels, self.probs = labels, probs
        height = size[0]
        pos = np.maximum((np.arange(height, dtype=np.float64) + 0.5) * (self.src_h / height) - 0.5, 0.0)
        self.i0 = np.minimum(pos.astype(np.int64), self.src_h - 1)
        self.i1 = np.minimum(self.i0 + 1, self.src_h - 1)
        self.w1 = (pos - self.i0).astype(np.float32)
        self.next_row = 0  # first output row not written yet
        self._carry: torch.Tensor | None = None  # last source row of the previous band
        self._carry_at = -1

    def feed(self, y0: int, y1: int, probs: torch.Tensor) -> None:
        base = y0
        if self._carry is not None and self._carry_at == y0 - 1:
            probs, base = torch.cat([self._carry, probs], dim=1), y0 - 1
        last = self.size[0] if y1 >= self.src_h else int(np.searchsorted(self.i1, y1, side="left"))
        for r0 in range(self.next_row, last, _CHUNK_ROWS):
            r1 = min(last, r0 + _CHUNK_ROWS)
            self._write(r0, r1, probs, base)
        self.next_row = max(self.next_row, last)
        self._carry, self._carry_at = probs[:, -1:].clone(), y1 - 1

    def _write(self, r0: int, r1: int, probs: torch.Tensor, base: int) -> None:
        dev = probs.device
        i0 = torch.from_numpy(self.i0[r0:r1] - base).to(dev)
        i1 = torch.from_numpy(self.i1[r0:r1] - base).to(dev)
        w1 = torch.from_numpy(self.w1[r0:r1]).to(dev)[None, :, None]
        rows = torch.lerp(probs[:, i0].float(), probs[:, i1].float(), w1)  # (C, r1-r0, w)
        band = F.interpolate(rows[None], size=(r1 - r0, self.size[1]), mode="bilinear", align_corners=False)[0]
        self.labels[r0:r1] = band.max(dim=0).indices.to(torch.uint8).cpu().numpy()
        if self.probs is not None:
            self.probs[:, r0:r1] = band.cpu().numpy()


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The network-input size for an image at ``scale`` (never below 8 px a side)."""
    return max(round(height * scale), 8), max(round(width * scale), 8)
