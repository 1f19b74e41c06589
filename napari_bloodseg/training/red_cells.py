"""Synthetic red cells pasted around white cells: teaches a WBC network that red cells are background.

Dataset 1 crops show red cells only as pale outlines, so a network trained on them paints the filled,
stained red cells of other smears (Dataset 2, whole smear fields) as cytoplasm where they touch the white
cell. Here each pasted cell is a soft-edged ellipse that absorbs light like a stained red cell (Beer-Lambert:
the background is multiplied by a per-channel transmittance, most absorbed in green), with a random central
pallor, drawn only on background pixels, so the white cell occludes it as on a slide. Labels do not change:
a red cell is background in the WBC schema.
"""

from __future__ import annotations

import numpy as np
import torch

#: red-cell diameter as a fraction of the white cell's (human: ~7.5 µm against 10-15 µm)
DIAMETER_RATIO = (0.4, 0.75)
#: cells per pasted image
COUNT = (2, 7)


def cell_diameter(labels: torch.Tensor) -> float:
    """Equivalent diameter of the labelled cell (classes 1 and 2), 0 when there is none."""
    area = int(((labels == 1) | (labels == 2)).sum())
    return float(2 * np.sqrt(area / np.pi))


def paste_red_cells(image: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """``image`` (3,H,W) in [0, 1] with red cells drawn on its background (``labels == 0``) pixels."""
    d = cell_diameter(labels)
    if d < 4:
        return image
    _, h, w = image.shape
    absorb = torch.zeros(3, h, w)
    for _ in range(int(rng.integers(*COUNT))):
        r = 0.5 * d * rng.uniform(*DIAMETER_RATIO)
        cy, cx = rng.uniform(-0.5 * r, h + 0.5 * r), rng.uniform(-0.5 * r, w + 0.5 * r)
        angle, squash = rng.uniform(0, np.pi), rng.uniform(0.85, 1.0)
        pallor_max, depth = rng.uniform(0.0, 0.7), rng.uniform(0.25, 1.0)
        # optical density per channel: green most, then blue, red least (eosin-stained haemoglobin)
        od = depth * np.array([rng.uniform(0.05, 0.2), rng.uniform(0.25, 0.6), rng.uniform(0.1, 0.4)])
        # only the cell's bounding box (the soft edge ends 0.75 px outside the rim): the rest stays untouched
        y0, y1 = max(int(cy - r - 2), 0), min(int(cy + r + 3), h)
        x0, x1 = max(int(cx - r - 2), 0), min(int(cx + r + 3), w)
        if y0 >= y1 or x0 >= x1:
            continue
        yy = torch.arange(y0, y1, dtype=torch.float32)[:, None] - cy
        xx = torch.arange(x0, x1, dtype=torch.float32)[None, :] - cx
        c, s = np.cos(angle), np.sin(angle)
        u, v = (xx * c + yy * s) / r, (-xx * s + yy * c) / (r * squash)
        rho = torch.sqrt(u * u + v * v)  # 1 on the rim
        alpha = ((1 - rho) * r / 1.5 + 0.5).clamp(0, 1)  # ~1.5 px soft edge
        profile = alpha * (1 - pallor_max * torch.exp(-((rho / 0.45) ** 2)))  # paler centre
        box = absorb[:, y0:y1, x0:x1]
        absorb[:, y0:y1, x0:x1] = torch.maximum(box, torch.as_tensor(od, dtype=torch.float32).view(3, 1, 1) * profile)
    background = (labels == 0).to(image.dtype)
    return image * torch.exp(-absorb * background)
