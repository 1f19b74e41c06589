"""Synthetic blood smears with exact masks: WBC crops (cytoplasm + lobed nucleus among red cells) and RBC fields.

They make demos, tests and the napari sample entries work offline and without any licensed data. The look is
plausible (stain colours, central pallor of red cells, blur, noise), not a substitute for real training data.
A WBC crop takes its colours and grain from measured Dataset 2 (CellaVision) cells (``benchmarks/synthetic_realism.py``
prints both side by side): flat, grainless cytoplasm is what a red cell looks like to a network that has seen red
cells beside white ones, so a cartoon cell would be a demo of the wrong thing.
"""

from __future__ import annotations

import numpy as np

# RBC fields
_PLASMA = np.array([0.93, 0.88, 0.80])
_RBC = np.array([0.86, 0.55, 0.55])

# WBC crops: interior means and grain (per-channel sd of the image minus its gaussian blur at sigma 2 px) measured
# on the 20 Dataset 2 dev crops reduced 2x, the scale of this crop; red cells there are the reddish background pixels.
_D2_COLOUR = {
    "plasma": np.array([0.963, 0.848, 0.763]),
    "rbc": np.array([0.751, 0.530, 0.581]),
    "cyto": np.array([0.744, 0.603, 0.688]),
    "nucleus": np.array([0.424, 0.223, 0.550]),
}
_D2_GRAIN = {  # plasma 0.016 0.021 0.010 and red cells 0.012 0.014 0.009: the sensor noise below gives them that
    "cyto": np.array([0.039, 0.050, 0.022]),
    "nucleus": np.array([0.056, 0.060, 0.027]),
}
# Drawn grain: size (px in a 120 px crop; a bigger crop magnifies it) and amplitude over the measured grain, set so
# the finished crop (after its blur and sensor noise) measures as Dataset 2 does in both fine grain and whole sd:
# chromatin is finer than the cytoplasm's mottling at this scale.
_GRAIN_SIGMA = {"cyto": 1.3, "nucleus": 0.6}
_GRAIN_GAIN = {"cyto": 2.05, "nucleus": 2.4}


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
    """Box blur (the optics); edges repeat outward, so a cell at one border does not bleed into the other."""
    out = img
    for axis in (0, 1):
        pad = [(0, 0)] * img.ndim
        pad[axis] = (k // 2, k // 2)
        padded = np.pad(out, pad, mode="edge")
        n = out.shape[axis]
        out = sum(np.take(padded, range(d, d + n), axis=axis) for d in range(k)) / k
    return out


def _grain(shape: tuple[int, int], rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Unit-sd noise smoothed to ``sigma`` px: the stain's granules and chromatin, darker and lighter specks."""
    from scipy import ndimage as ndi

    g = ndi.gaussian_filter(rng.normal(0, 1, shape).astype(np.float32), sigma)
    return g / (g.std() + 1e-6)


def _paint_rbcs(img, yy, xx, rng, n, r_range, avoid, colour) -> None:
    """Up to ``n`` red cells with central pallor around a white cell (the background class in a WBC mask)."""
    h, w = img.shape[:2]
    for _ in range(n):
        r = rng.uniform(*r_range)
        cy, cx = rng.uniform(-r / 2, h + r / 2), rng.uniform(-r / 2, w + r / 2)
        disk = _blob(yy, xx, cy, cx, r, rng, wobble=0.05)
        if (disk & avoid).any():
            continue
        pallor = np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (0.45 * r) ** 2))
        tint = colour * rng.uniform(0.92, 1.05)
        img[disk] = tint + (pallor[disk, None] * 0.25) * (1 - tint)


def _finish(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = _blur(img, 3) + rng.normal(0, 0.015, img.shape)
    return (img.clip(0, 1) * 255 + 0.5).astype(np.uint8)


def synthetic_wbc(size: int | tuple[int, int] = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A WBC crop and its label mask (0 background, 1 cytoplasm, 2 nucleus), in Dataset 2's stain."""
    rng = np.random.default_rng(seed)
    h, w = (size, size) if isinstance(size, int) else size
    yy, xx = _grid(h, w)
    img = np.ones((h, w, 3), np.float32) * _D2_COLOUR["plasma"] * rng.uniform(0.97, 1.02, 3)
    mask = np.zeros((h, w), np.uint8)
    cy, cx = h / 2 + rng.uniform(-0.06, 0.06) * h, w / 2 + rng.uniform(-0.06, 0.06) * w
    r_cell = min(h, w) * rng.uniform(0.30, 0.38)
    cell = _blob(yy, xx, cy, cx, r_cell, rng, wobble=0.10)
    rbc_range = (0.16 * h, 0.22 * h)
    _paint_rbcs(img, yy, xx, rng, int(rng.integers(2, 7)), rbc_range, avoid=cell, colour=_D2_COLOUR["rbc"])
    nucleus = np.zeros_like(cell)
    for _ in range(int(rng.integers(1, 4))):  # 1-3 lobes, like lymphocytes to neutrophils
        ly = cy + rng.uniform(-0.35, 0.35) * r_cell
        lx = cx + rng.uniform(-0.35, 0.35) * r_cell
        nucleus |= _blob(yy, xx, ly, lx, r_cell * rng.uniform(0.35, 0.55), rng, wobble=0.2)
    nucleus &= _blob(yy, xx, cy, cx, r_cell * 0.9, rng, wobble=0.0)
    img[cell] = _D2_COLOUR["cyto"] * rng.uniform(0.95, 1.05)
    img[nucleus] = _D2_COLOUR["nucleus"] * rng.uniform(0.9, 1.1)
    for name, region in {"cyto": cell & ~nucleus, "nucleus": nucleus}.items():
        grain = _grain((h, w), rng, _GRAIN_SIGMA[name] * min(h, w) / 120)
        img[region] += grain[region, None] * _D2_GRAIN[name] * _GRAIN_GAIN[name]
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
