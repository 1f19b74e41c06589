"""Estimating the cell size of an image, so a user need not know the magnification.

A network segments well only near the cell size it was trained on (the card's ``cell_size_px``), and a new
lab's images rarely say theirs: Dataset 2's white cells are ~2.2x Dataset 1's in pixels, a 60 px red cell is
half ``rbc-deconvnet``'s. Cellpose answers with a regression model of its own; here the segmentation model
measures itself. The image (a central window of it) is segmented at a ladder of scales; at each, the cells
found give a median diameter ``d`` in the image's pixels, and a scale where ``d * scale`` is near the training
size, with ``d`` steady across the neighbouring scales, is one at which the network saw cells of its own size, so
``d`` there is trusted (its median with the neighbours that agree; :func:`pick_scale` says which). Test-time
augmentation and the edge-cell rule are off for the search, and cells touching the window's edge are left out of
``d`` (cut).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: scales tried, as multiples of 1: cells from ~0.4x to ~4x the training size (Dataset 2 on a Dataset 1 model:
#: 0.45; a 60 px red cell on rbc-deconvnet: 1.7)
SEARCH_SCALES: tuple[float, ...] = tuple(float(s) for s in np.geomspace(0.25, 2.5, 11))
#: the search reads at most this many image pixels per side (a central window: a slide is never read whole)
MAX_WINDOW = 1536
#: and gives the network at most this many pixels per side at any scale of the ladder
MAX_NETWORK_SIDE = 1024
#: images measured for a batch's cell size (``estimate_batch_cell_size``)
MAX_BATCH_IMAGES = 8
#: a component's diameter is at most this times its largest inscribed circle's (clumps of touching cells)
CLUMP_CAP = 1.15
#: a rung is a candidate when ``d * scale`` is within this factor of the training size ...
FIT = 1.4
#: ... and a neighbouring rung measures the same cells within this factor (steady, not a scale artefact)
STEADY = 1.2


class CellSizeError(ValueError):
    """No cell size could be measured (no cells found at any scale, or the model knows no training size)."""


@dataclass
class CellSizeEstimate:
    diameter_px: float  #: typical cell diameter in the image's pixels (median equivalent diameter)
    #: the ``scale`` for ``Predictor.predict`` that brings these cells to the model's training size (1 when they
    #: are within its training's scale jitter already: ``Predictor.scale_for_cell_size``)
    scale: float
    n_cells: int  #: whole cells the final measure rests on
    n_images: int = 1  #: images measured (the median of their diameters, for a batch)
    tried: list[tuple[float, float | None]] = field(default_factory=list)  #: (scale, diameter or None) searched


def median_diameter(labels: np.ndarray, clumps: bool = False) -> tuple[float | None, int]:
    """Median cell diameter over the foreground components that do not touch the border, and their count.

    A component's diameter is its equivalent diameter (as :func:`~napari_bloodseg.training.data.
    typical_cell_size` measures the card's size). With ``clumps`` (red-cell fields, where touching cells form
    one component) it is capped at :data:`CLUMP_CAP` times the component's largest inscribed circle, so a clump
    counts as its biggest cell rather than by its area (a round cell's two diameters agree; white cells, one to
    a crop, are left uncapped: their lobes and ragged cytoplasm would be cut short). Specks under a tenth of the
    largest component are ignored; if every component touches the border, those are used.
    """
    from scipy import ndimage as ndi

    fg = labels > 0
    lab, n = ndi.label(fg)
    if n == 0:
        return None, 0
    index = np.arange(1, n + 1)
    areas = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    diameters = 2 * np.sqrt(areas / np.pi)
    if clumps:
        inscribed = 2 * np.asarray(ndi.maximum(ndi.distance_transform_edt(fg), lab, index))
        diameters = np.minimum(diameters, CLUMP_CAP * inscribed)
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    inside = np.ones(n, bool)
    inside[edge[edge > 0] - 1] = False
    big = areas >= 0.1 * areas.max()
    chosen = big & inside if (big & inside).any() else big
    return float(np.median(diameters[chosen])), int(chosen.sum())


def central_window(image: Any, side: int) -> np.ndarray:
    """The central ``side`` x ``side`` part of an (H, W, 3) array-like, read by slicing (lazy sources stay lazy)."""
    h, w = image.shape[:2]
    y0, x0 = max((h - side) // 2, 0), max((w - side) // 2, 0)
    return np.asarray(image[y0 : y0 + min(side, h), x0 : x0 + min(side, w)])


def estimate_cell_size(
    predictor,
    image: Any,
    *,
    scales: tuple[float, ...] = SEARCH_SCALES,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> CellSizeEstimate:
    """Typical cell diameter of ``image`` (pixels) and the scale that suits ``predictor``'s model.

    ``predictor`` is a :class:`~napari_bloodseg.inference.Predictor` whose card records ``cell_size_px``;
    ``progress(done, total)`` is called after each of the ``len(scales)`` passes; ``cancel()`` stops between
    passes (raises :class:`~napari_bloodseg.inference.Cancelled`).
    """
    from ..cancellation import Cancelled

    card = predictor.card
    trained = card.cell_size_px if card is not None else None
    if not trained:
        raise CellSizeError("this model's card records no training cell size: set a scale instead")
    quick = _search_predictor(predictor)
    crowded = card.schema == "rbc"  # smear fields of touching red cells, not crops of one white cell
    base = np.asarray(central_window(image, MAX_WINDOW))

    def measure(scale: float) -> tuple[float | None, int]:
        # enough of the window that the network input stays bounded at this scale (cells are ~trained/scale px)
        side = max(int(MAX_NETWORK_SIDE / (scale * quick.input_scale)), 16)
        window = central_window(base, side)
        if min(window.shape[:2]) * scale * quick.input_scale < 16:
            return None, 0  # too small to segment at this scale
        return median_diameter(quick.predict(window, scale=scale).labels, clumps=crowded)

    tried: list[tuple[float, float | None]] = []
    counts: list[int] = []
    for i, scale in enumerate(scales):
        if cancel is not None and cancel():
            raise Cancelled("cell size estimation cancelled")
        diameter, n = measure(scale)
        tried.append((scale, diameter))
        counts.append(n)
        if progress is not None:
            progress(i + 1, len(scales))
    best = pick_scale(tried, trained, crowded)
    if best is None:
        raise CellSizeError(f"no cells found at any scale from {min(scales):.2f} to {max(scales):.2f}")
    diameter = plateau_diameter(tried, best)
    return CellSizeEstimate(diameter, predictor.scale_for_cell_size(diameter), counts[best], tried=tried)


def _search_predictor(predictor):
    """``predictor`` as the search runs it: no test-time augmentation, every cell kept (itself if it is so)."""
    from .predict import Predictor

    if predictor.tta is False and predictor.edge_cells == "keep":
        return predictor
    return Predictor(
        predictor.model,
        predictor.card,
        device=predictor.device,
        tile_size=predictor.tile_size,
        tta=False,
        edge_cells="keep",
    )


def estimate_batch_cell_size(
    predictor,
    images: Sequence[Any],
    *,
    max_images: int = MAX_BATCH_IMAGES,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> CellSizeEstimate:
    """The cell size of a batch of images taken at one magnification: the median over up to ``max_images`` of
    them, spread evenly through the batch.

    One cell is a poor gauge of magnification (a lymphocyte is half a monocyte across: Dataset 1's training
    crops range 55-88 px, 5th to 95th percentile), and rescaling each crop to the training median would undo
    what the network learnt about sizes; a batch median measures the magnification. Images with no cells to
    measure are skipped (:class:`CellSizeError` only if none has any); ``progress`` counts images.
    """
    if not len(images):
        raise CellSizeError("no images to measure")
    k = min(max_images, len(images))
    picks = sorted({round(i * (len(images) - 1) / max(k - 1, 1)) for i in range(k)})
    results, reasons = [], []
    quick = _search_predictor(predictor)  # built once for the whole batch
    for done, i in enumerate(picks, start=1):
        try:
            results.append(estimate_cell_size(quick, images[i], cancel=cancel))
        except CellSizeError as exc:
            reasons.append(str(exc))
        if progress is not None:
            progress(done, len(picks))
    if not results:
        raise CellSizeError(reasons[0] if len(reasons) == 1 else f"{reasons[0]} (in all {len(reasons)} images)")
    diameter = float(np.median([r.diameter_px for r in results]))
    tried = results[0].tried if len(results) == 1 else []
    n_cells = sum(r.n_cells for r in results)
    scale = predictor.scale_for_cell_size(diameter)
    return CellSizeEstimate(diameter, scale, n_cells, n_images=len(results), tried=tried)


def _jump(a: float | None, b: float) -> float:
    """How much a measured diameter changes from one rung of the ladder to the next (no cells there: a lot)."""
    return abs(math.log(a / b)) if a else math.log(2.0)


def pick_scale(tried: list[tuple[float, float | None]], trained: float, crowded: bool = False) -> int | None:
    """Index of the rung where the network saw cells of its training size, and saw them steadily.

    Candidates: rungs where ``d * scale`` is within :data:`FIT` of ``trained`` and a neighbouring rung measures
    the same within :data:`STEADY` (a cell does not change size with the scale it is looked at; an artefact of
    the scale does). Which candidate depends on what can go wrong. In a crop of one white cell, zooming in too
    far makes a network trained on whole cells take the nucleus or a lobe for a cell of its own size (a
    Dataset 2 cell at scale 1 has a Dataset 1-sized nucleus), a reading as steady as the true one, while zooming
    out cannot merge the one cell with anything: the smallest candidate scale wins. In a ``crowded`` field of
    red cells, zooming out merges neighbours into blobs that can happen to fit: the candidate that fits best
    (mismatch plus half its mean jump to the neighbours) wins. With no candidate, the best fit of all rungs.
    """
    best, best_cost, best_is_candidate = None, math.inf, False
    for i, (scale, d) in enumerate(tried):
        if not d:
            continue
        neighbours = [tried[j][1] for j in (i - 1, i + 1) if 0 <= j < len(tried)]
        mismatch = abs(math.log(d * scale / trained))
        candidate = mismatch < math.log(FIT) and any(_jump(n, d) < math.log(STEADY) for n in neighbours)
        if candidate and not crowded:
            return i
        cost = mismatch + 0.5 * sum(_jump(n, d) for n in neighbours) / max(len(neighbours), 1)
        if (candidate, -cost) > (best_is_candidate, -best_cost):
            best, best_cost, best_is_candidate = i, cost, candidate
    return best


def plateau_diameter(tried: list[tuple[float, float | None]], best: int) -> float:
    """Median diameter over the chosen rung and those next to it that agree with it within :data:`STEADY`."""
    d0 = tried[best][1]
    assert d0 is not None
    near = [d for j in (best - 1, best, best + 1) if 0 <= j < len(tried) and (d := tried[j][1])]
    return float(np.median([d for d in near if abs(math.log(d / d0)) < math.log(STEADY)]))
