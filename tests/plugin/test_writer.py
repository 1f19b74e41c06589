"""npe2 writer (File > Save Layers): Labels → grey masks in the schema's convention, atomic."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from napari_bloodseg.plugin.layers import schema_layer_kwargs
from napari_bloodseg.plugin.reader import read_paths
from napari_bloodseg.plugin.writer import write_labels

PLUGIN = "napari-bloodseg"


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_save_layer_writes_schema_grey_and_reads_back(viewer, tmp_path, wbc_pair, suffix):
    _, labels = wbc_pair
    viewer.add_labels(labels, **schema_layer_kwargs("wbc", "cell [unet]", role="prediction", source="cell"))
    target = tmp_path / f"cell{suffix}"
    written = viewer.layers.save(str(target), selected=False, plugin=PLUGIN)  # File > Save Layers
    assert written == [str(target)]
    if suffix == ".png":
        grey = np.asarray(Image.open(target))
        assert set(np.unique(grey)) == {0, 128, 255}
        np.testing.assert_array_equal(grey, np.array([0, 128, 255], np.uint8)[labels])
    ((data, kwargs, kind),) = read_paths(str(target))
    assert kind == "labels" and kwargs["metadata"]["bloodseg"]["schema"] == "wbc"
    np.testing.assert_array_equal(data, labels)
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]  # no temporary file left


def test_schema_guessed_without_metadata_and_bad_values_refused(tmp_path):
    binary = np.zeros((20, 20), np.uint8)
    binary[5:10, 5:10] = 1
    (out,) = write_labels(str(tmp_path / "rbc.png"), binary, {"name": "plain"})
    np.testing.assert_array_equal(np.asarray(Image.open(out)), binary * 255)

    instances = binary.copy()
    instances[12:15, 12:15] = 7  # instance ids are not classes: refuse instead of snapping silently
    with pytest.raises(ValueError, match="not classes"):
        write_labels(str(tmp_path / "bad.png"), instances, {"name": "instances"})
    assert not (tmp_path / "bad.png").exists()
