"""Tiny synthetic training sets: fast enough for a few optimiser steps in a unit test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_bloodseg.data import synthetic_wbc
from napari_bloodseg.io import write_mask
from napari_bloodseg.training import Sample


@pytest.fixture
def wbc_samples() -> list[Sample]:
    out = []
    for i in range(6):
        img, lab = synthetic_wbc(48, seed=i)
        out.append(Sample(f"{i:03d}", img, lab))
    return out


@pytest.fixture
def wbc_folder(tmp_path: Path) -> Path:
    """Dataset 1 layout: NNN.bmp + NNN.png (grey 0/128/255)."""
    from PIL import Image

    d = tmp_path / "wbc"
    d.mkdir()
    for i in range(6):
        img, lab = synthetic_wbc(48, seed=10 + i)
        Image.fromarray(img).save(d / f"{i:03d}.bmp")
        write_mask(d / f"{i:03d}.png", lab, "wbc")
    return d


def first_last_loss(history) -> tuple[float, float]:
    losses = [h.loss for h in history if np.isfinite(h.loss)]
    return losses[0], losses[-1]
