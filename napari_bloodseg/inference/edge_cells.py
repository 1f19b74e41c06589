"""Cells cut by the image edge: drop those that show less than a fraction of a typical cell.

Why: the RBC expert masks follow the counting convention of leaving out cells that the field edge cuts to a
sliver. On the 79 training + validation fields, of the edge cells the network finds, 0 % of those showing under a
quarter of a typical cell are labelled, 36 % of those showing a quarter to a half, 84 % at a half to three
quarters and 93-97 % above (``benchmarks/rbc_label_audit.py``). A model whose card sets
``edge_cell_min_fraction`` has its predictions follow the same rule.

Only strips along the four edges are read and written (a few cell diameters wide), so the rule runs on label
arrays of any size that slice like numpy, memory-mapped files included: a component that reaches the inner side
of its strip is large anyway and is kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: cell diameter (px) assumed when a model card does not know its own: sets the strip width only, since the
#: typical cell is measured in the image whenever it shows a few whole cells
DEFAULT_CELL_DIAMETER = 100.0
#: strips along the edges are this many cell diameters wide
STRIP_DIAMETERS = 2.5
#: with fewer whole cells than this inside the strips, the typical cell is a disc of the expected diameter
MIN_REFERENCE_CELLS = 5
#: specks below this fraction of the expected disc are not cells and do not count towards the typical cell
MIN_CELL_FRACTION = 0.2


def _strips(h: int, w: int, width: int) -> list[tuple[slice, slice, str]]:
    """(rows, cols, side of the image edge) for the four edge strips; they overlap in the corners."""
    width = max(1, min(width, h, w))
    return [
        (slice(0, width), slice(0, w), "top"),
        (slice(h - width, h), slice(0, w), "bottom"),
        (slice(0, h), slice(0, width), "left"),
        (slice(0, h), slice(w - width, w), "right"),
    ]


def _touch(box: tuple[slice, slice], shape: tuple[int, int], side: str) -> bool:
    rows, cols = box
    return {
        "top": rows.start == 0,
        "bottom": rows.stop == shape[0],
        "left": cols.start == 0,
        "right": cols.stop == shape[1],
    }[side]


_INNER = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}


def check_min_fraction(value: Any, what: str = "min_fraction") -> float:
    """``value`` as the rule's fraction, strictly between 0 and 1: the one check for the Predictor, training
    cards and the CLI."""
    try:
        fraction = float(value)
    except (TypeError, ValueError):
        fraction = float("nan")
    if not 0 < fraction < 1:
        raise ValueError(f"{what} must be a fraction between 0 and 1, not {value!r}")
    return fraction


def drop_partial_edge_cells(labels: Any, cell_diameter: float, min_fraction: float) -> int:
    """Set to 0 every cell (connected foreground, any label > 0) that touches the image edge and covers less
    than ``min_fraction`` of a typical cell. ``labels`` is changed in place; returns how many cells were dropped.

    The typical cell is the median area of the whole cells found inside the edge strips (at least
    :data:`MIN_REFERENCE_CELLS` of them; else a disc of ``cell_diameter`` px); ``cell_diameter`` also sets the
    strip width.
    """
    from scipy import ndimage as ndi

    min_fraction = check_min_fraction(min_fraction)
    if not cell_diameter or cell_diameter <= 0:
        raise ValueError(f"cell_diameter must be positive, not {cell_diameter}")
    h, w = (int(s) for s in labels.shape[:2])
    strips = []
    for rows, cols, side in _strips(h, w, int(np.ceil(STRIP_DIAMETERS * cell_diameter))):
        fg = np.asarray(labels[rows, cols]) > 0
        comps, n = ndi.label(fg)
        boxes = ndi.find_objects(comps)
        areas = np.bincount(comps.ravel(), minlength=n + 1)[1:]
        strips.append((rows, cols, side, comps, boxes, areas))
    # the typical cell: whole cells that touch no side of any strip (so neither the image edge nor a cut)
    disc = np.pi / 4 * cell_diameter**2
    whole = [
        a
        for *_, comps, boxes, areas in strips
        for box, a in zip(boxes, areas, strict=True)
        if a >= MIN_CELL_FRACTION * disc
        and not any(_touch(box, comps.shape, s) for s in ("top", "bottom", "left", "right"))
    ]
    typical = float(np.median(whole)) if len(whole) >= MIN_REFERENCE_CELLS else disc
    dropped = 0
    for rows, cols, side, comps, boxes, areas in strips:
        for i, (box, area) in enumerate(zip(boxes, areas, strict=True), 1):
            # on the image edge, inside the strip (so its area is all there), and small
            if not _touch(box, comps.shape, side) or area >= min_fraction * typical:
                continue
            if _touch(box, comps.shape, _INNER[side]) and comps.shape != (h, w):
                continue
            region = (
                slice(rows.start + box[0].start, rows.start + box[0].stop),
                slice(cols.start + box[1].start, cols.start + box[1].stop),
            )
            patch = np.array(labels[region])
            cell = comps[box] == i
            if patch[cell].any():  # not already cleared from an overlapping corner strip
                patch[cell] = 0
                labels[region] = patch
                dropped += 1
    return dropped
