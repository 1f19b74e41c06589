"""Augmentation for smears: dihedral flips/rotations, scale jitter, stain/colour jitter, and optional free
rotation with elastic deformation.

Cells have no preferred orientation, so all 8 dihedral transforms are free data. Stains differ between labs
(yellowish Dataset 1 vs purple Dataset 2), so colour jitter mixes channels, not only brightness. Smooth
elastic deformations were U-Net's own answer to few training images (Ronneberger et al. 2015).
"""

from __future__ import annotations

import math

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


def random_warp(
    images: torch.Tensor, labels: torch.Tensor, strength: float, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Free rotation plus a smooth elastic deformation of a batch ((N,3,H,W), (N,H,W)), one ``grid_sample``.

    The displacement is a 5x5 grid of Gaussian offsets (standard deviation ``4 * strength`` px) upsampled
    bicubically. Images are sampled bilinearly with reflection at the border; labels by nearest neighbour,
    and pixels whose source lies outside the patch become IGNORE_INDEX (no invented labels)."""
    if strength <= 0:
        return images, labels
    n, _, h, w = images.shape
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    angle = torch.rand(n, generator=gen) * (2 * math.pi)
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros(n)
    theta = torch.stack([torch.stack([cos, -sin * h / w, zero], 1), torch.stack([sin * w / h, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, [n, 3, h, w], align_corners=False)
    coarse = torch.randn(n, 2, 5, 5, generator=gen) * (4.0 * strength)
    coarse = coarse * torch.tensor([2.0 / w, 2.0 / h]).view(1, 2, 1, 1)  # px -> normalised coordinates
    grid = grid + F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    lab = F.grid_sample(labels[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    inside = F.grid_sample(torch.ones(n, 1, h, w), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    lab = torch.where(inside > 0.5, lab, float(IGNORE_INDEX))[:, 0].round().to(labels.dtype)
    return out, lab
