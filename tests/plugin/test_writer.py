"""npe2 writer (File > Save Layers): Labels → grey masks in the schema's convention, atomic."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from napari_bloodseg.plugin.layers import schema_layer_kwargs
from napari_bloodseg.plugin.reader import read_paths
from napari_bloodseg.plugin.writer import WriteRefused, write_labels

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
    with pytest.raises(WriteRefused, match="not classes"):
        write_labels(str(tmp_path / "bad.png"), instances, {"name": "instances"})
    assert not (tmp_path / "bad.png").exists()


def test_save_layer_never_replaces_its_own_image_or_the_expert_mask_beside_it(viewer, tmp_path, wbc_pair):
    """File > Save Selected Layers with the image's own name: napari asked 'replace?' about a file, not about the
    image these labels were made from; that and the expert mask beside it are refused, another name is written."""
    image, labels = wbc_pair
    Image.fromarray(image).save(tmp_path / "field.png")
    Image.fromarray(image).save(tmp_path / "002.bmp")
    Image.fromarray(np.array([0, 128, 255], np.uint8)[labels]).save(tmp_path / "002.png")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    kwargs = schema_layer_kwargs("wbc", "field [unet]", role="prediction", source="field")
    kwargs["metadata"]["bloodseg"]["image_path"] = str(tmp_path / "field.png")
    attrs = {"name": kwargs["name"], "metadata": kwargs["metadata"]}
    with pytest.raises(WriteRefused, match=r"field.png is the image that 'field \[unet\]' was made from"):
        write_labels(str(tmp_path / "field.png"), labels, attrs)
    attrs["metadata"]["bloodseg"]["image_path"] = str(tmp_path / "002.bmp")
    with pytest.raises(WriteRefused, match="002.png is the expert mask of 002.bmp"):
        write_labels(str(tmp_path / "002.png"), labels, attrs)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert write_labels(str(tmp_path / "field_fixed.png"), labels, attrs) == [str(tmp_path / "field_fixed.png")]

    # an edited expert mask may still be saved over its own file (napari's dialog asked)
    ((mask, mask_kwargs, _),) = read_paths(str(tmp_path / "002.png"))
    mask_kwargs["metadata"]["bloodseg"]["image_path"] = str(tmp_path / "002.bmp")
    write_labels(str(tmp_path / "002.png"), np.zeros_like(mask), mask_kwargs)
    assert not read_paths(str(tmp_path / "002.png"))[0][0].any()


def test_a_dataset_with_two_mask_folders_protects_both(tmp_path):
    """When the masks cannot be told apart (masks/ and labels/), no file of either may be exported over; before,
    the refusal to pair them escaped as an error from Export and Save."""
    from napari_bloodseg.plugin.writer import _real, protected_files

    for sub, names in (("images", ["001.bmp"]), ("masks", ["001.png"]), ("labels", ["001.png", "002.png"])):
        (tmp_path / sub).mkdir()
        for name in names:
            (tmp_path / sub / name).write_bytes(b"x")
    info = {"role": "prediction", "image_path": str(tmp_path / "images" / "001.bmp")}
    protected = protected_files([("001 [wbc-unet]", info)])
    for f in ("masks/001.png", "labels/001.png", "labels/002.png", "images/001.bmp"):
        assert _real(tmp_path / f) in protected, f


def test_every_image_beside_a_layers_image_is_protected_not_only_annotated_ones(tmp_path):
    """A PNG micrograph with no mask beside the image a layer came from: an export named like it replaced it."""
    from napari_bloodseg.plugin.writer import _real, protected_files

    for name in ("field.png", "other.png", "001.bmp", "001.png"):
        (tmp_path / name).write_bytes(b"x")
    info = {"role": "image", "path": str(tmp_path / "field.png")}
    protected = protected_files([("field", info)])
    assert protected[_real(tmp_path / "other.png")] == "the image other.png"
    assert protected[_real(tmp_path / "001.png")] == "the expert mask of 001.bmp"


def test_napari_shows_the_writers_reason_not_no_plugin_found(viewer, tmp_path, wbc_pair):
    """GUI audit M3: saving by extension (File > Save, scripts, the console) reached the plugin's writer, whose
    refusal napari took for "no writer": the user read "No data written! A plugin could not be found"."""
    image, labels = wbc_pair
    Image.fromarray(image).save(tmp_path / "002.bmp")
    Image.fromarray(np.array([0, 128, 255], np.uint8)[labels]).save(tmp_path / "002.png")
    expert = (tmp_path / "002.png").read_bytes()
    kwargs = schema_layer_kwargs("wbc", "002 [unet]", role="prediction", source="002")
    kwargs["metadata"]["bloodseg"]["image_path"] = str(tmp_path / "002.bmp")
    layer = viewer.add_labels(labels, **kwargs)
    viewer.layers.selection = {layer}
    with pytest.raises(WriteRefused, match="002.png is the expert mask of 002.bmp"):
        viewer.layers.save(str(tmp_path / "002.png"), selected=True)
    instances = viewer.add_labels(np.where(labels > 0, 7, 0), name="instances")
    viewer.layers.selection = {instances}
    with pytest.raises(WriteRefused, match="not classes"):
        viewer.layers.save(str(tmp_path / "instances.png"), selected=True)
    assert (tmp_path / "002.png").read_bytes() == expert and not (tmp_path / "instances.png").exists()
