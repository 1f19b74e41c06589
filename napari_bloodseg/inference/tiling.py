"""Sliding-window inference over a rolling band of tile rows.

Only one band (tile height x image width x classes) of blended probabilities is held at a time; finished rows
are reduced to labels at once. Memory is therefore bounded by the image width, not its area, and the image may
be any array-like that slices (numpy, memmap, zarr, dask). Tiles overlap and are blended with a weight that
ramps down towards tile edges, so seams vanish and tiled labels equal untiled ones away from the seams. The
weights are normalised up front (those of the tiles covering a pixel sum to 1), so blending is one
multiply-add per tile pixel, with no running weight sum to keep or divide by.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch


def tile_spans(length: int, tile: int, overlap: int, align: int = 1) -> list[tuple[int, int]]:
    """``(start, size)`` of the fewest tiles of at most ``tile`` px that cover ``[0, length)`` with ``overlap``.

    The tiles share the length evenly (2000 px at tile 1024: three of 720, not 1024 + 1024 + an 80 px sliver that
    costs as much per pixel as a small image), neighbours overlap by ``overlap`` px, and starts are multiples of
    ``align`` (the network's total stride), so every tile sees the same pooling grid as one pass over the whole
    image: that is what makes tiled labels equal untiled ones away from the seams, at any image size. The last
    tile ends at the image end and may be a little shorter.
    """
    if length <= tile:
        return [(0, length)]
    align = max(int(align), 1)
    n = math.ceil((length - overlap) / max(tile - overlap, 1))
    while True:
        step = math.ceil(math.ceil((length - overlap) / n) / align) * align
        if step + overlap <= tile or step <= align:
            break
        n += 1
    spans = []
    for start in range(0, length, step):
        spans.append((start, min(step + overlap, length - start)))
        if start + step + overlap >= length:
            break
    return spans


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    return [s for s, _ in tile_spans(length, tile, overlap, align)]


def ramp_1d(n: int, overlap: int) -> np.ndarray:
    """Weight along one tile side: 1 in the middle, linear ramp over ``overlap`` px at each edge, never 0."""
    if overlap <= 0:
        return np.ones(n, np.float32)
    i = np.arange(n, dtype=np.float32)
    ramp = np.minimum((i + 0.5) / overlap, (n - i - 0.5) / overlap)
    return np.clip(ramp, 1e-3, 1.0).astype(np.float32)


def blend_weights(spans: list[tuple[int, int]], length: int, overlap: int) -> list[np.ndarray]:
    """Per span, its :func:`ramp_1d` divided by the sum of all spans' ramps at each pixel. A tile's 2-D weight is
    the outer product of its row and column weights, so the weights over any pixel sum to 1 (the grid makes
    the 2-D sum the product of the 1-D sums): blending needs no weight sum, at image borders included."""
    ramps = [ramp_1d(size, overlap).astype(np.float64) for _, size in spans]
    total = np.zeros(length, np.float64)
    for (start, size), r in zip(spans, ramps, strict=True):
        total[start : start + size] += r
    return [(r / total[s : s + n]).astype(np.float32) for (s, n), r in zip(spans, ramps, strict=True)]


def sliding_window(
    image: np.ndarray,
    run_batch: Callable[[np.ndarray], torch.Tensor],
    num_classes: int,
    *,
    tile: int,
    overlap: int,
    batch_size: int,
    on_rows: Callable[[int, int, torch.Tensor], None],
    progress: Callable[[int, int], None] | None = None,
    align: int = 1,
) -> None:
    """Run ``run_batch`` (N,h,w,3 array → N,C,h,w probabilities) over tiles of ``image`` (H,W,3).

    ``on_rows(y0, y1, probs)`` receives each finished band of blended probabilities, a (C, y1-y0, W) float32
    tensor that is only valid during the call, in order. Blending happens on the device ``run_batch`` returns
    its probabilities on (a GPU keeps them there; only the caller decides what comes back to the host).
    ``align`` is the network's stride (tile starts are kept on its grid).
    """
    height, width = image.shape[:2]
    rows = tile_spans(height, tile, overlap, align)
    cols = tile_spans(width, tile, overlap, align)
    row_w, col_w = blend_weights(rows, height, overlap), blend_weights(cols, width, overlap)
    weights: dict[tuple[bytes, bytes], torch.Tensor] = {}  # interior tiles share one: a handful in all
    band_h = max(h for _, h in rows)
    acc = None  # allocated on the device of the first probabilities
    total, done_tiles = len(rows) * len(cols), 0
    for i, (y0, th) in enumerate(rows):
        done = rows[i + 1][0] if i + 1 < len(rows) else height
        band = np.asarray(image[y0 : y0 + th])  # one slice per row: friendly to memmap/zarr/dask sources
        by_width: dict[int, list[int]] = {}
        for j, (_, tw) in enumerate(cols):
            by_width.setdefault(tw, []).append(j)
        for tw, js in by_width.items():  # tiles of one size batch together (the last column may be narrower)
            for b in range(0, len(js), batch_size):
                chunk = js[b : b + batch_size]
                probs = run_batch(np.stack([band[:, cols[j][0] : cols[j][0] + tw] for j in chunk]))
                if acc is None:
                    acc = torch.zeros((num_classes, band_h, width), dtype=torch.float32, device=probs.device)
                for j, p in zip(chunk, probs, strict=True):
                    key = (row_w[i].tobytes(), col_w[j].tobytes())
                    w = weights.get(key)
                    if w is None:
                        w = torch.from_numpy(np.outer(row_w[i], col_w[j])).to(acc.device)
                        if len(weights) < 16:
                            weights[key] = w
                    x = cols[j][0]
                    acc[:, :th, x : x + tw].addcmul_(p, w)
                done_tiles += len(chunk)
                if progress is not None:
                    progress(done_tiles, total)
        n = done - y0
        assert acc is not None  # every band row has at least one tile
        on_rows(y0, done, acc[:, :n])
        # roll the band up by n rows in place, zeroing what enters at the bottom
        acc[:, : band_h - n] = acc[:, n:].clone()
        acc[:, band_h - n :] = 0
