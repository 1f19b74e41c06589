"""Sliding-window inference over a rolling band of tile rows.

Only one band (tile height x image width x classes) of blended probabilities is held at a time; finished rows
are reduced to labels at once. Memory is therefore bounded by the image width, not its area, and the image may
be any array-like that slices (numpy, memmap, zarr, dask). Tiles overlap and are blended with a weight that
ramps down towards tile edges, so seams vanish and tiled labels equal untiled ones away from the seams.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets covering ``[0, length)`` with tiles of ``tile``; the last tile is flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def ramp_1d(n: int, overlap: int) -> np.ndarray:
    """Weight along one tile side: 1 in the middle, linear ramp over ``overlap`` px at each edge, never 0."""
    if overlap <= 0:
        return np.ones(n, np.float32)
    i = np.arange(n, dtype=np.float32)
    ramp = np.minimum((i + 0.5) / overlap, (n - i - 0.5) / overlap)
    return np.clip(ramp, 1e-3, 1.0).astype(np.float32)


def iter_tile_rows(height: int, width: int, tile: int, overlap: int) -> Iterator[tuple[int, int, int, list[int]]]:
    """Yield ``(y0, rows_done_until, th, xs)`` per tile row."""
    th, tw = min(tile, height), min(tile, width)
    ys = tile_starts(height, th, max(th - overlap, 1))
    xs = tile_starts(width, tw, max(tw - overlap, 1))
    for i, y0 in enumerate(ys):
        done = ys[i + 1] if i + 1 < len(ys) else height
        yield y0, done, th, xs


def sliding_window(
    image: np.ndarray,
    run_batch: Callable[[np.ndarray], torch.Tensor],
    num_classes: int,
    *,
    tile: int,
    overlap: int,
    batch_size: int,
    on_rows: Callable[[int, int, np.ndarray], None],
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Run ``run_batch`` (N,th,tw,3 array → N,C,th,tw probabilities on CPU) over tiles of ``image`` (H,W,3).

    ``on_rows(y0, y1, probs)`` receives each finished band of blended probabilities (C, y1-y0, W), in order.
    """
    height, width = image.shape[:2]
    rows = list(iter_tile_rows(height, width, tile, overlap))
    th, tw, xs = rows[0][2], min(tile, width), rows[0][3]
    ov_y = overlap if len(rows) > 1 else 0
    ov_x = overlap if len(xs) > 1 else 0
    weight = torch.from_numpy(np.outer(ramp_1d(th, ov_y), ramp_1d(tw, ov_x)))
    acc = torch.zeros((num_classes, th, width), dtype=torch.float32)
    wsum = torch.zeros((th, width), dtype=torch.float32)
    total, done_tiles = len(rows) * len(xs), 0
    for y0, done, _, xs in rows:
        band = np.asarray(image[y0 : y0 + th])  # one slice per row: friendly to memmap/zarr/dask sources
        for b in range(0, len(xs), batch_size):
            chunk = xs[b : b + batch_size]
            tiles = np.stack([band[:, x : x + tw] for x in chunk])
            probs = run_batch(tiles)
            for x, p in zip(chunk, probs, strict=True):
                acc[:, :, x : x + tw] += p * weight
                wsum[:, x : x + tw] += weight
            done_tiles += len(chunk)
            if progress is not None:
                progress(done_tiles, total)
        n = done - y0
        on_rows(y0, done, (acc[:, :n] / wsum[:n]).numpy())
        # roll the band up by n rows, zeroing what enters at the bottom
        acc = torch.cat([acc[:, n:], torch.zeros((num_classes, n, width))], dim=1)
        wsum = torch.cat([wsum[n:], torch.zeros((n, width))], dim=0)
