"""Synthetic blood smears with exact masks: WBC crops (cytoplasm + lobed nucleus among red cells) and RBC fields.

They make demos, tests and the napari sample entries work offline and without any licensed data. The look is
plausible (stain colours, central pallor of red cells, blur, noise), not a substitute for real training data.
"""

from __future__ import annotations

import numpy as np

_PLASMA = np.array([0.93, 0.88, 0.80])
_RBC = np.array([0.86, 0.55, 0.55])
_CYTO = np.array([0.78, 0.72, 0.88])
_NUCLEUS = np.array([0.38, 0.20, 0.55])


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[0:h, 0:w].astype(np.float32)


def _blob(yy, xx, cy, cx, r, rng, wobble=0.12, lobes=5) -> np.ndarray:
    """Boolean mask of a wobbly disk: radius modulated by a few random harmonics."""
    ang = np.arctan2(yy - cy, xx - cx)
    rad = np.hypot(yy - cy, xx - cx)
    mod = np.ones_like(ang)
    for k in range(2, 2 + lobes):
        mod += wobble / k * rng.normal() * np.cos(k * ang + rng.uniform(0, 2 * np.pi))
    return rad <= r * mod


def _blur(img: np.ndarray, k: int = 3) -> np.ndarray:
    out = img.copy()
    for axis in (0, 1):
        acc = np.zeros_like(out)
        for d in range(-(k // 2), k // 2 + 1):
            acc += np.roll(out, d, axis=axis)
        out = acc / k
    return out


def _paint_rbcs(img, mask, yy, xx, rng, n, r_range, avoid=None, label=None) -> None:
    h, w = img.shape[:2]
    for _ in range(n):
        r = rng.uniform(*r_range)
        cy, cx = rng.uniform(-r / 2, h + r / 2), rng.uniform(-r / 2, w + r / 2)
        disk = _blob(yy, xx, cy, cx, r, rng, wobble=0.05)
        if avoid is not None and (disk & avoid).any():
            continue
        if label is not None and (disk & (mask > 0)).mean() > 0:
            # keep touching cells apart in the mask with a thin background line, as the RBC masks do
            disk &= ~_blob(yy, xx, cy, cx, r + 1.5, rng, wobble=0.0) | (mask == 0)
            ring = disk & ~_blob(yy, xx, cy, cx, r - 1.0, rng, wobble=0.0)
            disk &= ~(ring & (mask > 0))
        pallor = np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (0.45 * r) ** 2))
        colour = _RBC * rng.uniform(0.92, 1.05)
        img[disk] = colour + (pallor[disk, None] * 0.25) * (1 - colour)
        if label is not None:
            mask[disk] = label


def _finish(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = _blur(img, 3) + rng.normal(0, 0.015, img.shape)
    return (img.clip(0, 1) * 255 + 0.5).astype(np.uint8)


def synthetic_wbc(size: int | tuple[int, int] = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A WBC crop and its label mask (0 background, 1 cytoplasm, 2 nucleus)."""
    rng = np.random.default_rng(seed)
    h, w = (size, size) if isinstance(size, int) else size
    yy, xx = _grid(h, w)
    img = np.ones((h, w, 3), np.float32) * _PLASMA * rng.uniform(0.95, 1.03, 3)
    mask = np.zeros((h, w), np.uint8)
    cy, cx = h / 2 + rng.uniform(-0.06, 0.06) * h, w / 2 + rng.uniform(-0.06, 0.06) * w
    r_cell = min(h, w) * rng.uniform(0.30, 0.38)
    cell = _blob(yy, xx, cy, cx, r_cell, rng, wobble=0.10)
    _paint_rbcs(img, mask, yy, xx, rng, n=int(rng.integers(2, 7)), r_range=(0.16 * h, 0.22 * h), avoid=cell)
    nucleus = np.zeros_like(cell)
    for _ in range(int(rng.integers(1, 4))):  # 1-3 lobes, like lymphocytes to neutrophils
        ly = cy + rng.uniform(-0.35, 0.35) * r_cell
        lx = cx + rng.uniform(-0.35, 0.35) * r_cell
        nucleus |= _blob(yy, xx, ly, lx, r_cell * rng.uniform(0.35, 0.55), rng, wobble=0.2)
    nucleus &= _blob(yy, xx, cy, cx, r_cell * 0.9, rng, wobble=0.0)
    img[cell] = _CYTO * rng.uniform(0.95, 1.05)
    img[nucleus] = _NUCLEUS * rng.uniform(0.9, 1.1)
    mask[cell] = 1
    mask[nucleus] = 2
    return _finish(img, rng), mask


def synthetic_rbc(
    size: tuple[int, int] = (600, 800), seed: int = 0, density: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """A smear field and its cell mask (0 background, 1 cell)."""
    rng = np.random.default_rng(seed)
    h, w = size
    img = np.ones((h, w, 3), np.float32) * _PLASMA * rng.uniform(0.96, 1.02, 3)
    mask = np.zeros((h, w), np.uint8)
    r = 0.035 * min(h, w) + 10
    n = int(density * h * w / (np.pi * r * r) * 0.45)
    # draw each cell on a small window so a big field stays fast
    for _ in range(n):
        rr = r * rng.uniform(0.8, 1.15)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        y0, y1 = int(max(cy - rr - 3, 0)), int(min(cy + rr + 4, h))
        x0, x1 = int(max(cx - rr - 3, 0)), int(min(cx + rr + 4, w))
        if y1 <= y0 or x1 <= x0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        sub_img, sub_mask = img[y0:y1, x0:x1], mask[y0:y1, x0:x1]
        disk = _blob(yy, xx, cy, cx, rr, rng, wobble=0.05)
        if (disk & (sub_mask > 0)).mean() > 0.02:
            continue  # mostly non-overlapping, like a good monolayer
        edge = disk & ~_blob(yy, xx, cy, cx, rr - 1.2, rng, wobble=0.0)
        pallor = np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (0.45 * rr) ** 2))
        colour = _RBC * rng.uniform(0.92, 1.05)
        sub_img[disk] = colour + (pallor[disk, None] * 0.25) * (1 - colour)
        sub_mask[disk & ~(edge & (sub_mask > 0))] = 1
        sub_mask[edge & (sub_mask > 0)] = 0  # touching cells stay apart in the mask
    return _finish(img, rng), mask
