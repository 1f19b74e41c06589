import numpy as np
import pytest
import torch

from napari_bloodseg.data import synthetic_wbc
from napari_bloodseg.models import ModelCard, build_model
from napari_bloodseg.training.data import Sample
from napari_bloodseg.training.red_cells import cell_diameter, paste_red_cells
from napari_bloodseg.training.trainer import TrainConfig, _batch, fit


def _crop(seed=0, size=96):
    img, lab = synthetic_wbc(size, seed=seed)
    return torch.from_numpy(img).permute(2, 0, 1).float() / 255.0, torch.from_numpy(lab)


def test_red_cells_darken_only_background_and_absorb_green_most():
    img, lab = _crop()
    out = paste_red_cells(img, lab, np.random.default_rng(0))
    cell = lab > 0
    assert torch.equal(out[:, cell], img[:, cell])  # the white cell occludes them
    assert (out <= img + 1e-6).all()  # stained cells absorb light, never add it
    darker = (img - out)[:, ~cell]
    assert (darker.sum(0) > 0.05).float().mean() > 0.05  # a visible share of the background is covered
    assert darker[1].sum() > darker[0].sum()  # eosin: green absorbed more than red


def test_red_cells_scale_with_the_white_cell_and_need_one():
    img, lab = _crop()
    assert cell_diameter(lab) == pytest.approx(2 * np.sqrt(int((lab > 0).sum()) / np.pi))
    none = torch.zeros_like(lab)
    assert torch.equal(paste_red_cells(img, none, np.random.default_rng(0)), img)  # no cell: nothing to size by
    first, again = (paste_red_cells(img, lab, np.random.default_rng(1)) for _ in range(2))
    assert torch.equal(first, again)  # same generator, same cells (reproducible)
    # sized by the white cell, not in pixels: the same crop at twice the magnification is covered alike
    img2 = torch.nn.functional.interpolate(img[None], scale_factor=2)[0]
    lab2 = torch.nn.functional.interpolate(lab[None, None].float(), scale_factor=2)[0, 0].to(lab.dtype)
    cover = [
        (paste_red_cells(i, la, np.random.default_rng(s)) < i - 0.02).any(0).float().mean()
        for s in range(8)
        for i, la in ((img, lab), (img2, lab2))
    ]
    assert abs(np.mean(cover[1::2]) - np.mean(cover[0::2])) < 0.02  # fixed-size cells would cover ~1/4


def test_batch_pastes_only_on_background_when_asked():
    # the patch is the whole image (no crop, no scale): whatever rotation each item gets, its cell pixels keep
    # their colours and count, and only its background darkens
    img, lab = synthetic_wbc(96, seed=3)
    samples = [Sample("a", img, lab)]
    norm = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    plain = TrainConfig(patch_size=96, colour_strength=0.0, scale_range=(1.0, 1.0))
    pasted = TrainConfig(patch_size=96, colour_strength=0.0, scale_range=(1.0, 1.0), red_cells=1.0)
    x0, y0 = _batch(samples, [0, 0, 0], plain, np.random.default_rng(5), norm)
    x1, y1 = _batch(samples, [0, 0, 0], pasted, np.random.default_rng(5), norm)
    for i in range(3):
        assert torch.equal(torch.bincount(y1[i].flatten()), torch.bincount(y0[i].flatten()))
        cell0, cell1 = x0[i][:, y0[i] > 0], x1[i][:, y1[i] > 0]
        torch.testing.assert_close(cell1.mean(1), cell0.mean(1))
        assert x1[i][:, y1[i] == 0].mean() < x0[i][:, y0[i] == 0].mean() - 0.01


def test_fit_refuses_red_cells_for_the_red_cell_schema():
    img, lab = synthetic_wbc(48, seed=0)
    model = build_model("unet", num_classes=2, width=4, depth=2)
    card = ModelCard(name="r", config=model.config, schema="rbc")
    with pytest.raises(ValueError, match="WBC schema only"):
        fit(model, card, [Sample("a", img, (lab > 0).astype(np.uint8))], [], TrainConfig(epochs=1, red_cells=0.5))
