"""Augmentation for smears: dihedral flips/rotations, scale jitter, and stain/colour jitter.

Cells have no preferred orientation, so all 8 dihedral transforms are free data. Stains differ between labs
(yellowish Dataset 1 vs purple Dataset 2), so colour jitter mixes channels, not only brightness.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..schemas import IGNORE_INDEX


def random_crop_pad(
    image: torch.Tensor, labels: torch.Tensor, size: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop (3,H,W)/(H,W) to size×size at a random place; pad short sides (image reflect, labels ignored)."""
    _, h, w = image.shape
    ph, pw = max(size - h, 0), max(size - w, 0)
    if ph or pw:
        top, left = int(rng.integers(0, ph + 1)), int(rng.integers(0, pw + 1))
        pad = (left, pw - left, top, ph - top)
        mode = "reflect" if ph < h and pw < w else "replicate"
        image = F.pad(image[None], pad, mode=mode)[0]
        labels = F.pad(labels[None, None].float(), pad, value=IGNORE_INDEX)[0, 0].to(labels.dtype)
        h, w = image.shape[1:]
    y0, x0 = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return image[:, y0 : y0 + size, x0 : x0 + size], labels[y0 : y0 + size, x0 : x0 + size]


def scale_jitter(
    image: torch.Tensor, labels: torch.Tensor, lo: float, hi: float, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    s = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    if abs(s - 1) < 0.02:
        return image, labels
    h, w = image.shape[1:]
    size = (max(int(round(h * s)), 8), max(int(round(w * s)), 8))
    image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=s < 1)[0]
    labels = F.interpolate(labels[None, None].float(), size=size, mode="nearest")[0, 0].to(labels.dtype)
    return image, labels


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """One of the 8 rotations/flips of the last two dims (k in 0..7)."""
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, dims=(-2, -1))


def colour_jitter(batch: torch.Tensor, strength: float, rng: np.random.Generator) -> torch.Tensor:
    """Per-image channel mixing, gain/offset, gamma and saturation on (N,3,H,W) in [0,1]."""
    if strength <= 0:
        return batch
    n = batch.shape[0]
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    mix = torch.eye(3) + strength * 0.10 * torch.randn(n, 3, 3, generator=gen)
    out = torch.einsum("nij,njhw->nihw", mix, batch)
    gain = 1 + strength * 0.10 * torch.randn(n, 3, 1, 1, generator=gen)
    offset = strength * 0.05 * torch.randn(n, 3, 1, 1, generator=gen)
    out = out * gain + offset
    grey = out.mean(1, keepdim=True)
    sat = 1 + strength * 0.25 * torch.randn(n, 1, 1, 1, generator=gen)
    out = grey + (out - grey) * sat
    gamma = torch.exp(strength * 0.15 * torch.randn(n, 1, 1, 1, generator=gen))
    out = out.clamp(1e-4, 1) ** gamma
    noise = strength * 0.01 * torch.rand(n, 1, 1, 1, generator=gen) * torch.randn(out.shape, generator=gen)
    return (out + noise).clamp(0, 1)
