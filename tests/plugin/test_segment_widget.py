"""Segment widget end to end: image layer → worker thread → schema Labels layer; rerun, cancel, responsiveness."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_bloodseg.schemas import WBC

TILE = 128  # the 96 px test crop is one tile: each run takes well under a second on CPU


def _choose(widget, *, model: str = "unet", tile: int | None = TILE) -> None:
    """Model, CPU and tile size (None: left as it is), as a person sets them before pressing Segment."""
    widget.set_model(model)
    widget.set_device("cpu")
    if tile is not None:
        widget.tile_spin.setValue(tile)


def _segment(widget, wait_idle, *, model: str = "unet", tile: int = TILE) -> None:
    _choose(widget, model=model, tile=tile)
    assert widget.run() is not None
    wait_idle(widget)


def _run_until_tiles_are_done(widget, qtbot) -> None:
    """Start a run and wait until it is really mid-run: the progress bar has moved."""
    widget.run()
    qtbot.waitUntil(lambda: widget.progress.value() > 0, timeout=30_000)


def _cancel(widget, wait_idle) -> None:
    widget.cancel()
    wait_idle(widget, timeout=30_000)


def _labels(viewer) -> list[str]:
    """Names of the Labels layers, bottom to top."""
    return [layer.name for layer in viewer.layers if layer.__class__.__name__ == "Labels"]


def _add_noise(viewer, name: str, size: int, seed: int = 0):
    """A ``size`` x ``size`` RGB image of random pixels: many tiles, slow enough to catch mid-run."""
    rng = np.random.default_rng(seed)
    return viewer.add_image(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), name=name, rgb=True)


@pytest.fixture
def cell_widget(viewer, dock, wbc_pair):
    """The Segment widget, opened with the small WBC crop ``wbc_pair[0]`` open as "cell"."""
    viewer.add_image(wbc_pair[0], name="cell", rgb=True)
    return dock("Segment")


@pytest.fixture
def held_forward(monkeypatch):
    """Every network pass waits for ``release`` after setting ``entered``: (entered, release). The test acts while
    an image is in the network, then sets ``release``."""
    import threading

    from napari_bloodseg.inference import Predictor

    entered, release = threading.Event(), threading.Event()
    real_forward = Predictor._forward

    def forward(self, tiles, tta=False):
        entered.set()
        release.wait(30)
        return real_forward(self, tiles, tta)

    monkeypatch.setattr(Predictor, "_forward", forward)
    yield entered, release
    release.set()  # a test that failed mid-run leaves no worker waiting


def _reference(image: np.ndarray, tile: int = TILE) -> np.ndarray:
    """What the core library says for the same model, device and tiling."""
    from napari_bloodseg.inference import Predictor
    from napari_bloodseg.models import get_model

    model, card = get_model("unet")
    return Predictor(model, card, device="cpu", tile_size=tile, overlap=min(64, tile // 4)).predict(image).labels


def test_segment_makes_schema_labels_layer(viewer, cell_widget, wait_idle, wbc_pair):
    from napari.layers import Labels
    from napari.utils.colormaps import DirectLabelColormap

    image, widget = wbc_pair[0], cell_widget
    _segment(widget, wait_idle)

    assert widget.last_status == "done"
    assert [layer.name for layer in viewer.layers] == ["cell", "cell [unet]"]
    layer = viewer.layers["cell [unet]"]
    assert isinstance(layer, Labels)
    assert layer.data.shape == image.shape[:2]
    assert layer.data.dtype == np.uint8
    assert set(np.unique(layer.data)) <= {0, 1, 2}
    np.testing.assert_array_equal(layer.data, _reference(image))

    # the schema's fixed colours and class names, and what the other widgets need to know
    assert isinstance(layer.colormap, DirectLabelColormap)
    for value, rgba in enumerate(WBC.colors[1:], start=1):
        np.testing.assert_allclose(layer.colormap.map(np.array([value]))[0], np.array(rgba) / 255, atol=1e-6)
    assert list(layer.features["class"]) == [*WBC.class_names, "unlabelled"]
    info = layer.metadata["bloodseg"]
    assert (info["schema"], info["role"], info["source"], info["model"]) == ("wbc", "prediction", "cell", "unet")
    assert info["corrected"] is False
    # napari's status bar names the class under the cursor
    y, x = np.argwhere(layer.data == layer.data[48, 48])[0]
    assert f"class: {WBC.class_names[layer.data[y, x]]}" in str(layer.get_status((y, x)))
    # the label says what really ran
    assert widget.device_used.text() == info["device"]
    assert widget.device_used.text().startswith("cpu")
    assert widget.progress.value() == widget.progress.maximum()


def test_segment_pressed_before_the_device_probe_has_looked(viewer, dock, wait_idle, wbc_pair, probe_running):
    """The widget opens before torch is loaded (a thread looks for the devices); a run needs nothing from that look:
    its worker resolves the device itself."""
    viewer.add_image(wbc_pair[0], name="cell", rgb=True)
    widget = dock("Segment")
    assert widget.device_combo.probe is None and widget.device_combo.device() == "auto"
    widget.set_model("unet")
    widget.tile_spin.setValue(TILE)
    assert widget.run() is not None
    wait_idle(widget)
    assert widget.last_status == "done", widget.status.text()
    assert widget.device_used.text().startswith(("cpu", "cuda", "mps"))
    assert widget.device_combo.probe is None  # the run did not wait for it


def test_rerun_updates_layer_reuses_predictor_and_spares_corrected(
    viewer, cell_widget, wait_idle, wbc_pair, monkeypatch
):
    import napari_bloodseg.models as models
    from napari_bloodseg.plugin.editing import set_corrected

    loads = []
    real_get_model = models.get_model
    monkeypatch.setattr(models, "get_model", lambda *a, **k: loads.append(a) or real_get_model(*a, **k))

    image, widget = wbc_pair[0], cell_widget
    _segment(widget, wait_idle)
    layer = viewer.layers["cell [unet]"]
    first = layer.data.copy()
    predictor = next(iter(widget._predictors.values()))

    # a rerun replaces the data of the same layer (here: something else put there) and adds no copy
    layer.data = ((first + 1) % 3).astype(np.uint8)
    widget.uncertainty_check.setChecked(True)
    _segment(widget, wait_idle)
    assert viewer.layers["cell [unet]"] is layer
    np.testing.assert_array_equal(layer.data, first)
    assert len(loads) == 1, "weights must load once per (model, device, tile)"
    assert list(widget._predictors.values()) == [predictor]

    unc = viewer.layers["cell [unet] uncertainty"]
    assert unc.data.shape == image.shape[:2]
    assert unc.data.dtype == np.float32
    assert 0.0 <= float(unc.data.min()) and float(unc.data.max()) <= 1.0 - 1.0 / 3 + 1e-3

    # "new layer" keeps the earlier result
    widget.new_layer_check.setChecked(True)
    widget.uncertainty_check.setChecked(False)
    _segment(widget, wait_idle)
    assert _labels(viewer) == ["cell [unet]", "cell [unet] [1]"]
    assert "cell [unet] uncertainty" in viewer.layers  # it still describes the layer it was made with

    # a rerun into the same layer without an uncertainty layer removes the old one, which no longer fits
    widget.new_layer_check.setChecked(False)
    _segment(widget, wait_idle)
    assert "cell [unet] uncertainty" not in viewer.layers

    # a layer marked corrected is never overwritten: the new result goes to the untouched earlier result of the
    # same image and model ("cell [unet] [1]"), and with none left untouched, to a new layer
    layer.data = ((first + 1) % 3).astype(np.uint8)  # set by a script, not painted
    changed = layer.data.copy()
    set_corrected(layer, True)
    spare = viewer.layers["cell [unet] [1]"]
    spare.data = np.zeros_like(spare.data)
    _segment(widget, wait_idle)
    np.testing.assert_array_equal(layer.data, changed)
    np.testing.assert_array_equal(spare.data, first)
    assert len(_labels(viewer)) == 2
    set_corrected(spare, True)
    _segment(widget, wait_idle)
    np.testing.assert_array_equal(layer.data, changed)
    assert len(_labels(viewer)) == 3


def test_rerun_places_the_result_where_the_image_is_now(viewer, cell_widget, wait_idle):
    """A re-run into the earlier result layer kept that layer's old scale and translate: after the image layer was
    rescaled or moved, the new labels lay beside the cell they describe."""
    cell_widget.uncertainty_check.setChecked(True)
    _segment(cell_widget, wait_idle)
    image = viewer.layers["cell"]
    image.scale, image.translate = (0.5, 0.5), (10.0, -4.0)
    _segment(cell_widget, wait_idle)
    for name in ("cell [unet]", "cell [unet] uncertainty"):
        np.testing.assert_allclose(viewer.layers[name].scale, image.scale)
        np.testing.assert_allclose(viewer.layers[name].translate, image.translate)


def test_rerun_keeps_hand_edits_that_were_not_marked_corrected(viewer, cell_widget, wait_idle, notes):
    widget = cell_widget
    _segment(widget, wait_idle)
    layer = viewer.layers["cell [unet]"]
    assert layer.metadata["bloodseg"]["edited"] is False

    layer.paint((10, 10), 2, refresh=True)  # napari's brush, as a person paints; not marked corrected
    painted = layer.data.copy()
    assert layer.metadata["bloodseg"]["edited"] is True
    _segment(widget, wait_idle)
    np.testing.assert_array_equal(viewer.layers["cell [unet]"].data, painted)
    fresh = viewer.layers[-1]
    assert fresh is not layer and fresh.name.startswith("cell [unet]")
    assert fresh.metadata["bloodseg"]["edited"] is False
    assert any("has hand edits" in msg for msg in notes.of("info"))

    # the fresh layer is the network's own until painted: the next run updates it, not a third layer
    n_labels = len(_labels(viewer))
    fresh.data = np.zeros_like(fresh.data)  # set by a script: not an edit
    _segment(widget, wait_idle)
    assert len(_labels(viewer)) == n_labels
    assert fresh.data.any()
    np.testing.assert_array_equal(layer.data, painted)


def test_chosen_images_only_and_different_sizes(viewer, dock, wait_idle):
    from napari_bloodseg.data import synthetic_wbc

    a, _ = synthetic_wbc(size=96, seed=1)
    b, _ = synthetic_wbc(size=(64, 80), seed=2)
    viewer.add_image(a, name="a", rgb=True)
    viewer.add_image(b, name="b", rgb=True)
    widget = dock("Segment")
    assert widget.all_images.isChecked()
    _segment(widget, wait_idle)
    assert viewer.layers["a [unet]"].data.shape == (96, 96)
    assert viewer.layers["b [unet]"].data.shape == (64, 80)

    widget.select_images(["b"])
    _segment(widget, wait_idle)
    assert [layer.name for layer in widget.last_layers] == ["b [unet]"]


def test_cancel_mid_run_adds_nothing_and_changes_nothing(viewer, dock, wait_idle, qtbot):
    _add_noise(viewer, "big", 1024)
    earlier = viewer.add_labels(np.full((1024, 1024), 2, np.uint8), name="big [unet]")
    before = [layer.name for layer in viewer.layers]
    widget = dock("Segment")
    _choose(widget, tile=256)
    widget.uncertainty_check.setChecked(True)

    _run_until_tiles_are_done(widget, qtbot)
    assert widget.running and widget.cancel_btn.isEnabled()
    _cancel(widget, wait_idle)

    assert widget.last_status == "cancelled"
    assert "Cancelled" in widget.status.text()
    assert [layer.name for layer in viewer.layers] == before
    assert np.all(earlier.data == 2)
    assert widget.run_btn.isEnabled() and not widget.cancel_btn.isEnabled()


def _cancel_at_tile(monkeypatch, widget, n: int) -> list[int]:
    """Press Cancel from inside the ``n``-th network pass (worker thread): no race with the machine's load."""
    from napari_bloodseg.inference import Predictor

    calls: list[int] = []
    real_forward = Predictor._forward

    def forward(self, tiles, tta=False):
        calls.append(1)
        out = real_forward(self, tiles, tta)
        if len(calls) == n:
            widget._cancel.set()
        return out

    monkeypatch.setattr(Predictor, "_forward", forward)
    return calls


def test_cancel_stops_within_the_image(viewer, dock, wait_idle, monkeypatch):
    _add_noise(viewer, "big", 512)
    widget = dock("Segment")
    calls = _cancel_at_tile(monkeypatch, widget, 2)
    _segment(widget, wait_idle, tile=128)  # 16 tiles
    assert widget.last_status == "cancelled"
    assert len(calls) == 2, "the tiles after Cancel must not run"
    assert [layer.name for layer in viewer.layers] == ["big"]


def test_a_result_finished_as_cancel_is_pressed_changes_nothing(viewer, dock, wait_idle, monkeypatch, wbc_pair):
    """Cancel pressed during an image's last tile: the image finishes, but its result is dropped, the earlier
    layer keeps its data, and the next image is not started."""
    viewer.add_image(wbc_pair[0], name="a", rgb=True)
    viewer.add_image(wbc_pair[0][:64, :64], name="b", rgb=True)
    earlier = viewer.add_labels(np.full(wbc_pair[0].shape[:2], 2, np.uint8), name="a [unet]")
    before = [layer.name for layer in viewer.layers]
    widget = dock("Segment")
    calls = _cancel_at_tile(monkeypatch, widget, 1)  # "a" is one tile: it completes with Cancel set
    _segment(widget, wait_idle)
    assert widget.last_status == "cancelled" and len(calls) == 1
    assert [layer.name for layer in viewer.layers] == before
    assert np.all(earlier.data == 2) and widget.last_layers == []


def test_event_loop_keeps_turning_during_a_slow_run(viewer, dock, wait_idle, qtbot):
    """A heartbeat QTimer must keep firing while a 1500x1500 image is segmented on the CPU."""
    from qtpy.QtCore import QTimer

    _add_noise(viewer, "field", 1500, seed=1)
    widget = dock("Segment")
    _choose(widget, tile=256)

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    try:
        _run_until_tiles_are_done(widget, qtbot)
        qtbot.wait(1500)  # keep measuring while tiles run
        still_running = widget.running
        _cancel(widget, wait_idle)
    finally:
        timer.stop()
    assert still_running, "the run must still be going while the heartbeat is measured"
    gaps = np.diff(ticks)
    assert len(ticks) > 40
    assert gaps.max() < 0.5, f"event loop stalled for {gaps.max():.2f} s"


def test_unavailable_device_is_a_notification_not_a_layer(viewer, dock, wait_idle, notes, wbc_pair, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    viewer.add_image(wbc_pair[0], name="cell", rgb=True)
    widget = dock("Segment")
    widget.set_model("unet")
    widget.set_device("cuda")
    widget.run()
    wait_idle(widget)
    assert widget.last_status == "error"
    assert any("cuda" in msg for msg in notes.errors)
    # the advice names the widget's Device choice, not the command line's --device
    assert "no CUDA GPU: choose auto or cpu in Device" in notes.errors[-1] and "--device" not in notes.errors[-1]
    assert [layer.name for layer in viewer.layers] == ["cell"]
    widget.estimate_cell_size()  # Estimate on that device says the same
    wait_idle(widget)
    assert "no CUDA GPU: choose auto or cpu in Device" in notes.errors[-1] and "--device" not in notes.errors[-1]


def test_nothing_to_segment_or_not_2d(viewer, dock, notes):
    widget = dock("Segment")
    assert widget.run() is None
    assert notes.warnings
    viewer.add_image(np.zeros((3, 32, 32), np.uint8), name="stack")
    assert widget.run() is None
    assert any("only 2-D" in msg for msg in notes.errors)
    assert [layer.name for layer in viewer.layers] == ["stack"]


def test_model_combo_lists_models_and_architectures(viewer, dock):
    from napari_bloodseg.models import ARCHITECTURES, list_models

    widget = dock("Segment")
    specs = [widget.model_combo.itemData(i) for i in range(widget.model_combo.count())]
    for info in list_models():
        assert info.name in specs
    for arch in ARCHITECTURES:
        assert arch in specs and f"{arch}:rbc" in specs
    assert widget.model_spec() == "wbc-unet"  # the shipped default, not the alphabetically first model
    widget.set_model("segnet:rbc")
    assert "rbc" in widget.model_info.text() and "untrained" in widget.model_info.text()
    assert "(rbc, segnet, untrained)" in widget.model_combo.currentText()


def test_user_model_listed_and_reloaded_when_retrained(viewer, dock, wait_idle, wbc_pair, tmp_path, monkeypatch):
    import os

    import torch

    monkeypatch.setenv("BLOODSEG_MODEL_DIR", str(tmp_path))
    _save_tiny_model(tmp_path, "my-unet", seed=1, width=8, version="3")
    viewer.add_image(wbc_pair[0], name="cell", rgb=True)
    widget = dock("Segment")
    widget.refresh_models()
    assert "my-unet  (wbc, unet, v3, user)" in [
        widget.model_combo.itemText(i) for i in range(widget.model_combo.count())
    ]
    _segment(widget, wait_idle, model="my-unet")
    first = next(iter(widget._predictors.values()))
    assert viewer.layers["cell [my-unet]"].metadata["bloodseg"]["model"] == "my-unet"

    # fine-tuned while napari is open: the next run must use the new weights
    _save_tiny_model(tmp_path, "my-unet", seed=2, width=8, version="4")
    weights = tmp_path / "my-unet.safetensors"
    os.utime(weights, (weights.stat().st_atime, weights.stat().st_mtime + 5))
    _segment(widget, wait_idle, model="my-unet")
    newest = list(widget._predictors.values())[-1]
    assert newest is not first
    pairs = zip(first.model.parameters(), newest.model.parameters(), strict=True)
    assert any(not torch.equal(a, b) for a, b in pairs), "the re-trained weights were not loaded"


def test_model_follows_the_kind_of_image_until_the_user_picks_one(viewer, dock, wbc_pair):
    widget = dock("Segment")
    crop, field = wbc_pair[0], np.zeros((800, 700, 3), np.uint8)  # 0.56 MP: a smear field
    viewer.add_image(crop, name="crop", rgb=True)
    assert widget.model_spec() == "wbc-unet"
    viewer.add_image(field, name="field", rgb=True)
    assert widget.model_spec() == "wbc-unet"  # a crop and a field: no single kind, nothing changes
    viewer.layers.remove("crop")
    assert widget.model_spec() == "rbc-deconvnet" and "smear fields" in widget.status.text()
    assert "schema <b>rbc</b>" in widget.model_info.text()
    from napari_bloodseg.plugin.segment_widget import SegmentWidget

    fresh = SegmentWidget(viewer)  # a widget opened with only a field open starts on the RBC model
    assert fresh is not widget and fresh.model_spec() == "rbc-deconvnet" and "rbc" in fresh.model_info.text()
    fresh.deleteLater()
    viewer.add_image(crop, name="crop", rgb=True)
    widget.select_images(["crop"])
    assert widget.model_spec() == "wbc-unet"
    widget.model_combo.setCurrentIndex(widget.model_combo.findData("wbc-segnet"))  # a click on the combo does
    widget.model_combo.activated.emit(widget.model_combo.currentIndex())  # both: sets the index, then says so
    widget.select_images(["field"])
    assert widget.model_spec() == "wbc-segnet"  # the user's choice stays


def test_edge_cells_choice_reaches_the_predictor(cell_widget, wait_idle):
    widget = cell_widget
    assert widget.edge_combo.currentData() == "auto"  # follow the model card unless told
    _segment(widget, wait_idle)
    widget.edge_combo.setCurrentIndex(widget.edge_combo.findData("keep"))
    _segment(widget, wait_idle)
    assert [p.edge_cells for p in widget._predictors.values()] == ["auto", "keep"]


# -- big images opened lazily stream from disk to disk ------------------------------------------------------------


class _ReadSpy:
    """Wraps the stream source the widget opens: records every row range read, refuses whole conversion."""

    def __init__(self, source, reads: list[tuple[int, int]]) -> None:
        self.source, self.reads = source, reads
        self.shape, self.dtype, self.ndim = source.shape, source.dtype, source.ndim

    def __getitem__(self, key):
        rows = (key[0] if isinstance(key, tuple) else key).indices(self.shape[0])
        self.reads.append(rows[:2])
        return np.asarray(self.source[key])

    def __array__(self, *_args, **_kwargs):
        raise AssertionError("the whole lazy image was converted to one array")


@pytest.fixture
def spy_reads(monkeypatch) -> list[tuple[int, int]]:
    """Row ranges read from lazily opened images; any whole-image ``np.asarray`` of a dask level fails the test."""
    import dask.array as da

    import napari_bloodseg.io.lazy as lazy

    reads: list[tuple[int, int]] = []
    real_open, real_array = lazy.open_lazy, da.Array.__array__
    monkeypatch.setattr(lazy, "open_lazy", lambda *a, **k: _ReadSpy(real_open(*a, **k), reads))

    def dask_array(self, *args, **kwargs):
        assert self.shape[:2] != (1200, 1500), "a full-resolution dask level was converted to one array"
        return real_array(self, *args, **kwargs)

    monkeypatch.setattr(da.Array, "__array__", dask_array)
    return reads


@pytest.fixture
def temp_root(tmp_path, monkeypatch):
    """The platform temp dir for this test only (the widget puts streamed labels there)."""
    import tempfile

    root = tmp_path / "temp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def test_lazy_image_segments_to_disk_equal_to_in_memory(
    viewer, dock, wait_idle, big_tiff, smear_field, lazy_threshold, spy_reads, notes, temp_root
):
    from pathlib import Path

    (lazy_layer,) = viewer.open(str(big_tiff), plugin="napari-bloodseg")
    viewer.add_image(smear_field, name="in memory", rgb=True)
    widget = dock("Segment")
    widget.uncertainty_check.setChecked(True)
    _segment(widget, wait_idle, model="wbc-unet", tile=512)
    assert widget.last_status == "done"

    streamed, reference = viewer.layers["slide [wbc-unet]"], viewer.layers["in memory [wbc-unet]"]
    assert type(reference.data) is np.ndarray
    assert len(np.unique(reference.data)) > 1  # the equality below is not between two blank images
    assert isinstance(streamed.data, np.memmap)
    np.testing.assert_array_equal(streamed.data, reference.data)
    # on disk in a temporary folder, named after the image; same colours and metadata as any result
    labels_file = Path(streamed.data.filename)
    assert labels_file.name.startswith("slide-") and labels_file.parent.parent == temp_root
    info, ref_info = streamed.metadata["bloodseg"], reference.metadata["bloodseg"]
    assert info["labels_file"] == str(labels_file)
    for key in ("schema", "role", "model", "class_names", "corrected"):
        assert info[key] == ref_info[key]
    assert info["source"] == "slide"
    assert streamed.colormap.color_dict.keys() == reference.colormap.color_dict.keys()
    for value, rgba in reference.colormap.color_dict.items():
        np.testing.assert_array_equal(streamed.colormap.color_dict[value], rgba)
    # streamed band by band from the file: every row read, never the whole image at once
    assert spy_reads and max(y1 - y0 for y0, y1 in spy_reads) < 1200
    assert min(y0 for y0, _ in spy_reads) == 0 and max(y1 for _, y1 in spy_reads) == 1200
    # probabilities of a slide would not fit in memory: the in-memory image alone gets an uncertainty layer
    assert "in memory [wbc-unet] uncertainty" in viewer.layers
    assert "slide [wbc-unet] uncertainty" not in viewer.layers
    assert any("slide" in msg and "uncertainty" in msg for msg in notes.warnings)

    viewer.layers.remove(streamed)
    assert list(temp_root.iterdir()) == []  # the file and its folder are gone


def test_cancel_lazy_run_adds_no_layer_and_leaves_no_file(
    viewer, dock, wait_idle, qtbot, big_tiff, lazy_threshold, temp_root
):
    viewer.open(str(big_tiff), plugin="napari-bloodseg")
    before = [layer.name for layer in viewer.layers]
    widget = dock("Segment")
    _choose(widget, model="wbc-unet", tile=256)
    _run_until_tiles_are_done(widget, qtbot)  # mid-run: the label file exists
    assert widget.running and list(widget._label_files.folder.iterdir())
    _cancel(widget, wait_idle)

    assert widget.last_status == "cancelled"
    assert [layer.name for layer in viewer.layers] == before
    assert list(temp_root.iterdir()) == []


def test_estimate_fills_the_cell_size_and_segment_uses_it(viewer, dock, wait_idle, notes):
    """A 300x400 field of ~41 px red cells: *Estimate* measures them with rbc-deconvnet (trained on ~102 px),
    the Cell size field shows the diameter, and Segment then runs at the matching scale."""
    from napari_bloodseg.data import synthetic_rbc
    from napari_bloodseg.inference import Predictor
    from napari_bloodseg.inference.cell_size import estimate_cell_size
    from napari_bloodseg.models import get_model

    image = synthetic_rbc((300, 400), seed=2)[0]
    viewer.add_image(image, name="field", rgb=True)
    widget = dock("Segment")
    _choose(widget, model="rbc-deconvnet", tile=None)
    assert widget.cell_spin.value() == 0  # "off"
    assert widget.estimate_cell_size() is not None
    assert not widget.estimate_btn.isEnabled() and not widget.run_btn.isEnabled()  # one job at a time
    wait_idle(widget)
    assert widget.estimate_btn.isEnabled() and widget.run_btn.isEnabled()
    model, card = get_model("rbc-deconvnet")
    predictor = Predictor(model, card, device="cpu")
    est = estimate_cell_size(predictor, image)
    assert widget.cell_spin.value() == round(est.diameter_px) and 35 < est.diameter_px < 47
    assert f"~{est.diameter_px:.0f} px" in widget.status.text() and widget.progress.value() == 1000
    assert widget.run() is not None
    wait_idle(widget)
    scale = predictor.scale_for_cell_size(round(est.diameter_px))
    expected = predictor.predict(image, scale=scale).labels
    np.testing.assert_array_equal(viewer.layers["field [rbc-deconvnet]"].data, expected)
    assert not notes.errors


def test_estimate_says_why_it_cannot_measure(viewer, dock, wait_idle, notes):
    viewer.add_image(np.full((120, 160, 3), 240, np.uint8), name="blank", rgb=True)
    widget = dock("Segment")
    _choose(widget, model="rbc-deconvnet", tile=None)
    widget.estimate_cell_size()
    wait_idle(widget)
    assert widget.cell_spin.value() == 0  # left as it was
    assert any("blank: no cells found at any scale" in e for e in notes.errors), notes.errors
    assert "Failed" in widget.status.text()


def test_estimate_runs_at_the_tile_size_segment_uses(viewer, dock, wait_idle, notes):
    """A tile typed below the smallest worth running: Segment runs at that smallest size, and Estimate must too
    (it refused the typed size with an error, where the same Segment went ahead)."""
    from napari_bloodseg.inference.defaults import MIN_TILE_SIZE

    viewer.add_image(np.full((120, 160, 3), 240, np.uint8), name="blank", rgb=True)
    widget = dock("Segment")
    _choose(widget, model="rbc-deconvnet", tile=8)
    widget.estimate_cell_size()
    wait_idle(widget)
    assert not any("tile size" in e for e in notes.errors), notes.errors
    assert any("blank: no cells found at any scale" in e for e in notes.errors), notes.errors
    assert [p.tile_size for p in widget._predictors.values()] == [MIN_TILE_SIZE]


def test_estimate_with_no_image_warns(viewer, dock, notes):
    widget = dock("Segment")
    assert widget.estimate_cell_size() is None
    assert any("No image layer to measure" in w for w in notes.warnings)


def test_segment_and_estimate_refuse_while_busy_or_without_a_model(viewer, cell_widget):
    # both buttons share one guard: nothing starts (no worker, no layer) while a run is on or when no model is listed
    widget = cell_widget
    widget.worker = object()  # what a run in progress looks like to the widget
    assert widget.running
    assert widget.run() is None and widget.estimate_cell_size() is None
    widget.worker = None
    widget._choices = []  # no model listed (the combo's index then points nowhere)
    assert widget.current_choice() is None
    assert widget.run() is None and widget.estimate_cell_size() is None
    assert widget.worker is None and [layer.name for layer in viewer.layers] == ["cell"]


def test_a_result_landing_mid_stroke_goes_to_a_new_layer(viewer, cell_widget, wait_idle, notes):
    """napari sends 'paint' only when the mouse button is released: a re-run finishing while the brush is still
    down must not replace the layer and wipe the stroke painted so far."""
    widget = cell_widget
    _segment(widget, wait_idle)
    layer = viewer.layers["cell [unet]"]
    layer.brush_size = 9
    before = layer.data.copy()
    with layer.block_history():  # the mouse button is down: what napari's Labels draw() holds
        layer.paint((20, 20), 2, refresh=True)
        painted = layer.data.copy()
        _segment(widget, wait_idle)  # the result lands now
        layer.paint((20, 60), 2, refresh=True)  # the drag goes on
    np.testing.assert_array_equal(layer.data[10:30, 10:30], painted[10:30, 10:30])
    assert (layer.data[18:23, 58:63] == 2).all() and layer.metadata["bloodseg"]["edited"] is True
    fresh = viewer.layers[-1]
    assert fresh is not layer and fresh.name.startswith("cell [unet]")
    assert any("is being painted on" in msg for msg in notes.of("info"))
    layer.undo()  # the whole stroke is one undo step, as if no result had landed
    np.testing.assert_array_equal(layer.data, before)


def test_a_typed_cell_size_the_model_cannot_use_is_said_in_the_status(cell_widget, wait_idle):
    """An untrained network knows no training cell size: the 40 px typed changes nothing, and the status says so
    rather than look as if it had rescaled the image."""
    widget = cell_widget
    widget.cell_spin.setValue(40)
    _segment(widget, wait_idle)
    assert widget.last_status == "done"
    assert "cell size 40 px not used: unet is untrained" in widget.status.text()
    widget.cell_spin.setValue(0)
    _segment(widget, wait_idle)
    assert "not used" not in widget.status.text()


def test_an_image_closed_during_the_run_gets_no_labels_layer(viewer, dock, wait_idle, qtbot, held_forward, wbc_pair):
    """The user closed the image while it was being segmented: its result is dropped (said in the status), the
    other image's result still lands."""
    viewer.add_image(wbc_pair[0], name="a", rgb=True)
    viewer.add_image(wbc_pair[0][:64, :64], name="b", rgb=True)
    entered, release = held_forward
    widget = dock("Segment")
    _choose(widget)
    widget.run()
    qtbot.waitUntil(entered.is_set, timeout=30_000)  # "a" is in the network now
    viewer.layers.remove("a")
    release.set()
    wait_idle(widget)
    assert [layer.name for layer in viewer.layers] == ["b", "b [unet]"]
    assert "a was closed during the run: its result was dropped" in widget.status.text()


_FIRST_RESULT = """
import json, sys, time
from napari.components import ViewerModel
from qtpy.QtWidgets import QApplication
from napari_bloodseg.data import synthetic_wbc
from napari_bloodseg.plugin.segment_widget import NAPARI_LAZY_IMPORTS, SegmentResult, SegmentWidget

app = QApplication([])
viewer = ViewerModel()
viewer.add_image(synthetic_wbc(size=96, seed=5)[0], name="cell", rgb=True)
widget = SegmentWidget(viewer)
widget.set_model("unet")
widget.set_device("cpu")
widget.tile_spin.setValue(128)
before = [m for m in NAPARI_LAZY_IMPORTS if m in sys.modules]
at_first_result = []
handler = widget._on_yielded


def on_yielded(item):
    if isinstance(item, SegmentResult) and not at_first_result:
        at_first_result.append([m for m in NAPARI_LAZY_IMPORTS if m in sys.modules])
    handler(item)


widget._on_yielded = on_yielded
widget.run()
deadline = time.monotonic() + 120
while widget.worker is not None and time.monotonic() < deadline:
    app.processEvents()
    time.sleep(0.01)
print(json.dumps({"before": before, "at_first_result": at_first_result, "status": widget.last_status}))
"""


def test_the_worker_imports_what_napari_needs_for_the_first_result(tmp_model_dir, torch_imports_in):
    """napari imports pandas, scipy.linalg and skimage.color on first use inside ``viewer.add_labels``: the session's
    first result froze the GUI 1.0-1.5 s. In a fresh interpreter, the worker has imported them by the time its first
    result reaches the GUI thread's handler."""
    # the fresh-interpreter harness of the torch import tests (what imports torch is not asked here)
    lines, _ = torch_imports_in(_FIRST_RESULT, BLOODSEG_MODEL_DIR=str(tmp_model_dir))
    from napari_bloodseg.plugin.segment_widget import NAPARI_LAZY_IMPORTS

    assert lines[-1] == {"before": [], "at_first_result": [list(NAPARI_LAZY_IMPORTS)], "status": "done"}


def test_whole_image_tile_streams_a_lazy_image_in_default_tiles(viewer, dock, wait_idle, wbc_pair, notes, monkeypatch):
    """Tile size "whole image" ran a 105 MP slide as one pass: 40 s, 4.75 GB, no Cancel. An image read from disk is
    segmented in the default tiles instead, and the user is told; an in-memory image still runs whole."""
    import dask.array as da

    from napari_bloodseg.inference import Predictor
    from napari_bloodseg.inference.defaults import DEFAULT_TILE_SIZE

    runs: list[tuple[int, bool]] = []
    real = Predictor.predict

    def spy(self, image, *args, **kwargs):
        runs.append((self.tile_size, kwargs.get("out") is not None))
        return real(self, image, *args, **kwargs)

    monkeypatch.setattr(Predictor, "predict", spy)
    viewer.add_image(wbc_pair[0], name="cell", rgb=True)
    viewer.add_image(da.from_array(wbc_pair[0], chunks=(48, 48, 3)), name="on disk", rgb=True)
    widget = dock("Segment")
    _segment(widget, wait_idle, tile=0)

    assert widget.last_status == "done"
    assert sorted(runs) == [(0, False), (DEFAULT_TILE_SIZE, True)]
    assert any("on disk is read from disk" in msg and f"{DEFAULT_TILE_SIZE} px tiles" in msg for msg in notes.warnings)
    assert f"{DEFAULT_TILE_SIZE} px tiles" in widget.status.text()
    assert "on disk [unet]" in viewer.layers and "cell [unet]" in viewer.layers


def _save_tiny_model(folder, name: str, *, seed: int = 0, width: int = 4, version: str = "1") -> None:
    """A small WBC unet saved as ``folder/name`` (replacing one there: a model fine-tuned again)."""
    import torch

    from napari_bloodseg.models import ModelCard, build_model, save_model

    torch.manual_seed(seed)
    model = build_model("unet", num_classes=3, width=width)
    card = ModelCard(name=name, config=model.config, schema="wbc", version=version)
    save_model(model, card, folder / name, overwrite=True)


def test_a_renamed_model_is_followed_and_a_deleted_one_named_even_mid_run(
    viewer, dock, wait_idle, qtbot, wbc_pair, tmp_model_dir, notes, held_forward
):
    """The Segment model renamed or deleted in the Models widget during a run: the combo switched to wbc-unet
    without a word (the next run used another model) and the result was named after a model no longer there."""
    _save_tiny_model(tmp_model_dir, "mine")
    _save_tiny_model(tmp_model_dir, "other")
    viewer.add_image(wbc_pair[0], name="cell", rgb=True)
    widget = dock("Segment")
    models = dock("Models")
    _choose(widget, model="mine")
    entered, release = held_forward

    # renamed mid-run: the combo follows, and the result lands under the new name
    widget.run()
    qtbot.waitUntil(entered.is_set, timeout=30_000)
    assert models.rename("mine", "mine-2") is not None
    assert widget.model_spec() == "mine-2"
    release.set()
    wait_idle(widget)
    assert [layer.name for layer in viewer.layers] == ["cell", "cell [mine-2]"]
    assert viewer.layers["cell [mine-2]"].metadata["bloodseg"]["model"] == "mine-2"

    # deleted mid-run: a notification at once names it and the model chosen now, and so does the final status
    entered.clear()
    release.clear()
    widget.run()
    qtbot.waitUntil(entered.is_set, timeout=30_000)
    assert models.delete("mine-2") is True
    assert widget.model_spec() == "wbc-unet"
    assert any("mine-2 is no longer installed" in msg and "now wbc-unet" in msg for msg in notes.warnings)
    release.set()
    wait_idle(widget)
    assert widget.last_status == "done"
    assert "mine-2 is no longer installed" in widget.status.text()

    # idle: the same notification, not only the status line
    widget.set_model("other")
    assert models.delete("other") is True
    assert "other is no longer installed" in notes.warnings[-1]
    assert "other is no longer installed" in widget.status.text()


def test_a_model_chosen_by_its_file_stays_chosen_when_the_list_is_refreshed(viewer, dock, tmp_path, notes):
    """A model file outside the model folder is not listed: a refresh (any model event) must not report it gone."""
    _save_tiny_model(tmp_path, "loose")
    widget = dock("Segment")
    widget.set_model(str(tmp_path / "loose.safetensors"))
    widget.refresh_models()
    assert widget.model_spec() == str(tmp_path / "loose.safetensors")
    assert not notes.warnings
    (tmp_path / "loose.safetensors").unlink()
    (tmp_path / "loose.json").unlink(missing_ok=True)
    widget.refresh_models()
    assert widget.model_spec() == "wbc-unet" and "loose.safetensors is no longer installed" in notes.warnings[-1]
