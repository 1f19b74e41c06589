"""Synthetic blood smears with exact masks: WBC crops (cytoplasm + lobed nucleus among red cells) and RBC fields.

They make demos, tests and the napari sample entries work offline and without any licensed data; they are not a
substitute for real training data. Both copy measured real images, because a cartoon is a demo of the wrong thing:
a WBC crop takes its colours and grain from Dataset 2 (CellaVision) cells (``benchmarks/synthetic_realism.py``
prints both side by side; flat, grainless cytoplasm is what a red cell looks like to a network that has seen red
cells beside white ones), an RBC field its colours, cell profile, soft edges, shape, size and density from the
project's red-cell fields (``benchmarks/synthetic_realism_rbc.py``; only plain discs: no crenated or infected cells).
"""

from __future__ import annotations

import numpy as np

# RBC fields: set so that a finished field measures as 20 of rbc-deconvnet's training fields do
# (``benchmarks/synthetic_realism_rbc.py`` prints both; its figures quoted here)
_FIELD_PLASMA = np.array([0.905, 0.912, 0.901])
# a red cell is a dark ring (the biconcave disc's rim; its darkest zone measures 0.353 0.350 0.506 after the blur)
# with a paler centre (0.445 0.439 0.569 on average): a soft spot of its own size and place, lifting the ring toward
# the plasma by a share drawn from _FIELD_PALLOR, so cells differ as real ones do
_FIELD_RING = np.array([0.30, 0.295, 0.47])
_FIELD_PALLOR = (0.1, 0.5)
_FIELD_PALLOR_OFFSET = 0.4  # of the radius
_FIELD_PALLOR_SIZE = (0.35, 0.6)  # of the radius
_FIELD_CELL_SPREAD = 0.10  # cell-to-cell sd of the stain's absorbance (brightness sd 0.065 between cells)
_FIELD_AXIS_RATIO = (0.78, 0.96)  # short / long axis (median 0.85)
_FIELD_BLUR = 0.034  # gaussian sd of the optics' edge over the cell diameter (3.5 px at 104 px)
_FIELD_EDGE_INSET = 0.019  # the experts draw the mask ~2 px outside the stain's half-way edge (at 104 px)
_FIELD_LIGHT_SD = 0.015  # slow brightness change across the field (plasma whole sd 0.02, grain 0.008)
_FIELD_CELL_GRAIN = 0.019  # cells' grain sd 0.016 with the noise
_FIELD_NOISE = 0.008

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
    """A smear field and its cell mask (0 background, 1 cell), in the look of the project's RBC fields.

    Slightly oval violet cells with the dark ring and paler centre of a biconcave disc, each a little darker or
    lighter than the next, on grey-white plasma, with the optics' soft edge (``_FIELD_*``: measured).
    """
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    h, w = size
    img = np.ones((h, w, 3), np.float32) * _FIELD_PLASMA * rng.uniform(0.98, 1.02, 3)
    mask = np.zeros((h, w), np.uint8)
    r = 0.035 * min(h, w) + 10  # 52 px in a 1200-row field: cells ~104 px across, as in the real ones
    soft = _FIELD_BLUR * 2 * r  # the optics' edge spread and the masks' edge, in px, scale with the cells
    inset = _FIELD_EDGE_INSET * 2 * r
    n = int(density * h * w / (np.pi * r * r) * 0.555)
    for _ in range(n):  # each cell drawn on its own window, so a big field stays fast
        rr = r * rng.uniform(0.9, 1.17)
        q = rng.uniform(*_FIELD_AXIS_RATIO)
        a, b = rr / np.sqrt(q), rr * np.sqrt(q)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        y0, y1 = int(max(cy - a - 3, 0)), int(min(cy + a + 4, h))
        x0, x1 = int(max(cx - a - 3, 0)), int(min(cx + a + 4, w))
        if y1 <= y0 or x1 <= x0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        t = rng.uniform(0, np.pi)
        u, v = (yy - cy) * np.cos(t) + (xx - cx) * np.sin(t), -(yy - cy) * np.sin(t) + (xx - cx) * np.cos(t)
        rho = np.hypot(u / a, v / b)  # 1 on the ellipse
        sub_img, sub_mask = img[y0:y1, x0:x1], mask[y0:y1, x0:x1]
        disk = rho <= 1
        if (disk & (sub_mask > 0)).mean() > 0.02:
            continue  # mostly non-overlapping, like a good monolayer
        painted = rho <= 1 - inset / rr  # the stain's half-intensity edge lies a little inside the drawn mask
        # the pale centre: a soft spot of its own size and place, from absent to strong (cells differ more than
        # the mean profile shows), lifting the ring's colour toward the plasma's
        off, ang = rng.uniform(0, _FIELD_PALLOR_OFFSET) * rr, rng.uniform(0, 2 * np.pi)
        py, px = cy + off * np.sin(ang), cx + off * np.cos(ang)
        spot = np.exp(
            -((yy[painted] - py) ** 2 + (xx[painted] - px) ** 2) / (rng.uniform(*_FIELD_PALLOR_SIZE) * rr) ** 2
        )
        colour = _FIELD_RING + (_FIELD_PLASMA - _FIELD_RING) * (rng.uniform(*_FIELD_PALLOR) * spot)[:, None]
        sub_img[painted] = 1 - (1 - colour) * rng.normal(1, _FIELD_CELL_SPREAD)
        edge = disk & (rho > 1 - 1.2 / rr)
        sub_mask[disk & ~(edge & (sub_mask > 0))] = 1
        sub_mask[edge & (sub_mask > 0)] = 0  # touching cells stay apart in the mask
    img = ndi.gaussian_filter(img, (soft, soft, 0), mode="nearest")
    light = ndi.gaussian_filter(rng.normal(0, 1, (h // 16 + 1, w // 16 + 1)), 4, mode="nearest")
    light = np.kron(light / (light.std() + 1e-6), np.ones((16, 16)))[:h, :w]
    img *= 1 + _FIELD_LIGHT_SD * light[..., None]  # uneven illumination across the field
    cells = ndi.binary_erosion(mask > 0, iterations=2)
    img[cells] += _grain((h, w), rng, 1.0)[cells, None] * _FIELD_CELL_GRAIN
    img += rng.normal(0, _FIELD_NOISE, img.shape)
    return (img.clip(0, 1) * 255 + 0.5).astype(np.uint8), mask
