"""Fixtures for the ``bloodseg`` command-line tests: small synthetic datasets and models with known output."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from napari_bloodseg.data import synthetic_rbc, synthetic_wbc
from napari_bloodseg.io import write_mask
from napari_bloodseg.models import ModelCard, build_model, save_model


@pytest.fixture
def wbc_dir(tmp_path: Path) -> Path:
    """Dataset 1 layout: ``NNN.bmp`` images with ``NNN.png`` masks (0/128/255) in one folder; sizes differ."""
    d = tmp_path / "wbc"
    d.mkdir()
    for i, size in enumerate([(96, 96), (88, 116), (120, 120)], start=1):
        image, labels = synthetic_wbc(size, seed=i)
        Image.fromarray(image).save(d / f"{i:03d}.bmp")
        write_mask(d / f"{i:03d}.png", labels, "wbc")
    return d


@pytest.fixture
def rbc_dir(tmp_path: Path) -> Path:
    """RBC layout: ``<id>.jpg`` fields with ``<id>.png`` masks (0/255)."""
    d = tmp_path / "rbc"
    d.mkdir()
    for i in range(2):
        image, labels = synthetic_rbc((160, 200), seed=10 + i)
        Image.fromarray(image).save(d / f"field-{i}.jpg", quality=95)
        write_mask(d / f"field-{i}.png", labels, "rbc")
    return d


def save_constant_model(folder: Path, name: str, schema: str, label: int) -> Path:
    """A model that predicts ``label`` at every pixel (zero head weights, a large bias for that class)."""
    n = 3 if schema == "wbc" else 2
    torch.manual_seed(0)
    model = build_model("unet", num_classes=n, width=4).eval()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.bias[label] = 10.0
    save_model(model, ModelCard(name=name, config={}, schema=schema, description="constant test model"), folder / name)
    return folder / name


@pytest.fixture
def constant_models(tmp_model_dir: Path) -> Path:
    """User models ``all-cyto`` (WBC, everything cytoplasm) and ``all-cell`` (RBC, everything a cell)."""
    save_constant_model(tmp_model_dir, "all-cyto", "wbc", 1)
    save_constant_model(tmp_model_dir, "all-cell", "rbc", 1)
    return tmp_model_dir


def _assert_clean_error(err: str, *needles: str) -> None:
    """stderr holds one ``bloodseg: error:`` line per problem, each naming its needle, and never a traceback."""
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("bloodseg: error:")]
    assert len(lines) == len(needles), err
    for needle in needles:
        assert any(needle in ln for ln in lines), (needle, err)


@pytest.fixture
def clean_error():
    """``clean_error(stderr, *needles)``: see :func:`_assert_clean_error`."""
    return _assert_clean_error


@pytest.fixture
def constant_model():
    """``constant_model(folder, name, schema, label)``: see :func:`save_constant_model`."""
    return save_constant_model
