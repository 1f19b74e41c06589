"""Export masks widget: corrected Labels → grey masks in one folder, never overwriting unasked; big labels as TIFF."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from napari_bloodseg.plugin.layers import schema_layer_kwargs
from napari_bloodseg.plugin.reader import read_paths
from napari_bloodseg.plugin.writer import WriteRefused, write_labels


def _export(widget, wait_idle):
    """Press Export and wait for its worker: the result the status line reports."""
    assert widget.export() is not None
    wait_idle(widget)
    return widget.last_result


def test_batch_export_corrected_only_and_refuses_overwrite(viewer, dock, wait_idle, tmp_path, notes, wbc_pair):
    from napari_bloodseg.plugin.editing import set_corrected

    _, labels = wbc_pair
    fixed = viewer.add_labels(labels, **schema_layer_kwargs("wbc", "001 [unet]", role="prediction", source="001"))
    viewer.add_labels(labels.copy(), **schema_layer_kwargs("wbc", "002 [unet]", role="prediction", source="002"))
    rbc = viewer.add_labels((labels > 0).astype(np.uint8), **schema_layer_kwargs("rbc", "f [m]", role="prediction"))
    set_corrected(fixed, True)
    set_corrected(rbc, True)
    widget = dock("Export masks")
    widget.folder_edit.setText(str(tmp_path))

    result = _export(widget, wait_idle)
    assert sorted(p.name for p in result.written) == ["001.png", "f.png"]
    assert np.asarray(Image.open(tmp_path / "f.png")).max() == 255  # RBC: 0/255
    assert set(np.unique(np.asarray(Image.open(tmp_path / "001.png")))) == {0, 128, 255}

    # a second export must not replace the files, and must say so
    before = (tmp_path / "001.png").stat().st_mtime_ns
    fixed.data = np.zeros_like(labels)
    result = _export(widget, wait_idle)
    assert result.written == [] and sorted(p.name for p in result.skipped) == ["001.png", "f.png"]
    assert any("Overwrite" in msg for msg in notes.warnings)
    assert (tmp_path / "001.png").stat().st_mtime_ns == before

    widget.overwrite_check.setChecked(True)
    widget.only_corrected.setChecked(False)
    widget.format_combo.setCurrentText(".tif")
    result = _export(widget, wait_idle)
    assert sorted(p.name for p in result.written) == ["001.tif", "002.tif", "f.tif"]
    ((data, _, _),) = read_paths(str(tmp_path / "001.tif"))
    assert not data.any()


def test_a_file_in_place_of_the_folder_is_an_error_not_skipped_files(viewer, dock, tmp_path, notes, wbc_pair):
    from napari_bloodseg.plugin.editing import set_corrected

    _, labels = wbc_pair
    set_corrected(viewer.add_labels(labels, **schema_layer_kwargs("wbc", "001 [unet]", role="prediction")), True)
    afile = tmp_path / "afile"
    afile.write_text("x")
    widget = dock("Export masks")
    widget.folder_edit.setText(str(afile))
    assert widget.export() is None
    assert "is a file, not a folder" in notes.errors[-1] and not any("Overwrite" in m for m in notes.warnings)
    assert widget.status.text().startswith("Not exported:") and afile.read_text() == "x"


def test_big_disk_labels_export_in_bands_as_png_or_tif(
    viewer, dock, wait_idle, tmp_path, notes, lazy_threshold, monkeypatch
):
    """Labels a big image was segmented into (a memory map) are never copied whole: PNG or TIFF band by band."""
    import napari_bloodseg.plugin.writer as writer
    from napari_bloodseg.io import read_mask
    from napari_bloodseg.io.lazy import open_label_output
    from napari_bloodseg.plugin.editing import set_corrected

    def whole(*_a, **_k):
        raise AssertionError("big labels must not go through the whole-array mask writer")

    monkeypatch.setattr(writer, "write_mask", whole)
    labels = np.zeros((1000, 1000), np.uint8)
    labels[100:400, 200:900] = 1
    mm = open_label_output(tmp_path / "slide.labels.tif", labels.shape)
    mm[:] = labels
    layer = viewer.add_labels(mm, **schema_layer_kwargs("rbc", "slide [m]", role="prediction", source="slide"))
    set_corrected(layer, True)
    out = tmp_path / "out"
    widget = dock("Export masks")
    widget.folder_edit.setText(str(out))

    result = _export(widget, wait_idle)  # .png by default
    assert [p.name for p in result.written] == ["slide.png"] and not result.failed and not notes.errors
    np.testing.assert_array_equal(read_mask(out / "slide.png")[0], labels)

    widget.format_combo.setCurrentText(".tif")
    result = _export(widget, wait_idle)
    assert [p.name for p in result.written] == ["slide.tif"]
    np.testing.assert_array_equal(read_mask(out / "slide.tif")[0], labels)

    # File > Save Layers through the npe2 writer: the same rules
    attrs = {"name": layer.name, "metadata": layer.metadata}
    with pytest.raises(WriteRefused, match=r"\.png or \.tif"):
        write_labels(str(tmp_path / "saved.bmp"), mm, attrs)
    (saved,) = write_labels(str(tmp_path / "saved.png"), mm, attrs)
    np.testing.assert_array_equal(read_mask(saved)[0], labels)
    (saved,) = write_labels(str(tmp_path / "saved.tif"), mm, attrs)
    np.testing.assert_array_equal(read_mask(saved)[0], labels)


def test_file_names_do_not_depend_on_layer_order(viewer, wbc_pair):
    """Layers of one image: the one marked corrected keeps the plain name, the others get their model or 'mask'
    as a tag (not the whole layer name), however the layer list is ordered."""
    from napari_bloodseg.plugin.editing import set_corrected
    from napari_bloodseg.plugin.writer import export_stems

    _, labels = wbc_pair
    kw = {"role": "prediction", "source": "001"}
    unet = viewer.add_labels(labels, **schema_layer_kwargs("wbc", "001 [wbc-unet]", model="wbc-unet", **kw))
    segnet = viewer.add_labels(labels, **schema_layer_kwargs("wbc", "001 [wbc-segnet]", model="wbc-segnet", **kw))
    mask = viewer.add_labels(labels, **schema_layer_kwargs("wbc", "001 mask", role="mask", source="001"))
    for order in ([unet, segnet, mask], [mask, segnet, unet]):
        names = dict(zip([lyr.name for lyr in order], export_stems(order), strict=True))
        assert names == {"001 [wbc-unet]": "001_wbc-unet", "001 [wbc-segnet]": "001_wbc-segnet", "001 mask": "001_mask"}
    set_corrected(segnet, True)
    for order in ([unet, segnet, mask], [segnet, mask, unet]):
        names = dict(zip([lyr.name for lyr in order], export_stems(order), strict=True))
        assert names == {"001 [wbc-unet]": "001_wbc-unet", "001 [wbc-segnet]": "001", "001 mask": "001_mask"}


def test_clashing_tags_are_numbered_the_same_whatever_the_order(viewer, wbc_pair):
    """Groups 'a' (models b_m, x) and 'a_b' (models m, y) both make 'a_b_m': which one gets '_2' must not follow
    the layer list."""
    from napari_bloodseg.plugin.writer import export_stems

    _, labels = wbc_pair
    layers = [
        viewer.add_labels(labels, **schema_layer_kwargs("wbc", f"{src} [{m}]", role="prediction", source=src, model=m))
        for src, m in (("a", "b_m"), ("a", "x"), ("a_b", "m"), ("a_b", "y"))
    ]
    forward = dict(zip([lyr.name for lyr in layers], export_stems(layers), strict=True))
    backward = dict(zip([lyr.name for lyr in layers[::-1]], export_stems(layers[::-1]), strict=True))
    assert forward == backward
    assert len(set(forward.values())) == 4


def _smear_folder(tmp_path, wbc_pair):
    """``smears/``: an image saved as PNG (field.png), and an image with its expert mask (002.bmp + 002.png)."""
    image, labels = wbc_pair
    work = tmp_path / "smears"
    work.mkdir()
    Image.fromarray(image).save(work / "field.png")
    Image.fromarray(image).save(work / "002.bmp")
    Image.fromarray(np.array([0, 128, 255], np.uint8)[labels]).save(work / "002.png")
    return work


def _prediction(viewer, labels, image_file, model="wbc-unet"):
    """A Labels layer as Segment makes it: named after its image, recording the image's file."""
    from napari_bloodseg.plugin.editing import set_corrected

    stem = image_file.stem
    kwargs = schema_layer_kwargs("wbc", f"{stem} [{model}]", role="prediction", source=stem, model=model)
    kwargs["metadata"]["bloodseg"]["image_path"] = str(image_file)
    layer = viewer.add_labels(np.zeros_like(labels), **kwargs)
    set_corrected(layer, True)
    return layer


def test_overwrite_never_replaces_the_source_image_or_an_expert_mask(
    viewer, dock, wait_idle, tmp_path, notes, wbc_pair
):
    """Exported into the folder the images came from, with 'Overwrite': field.png (the image itself) and 002.png
    (the expert mask beside 002.bmp, not even opened) are refused with an error; other files are still written."""
    _, labels = wbc_pair
    work = _smear_folder(tmp_path, wbc_pair)
    before = {p.name: p.read_bytes() for p in work.iterdir()}
    viewer.open([str(work / "field.png"), str(work / "002.bmp")], plugin="napari-bloodseg")
    _prediction(viewer, labels, work / "field.png")
    _prediction(viewer, labels, work / "002.bmp")
    _prediction(viewer, labels, work / "003.bmp")  # its image is gone: 003.png is free to write
    viewer.add_image(np.zeros((8, 8)), name="plain")  # layers without bloodseg metadata: an AttributeError before
    viewer.add_points([[1, 1]], name="marks")
    widget = dock("Export masks")
    widget.folder_edit.setText(str(work))
    widget.overwrite_check.setChecked(True)

    result = _export(widget, wait_idle)
    assert {p.read_bytes() for p in work.iterdir() if p.name in before} == set(before.values())
    assert [p.name for p in result.written] == ["003.png"]
    assert len(result.refused) == 2
    error = notes.errors[-1]
    assert "field.png is the image that layer 'field' was opened from" in error
    assert "002.png is the expert mask of 002.bmp" in error and "another folder" in error
    assert "refused 2" in widget.status.text()


def test_an_opened_expert_mask_is_not_exported_over_itself(viewer, dock, wait_idle, tmp_path, notes, wbc_pair):
    """A corrected expert mask opened on its own (no image beside it) is not written back over its file."""
    from napari_bloodseg.plugin.editing import set_corrected

    _, labels = wbc_pair
    path = tmp_path / "007.png"
    Image.fromarray(np.array([0, 128, 255], np.uint8)[labels]).save(path)
    before = path.read_bytes()
    (mask,) = viewer.open(str(path), plugin="napari-bloodseg")
    mask.data = np.zeros_like(mask.data)
    set_corrected(mask, True)
    widget = dock("Export masks")
    widget.folder_edit.setText(str(tmp_path))
    widget.overwrite_check.setChecked(True)
    result = _export(widget, wait_idle)
    assert result.written == [] and path.read_bytes() == before
    assert "007.png is the expert mask that layer '007 mask' was opened from" in notes.errors[-1]


def _big_layer(viewer, tmp_path, name: str):
    """A corrected RBC layer backed by an on-disk TIFF (as Segment leaves a big image's labels)."""
    from napari_bloodseg.io.lazy import open_label_output
    from napari_bloodseg.plugin.editing import set_corrected

    mm = open_label_output(tmp_path / f"{name}.labels.tif", (1000, 1000))
    mm[200:700, 100:900] = 1
    layer = viewer.add_labels(mm, **schema_layer_kwargs("rbc", f"{name} [m]", role="prediction", source=name))
    set_corrected(layer, True)
    return layer


def test_export_writes_in_a_worker_with_progress_and_cancel_keeps_what_was_written(
    viewer, dock, wait_idle, qtbot, tmp_path, notes, wbc_pair, lazy_threshold, monkeypatch
):
    """A slide-sized PNG takes seconds to write: the GUI thread only plans, a worker writes with a progress bar,
    and Cancel keeps the files already written, leaves no partial file and names what was not written."""
    import threading

    import napari_bloodseg.io.lazy as lazy
    from napari_bloodseg.plugin.editing import set_corrected

    _, labels = wbc_pair
    set_corrected(viewer.add_labels(labels, **schema_layer_kwargs("wbc", "001 [unet]", role="prediction")), True)
    _big_layer(viewer, tmp_path, "slide")
    _big_layer(viewer, tmp_path, "slide2")
    real, threads, started = lazy.write_mask_banded, [], threading.Event()
    widget = dock("Export masks")

    class Slow:  # the first big layer's rows: once its checking pass is read, wait for Cancel
        def __init__(self, data) -> None:
            self.data, self.shape, self.reads = data, data.shape, 0

        def __getitem__(self, key):
            self.reads += 1
            if self.reads > 1:
                started.set()
                assert widget._cancel.wait(30)
            return self.data[key]

    def recording(path, data, *args, **kwargs):
        threads.append(threading.current_thread())
        return real(path, Slow(data) if not started.is_set() else data, *args, **kwargs)

    monkeypatch.setattr(lazy, "write_mask_banded", recording)
    out = tmp_path / "out"
    widget.folder_edit.setText(str(out))
    assert widget.export() is not None and widget.running and not widget.export_btn.isEnabled()
    # the small mask and a checking pass are done (progress arrives as queued signals)
    qtbot.waitUntil(lambda: started.is_set() and widget.progress.value() > 0, timeout=30_000)
    assert widget.progress.value() < 1000
    big = [lyr for lyr in viewer.layers if lyr.name.startswith("slide")]
    assert not any(lyr.editable for lyr in big)  # read band by band: no stroke may tear the file
    widget.cancel()
    wait_idle(widget)
    result = widget.last_result
    assert threads and threads[0] is not threading.main_thread()
    assert [p.name for p in result.written] == ["001.png"]
    assert [p.name for p in result.cancelled] == ["slide.png", "slide2.png"]
    assert sorted(p.name for p in out.iterdir()) == ["001.png"]  # nothing partial
    assert "cancelled: 2 not written (slide.png, slide2.png)" in widget.status.text()
    assert "not written" in notes.warnings[-1] and widget.export_btn.isEnabled()
    assert all(lyr.editable for lyr in big)

    result = _export(widget, wait_idle)  # and again, to the end
    assert [p.name for p in result.written] == ["slide.png", "slide2.png"] and not result.cancelled
    assert [p.name for p in result.skipped] == ["001.png"] and widget.progress.value() == 1000
