"""File > Open Sample: synthetic WBC / RBC (image + mask), Zheng Dataset 1 (download; clear error offline)."""

from __future__ import annotations

import numpy as np
import pytest

import napari_bloodseg.plugin.sample_data as sample_data
from napari_bloodseg.schemas import RBC, WBC

PLUGIN = "napari-bloodseg"


@pytest.mark.parametrize(
    ("key", "schema", "name"),
    [("synthetic-wbc", WBC, "synthetic WBC"), ("synthetic-rbc", RBC, "synthetic RBC field")],
)
def test_synthetic_samples_open_image_and_mask(viewer, key, schema, name):
    from napari.layers import Image, Labels

    layers = viewer.open_sample(PLUGIN, key)
    image, mask = layers
    assert isinstance(image, Image) and image.rgb and image.name == name
    assert isinstance(mask, Labels) and mask.name == f"{name} mask"
    assert mask.data.shape == image.data.shape[:2]
    assert set(np.unique(mask.data)) == set(range(schema.num_classes))
    assert mask.metadata["bloodseg"]["schema"] == schema.name
    assert list(mask.features["class"]) == [*schema.class_names, "unlabelled"]


def test_samples_are_listed_in_the_menu_manifest():
    from npe2 import PluginManager

    keys = {c.key for c in PluginManager.instance().get_manifest(PLUGIN).contributions.sample_data}
    assert keys == {"synthetic-wbc", "synthetic-rbc", "zheng-wbc-dataset1"}


def test_zheng_offline_is_a_clear_error_and_adds_nothing(viewer, monkeypatch):
    def offline(name, progress=None):
        raise ConnectionError("could not download https://example.invalid: [Errno -3] name resolution failed")

    monkeypatch.setattr(sample_data, "fetch_zheng_wbc", offline)
    viewer.add_image(np.zeros((8, 8)), name="already open")
    with pytest.raises(ConnectionError, match="could not be downloaded.*synthetic samples work offline"):
        viewer.open_sample(PLUGIN, "zheng-wbc-dataset1")
    assert [layer.name for layer in viewer.layers] == ["already open"]


def test_zheng_sample_opens_pairs_from_the_fetched_folder(viewer, monkeypatch, tmp_path, notes):
    from PIL import Image

    from napari_bloodseg.data import synthetic_wbc

    for i in range(1, 4):
        image, labels = synthetic_wbc(size=48 + 8 * i, seed=i)
        Image.fromarray(image).save(tmp_path / f"{i:03d}.bmp")
        Image.fromarray(WBC.to_disk(labels)).save(tmp_path / f"{i:03d}.png")
    asked = []
    monkeypatch.setattr(sample_data, "fetch_zheng_wbc", lambda name, progress=None: asked.append(name) or tmp_path)
    monkeypatch.setattr(sample_data, "ZHENG_SAMPLE_PAIRS", 2)

    layers = viewer.open_sample(PLUGIN, "zheng-wbc-dataset1")
    assert asked == ["wbc-dataset1"]
    assert [layer.name for layer in layers] == ["001", "001 mask", "002", "002 mask"]
    assert layers[3].data.shape == (64, 64)
    assert layers[3].metadata["bloodseg"]["schema"] == "wbc"
    assert any(str(tmp_path) in msg for msg in notes.of("info"))


def test_zheng_download_keeps_napari_responsive_and_shows_progress(viewer, qapp, monkeypatch, tmp_path):
    """The download runs in a thread: Qt timers keep firing meanwhile, and the progress it reports reaches a
    napari progress bar."""
    import time

    from napari.utils import progress as napari_progress
    from qtpy.QtCore import QTimer

    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(10)
    bars = []
    original_update = napari_progress.update

    def record(self, n=1):
        bars.append((self.desc, self.n + n, self.total))
        return original_update(self, n)

    monkeypatch.setattr(napari_progress, "update", record)

    def slow_fetch(name, progress=None):
        for done in (10_000_000, 20_000_000, 30_000_000):
            time.sleep(0.25)
            progress(done, 30_000_000)
        raise ConnectionError("offline after all")

    assert not ticks
    with pytest.raises(ConnectionError, match="offline after all"):
        sample_data.fetch_responsive(slow_fetch, "wbc-dataset1")
    timer.stop()
    assert len(ticks) >= 20  # the GUI thread ran its timers during the ~0.75 s download
    assert bars and bars[-1][2] == 30_000_000
    assert max(n for _, n, _ in bars) >= 20_000_000
