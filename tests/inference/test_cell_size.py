"""Cell size estimation: the diameter measure, the choice of rung, and the whole search with shipped models."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_bloodseg.inference.cell_size import (
    CellSizeError,
    estimate_cell_size,
    median_diameter,
    pick_scale,
    plateau_diameter,
)


def _discs(shape, centres, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = np.zeros(shape, np.uint8)
    for cy, cx in centres:
        out[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 1
    return out


def test_median_diameter_leaves_out_cut_cells_and_specks():
    labels = _discs((200, 200), [(50, 50), (50, 140), (140, 60)], 20)  # three whole cells, 40 px across
    labels[:30, 185:] = 2  # a big cell cut by the border (either class counts as cell)
    labels[120:122, 150:152] = 1  # a speck
    d, n = median_diameter(labels)
    assert n == 3 and d == pytest.approx(40, rel=0.03)


def test_median_diameter_uses_cut_cells_when_nothing_else_is_there():
    labels = _discs((100, 100), [(50, 0)], 30)  # half a cell on the left edge
    d, n = median_diameter(labels)
    assert n == 1 and d == pytest.approx(2 * math.sqrt(np.pi * 30**2 / 2 / np.pi), rel=0.05)
    assert median_diameter(np.zeros((10, 10), np.uint8)) == (None, 0)


def test_pick_scale_in_a_field_prefers_a_steady_fit_to_a_lucky_blob():
    # rung 0: blobs of merged cells whose size happens to fit the training size 100 at scale 0.25 (400 * 0.25),
    # but the measure jumps at the next rung; rungs 3-5 measure ~100 px steadily and fit at scale 1
    tried = [(0.25, 400.0), (0.4, 160.0), (0.6, 130.0), (0.8, 104.0), (1.0, 101.0), (1.25, 99.0)]
    assert abs(math.log(400 * 0.25 / 100)) < abs(math.log(101 * 1.0 / 100))  # a closer fit than the true rung
    assert pick_scale(tried, 100.0, crowded=True) == 4
    assert pick_scale(tried, 100.0) == 3  # a crop: the smallest steady fitting rung (the blob is not steady)
    assert pick_scale([(s, None) for s, _ in tried], 100.0) is None


def test_pick_scale_in_a_crop_prefers_the_whole_cell_to_its_nucleus():
    # a white cell 200 px across: at scale 0.4-0.5 the network sees it whole (80-98 px, near its training 100);
    # zoomed in to 1-1.25 it takes the 100 px nucleus for a cell, a steady reading that fits even better
    tried = [(0.4, 200.0), (0.5, 195.0), (0.8, 130.0), (1.0, 100.0), (1.25, 98.0)]
    assert pick_scale(tried, 100.0) == 0 and plateau_diameter(tried, 0) == pytest.approx(197.5)
    assert pick_scale(tried, 100.0, crowded=True) == 3  # a field takes the best fit: no nucleus there to fool it
    assert pick_scale([(0.3, 40.0), (0.5, 90.0)], 100.0) == 1  # no candidate: the best fit of all


def test_plateau_diameter_is_the_median_of_agreeing_neighbours():
    tried = [(0.5, 124.0), (0.63, 126.0), (0.8, 84.0)]  # the last rung split the cell: it does not agree
    assert plateau_diameter(tried, 1) == pytest.approx(125.0)
    assert plateau_diameter([(1.0, 80.0)], 0) == 80.0


@pytest.mark.parametrize(("size", "cell"), [((600, 800), 61), ((1200, 1600), 103)])
def test_estimate_finds_the_cell_size_of_synthetic_fields(size, cell):
    """rbc-deconvnet (trained on ~102 px cells) on synthetic fields whose masks say ~61 and ~103 px cells."""
    from napari_bloodseg.data import synthetic_rbc
    from napari_bloodseg.inference import Predictor
    from napari_bloodseg.models import get_model
    from napari_bloodseg.training.data import Sample, typical_cell_size

    image, labels = synthetic_rbc(size=size, seed=0)
    assert typical_cell_size([Sample("x", image, labels)]) == pytest.approx(cell, rel=0.05)
    model, card = get_model("rbc-deconvnet")
    calls = []
    predictor = Predictor(model, card, device="cpu")
    est = estimate_cell_size(predictor, image, progress=lambda d, t: calls.append((d, t)))
    assert est.diameter_px == pytest.approx(cell, rel=0.15)
    assert est.scale == predictor.scale_for_cell_size(est.diameter_px)  # 1 within the training's scale jitter
    assert (est.scale > 1.5) == (cell < 70)  # 61 px cells are enlarged to the ~100 px the model knows
    assert est.n_cells >= 5 and len(est.tried) == len(calls) and calls[-1][0] == calls[-1][1]


def test_estimate_refuses_what_it_cannot_measure(tiny_unet):
    from napari_bloodseg.inference import Cancelled, Predictor
    from napari_bloodseg.models import ModelCard

    image = np.full((64, 64, 3), 230, np.uint8)
    no_size = ModelCard(name="x", config=tiny_unet.config, schema="wbc")
    with pytest.raises(CellSizeError, match="no training cell size"):
        estimate_cell_size(Predictor(tiny_unet, no_size, device="cpu"), image)
    card = ModelCard(name="x", config=tiny_unet.config, schema="wbc", cell_size_px=40.0)
    with pytest.raises(Cancelled):
        estimate_cell_size(Predictor(tiny_unet, card, device="cpu"), image, cancel=lambda: True)


def test_estimate_says_when_no_cells_are_found(tiny_unet, monkeypatch):
    from napari_bloodseg.inference import Predictor, predict
    from napari_bloodseg.models import ModelCard

    real = predict.Predictor.predict

    def background_only(self, image, **kw):
        pred = real(self, image, **kw)
        pred.labels[:] = 0
        return pred

    monkeypatch.setattr(predict.Predictor, "predict", background_only)
    card = ModelCard(name="x", config=tiny_unet.config, schema="wbc", cell_size_px=40.0)
    with pytest.raises(CellSizeError, match="no cells found at any scale"):
        estimate_cell_size(Predictor(tiny_unet, card, device="cpu"), np.zeros((64, 64, 3), np.uint8))


def test_estimate_matches_the_expert_masks_of_dataset2(shared_data):
    """Dataset 2 white cells (~2.5x Dataset 1's in pixels) measured by wbc-unet, against their masks."""
    from napari_bloodseg.inference import Predictor
    from napari_bloodseg.models import get_model
    from napari_bloodseg.training import load_samples
    from napari_bloodseg.training.data import typical_cell_size

    model, card = get_model("wbc-unet")
    predictor = Predictor(model, card, device="cpu")
    for s in load_samples(shared_data / "wbc" / "dataset2-dev", "wbc")[:4]:
        est = estimate_cell_size(predictor, s.image)
        assert est.diameter_px == pytest.approx(typical_cell_size([s]), rel=0.15), s.name


def test_a_batch_is_measured_by_the_median_of_its_images(monkeypatch):
    """Up to max_images spread through the batch; images with nothing to measure are skipped."""
    from napari_bloodseg.inference import cell_size

    seen = []

    def fake(predictor, image, **kw):
        seen.append(image)
        if image is None:
            raise CellSizeError("no cells found at any scale")
        return cell_size.CellSizeEstimate(float(image), 1.0, 3, tried=[(1.0, float(image))])

    class FakePredictor:
        tta, edge_cells = False, "keep"  # already as the search runs it: used as it is

        def scale_for_cell_size(self, d):
            return 100.0 / d

    monkeypatch.setattr(cell_size, "estimate_cell_size", fake)
    images = [50, None, 60, 70, 80, 90, 100, 110, 120, 130, 140]
    est = cell_size.estimate_batch_cell_size(FakePredictor(), images, max_images=4)
    assert seen == [50, 70, 110, 140]  # first, last and evenly between (indices 0, 3, 7, 10)
    assert est.diameter_px == 90.0 and est.scale == pytest.approx(100 / 90) and est.n_images == 4 and est.n_cells == 12
    est = cell_size.estimate_batch_cell_size(FakePredictor(), [None, 60], max_images=8)
    assert est.diameter_px == 60.0 and est.n_images == 1
    with pytest.raises(CellSizeError, match="no cells found at any scale \\(in all 2 images\\)"):
        cell_size.estimate_batch_cell_size(FakePredictor(), [None, None])
    with pytest.raises(CellSizeError, match="no images"):
        cell_size.estimate_batch_cell_size(FakePredictor(), [])
