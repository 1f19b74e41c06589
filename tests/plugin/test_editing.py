"""Editing helpers: class picker by name, keyboard shortcuts on the layer, the per-layer "corrected" flag."""

from __future__ import annotations

import numpy as np

from napari_bloodseg.plugin.layers import schema_layer_kwargs
from napari_bloodseg.schemas import RBC, WBC


def _prediction(viewer, shape=(64, 64), schema="wbc", name="cell [unet]"):
    return viewer.add_labels(
        np.zeros(shape, np.uint8), **schema_layer_kwargs(schema, name, role="prediction", source="cell", model="unet")
    )


def test_class_buttons_named_by_schema_and_pick_paint_class(viewer, dock):
    layer = _prediction(viewer)
    widget = dock("Correct")
    assert widget.target.name == layer.name
    assert [btn.text() for btn in widget._buttons] == list(WBC.class_names)
    assert "Alt+2" in widget._buttons[2].toolTip()

    layer.mode = "pan_zoom"
    widget._buttons[2].click()
    assert layer.selected_label == 2
    assert layer.mode == "paint"

    # a correction painted with the picked class lands in the data
    layer.brush_size = 5
    layer.paint((30, 30), layer.selected_label, refresh=True)
    assert layer.data[30, 30] == 2
    assert (layer.data == 2).sum() > 1
    assert (layer.data[:, :20] == 0).all()


def test_status_bar_names_every_value_the_widget_paints(viewer, dock):
    """napari's status bar reads the class under the cursor from the layer's features, 'unlabelled' included."""
    layer = _prediction(viewer)
    widget = dock("Correct")
    widget.unlabelled_btn.click()
    layer.paint((10, 10), layer.selected_label, refresh=True)
    layer.paint((40, 40), 2, refresh=True)
    assert "class: unlabelled" in layer._get_properties((10, 10))
    assert "class: nucleus" in layer._get_properties((40, 40))


def test_shortcuts_pick_classes_and_toggle_corrected(viewer, dock):
    layer = _prediction(viewer)
    widget = dock("Correct")
    viewer.layers.selection.active = layer
    keys = viewer.window._qt_viewer._key_map_handler

    assert keys.press_key("Alt-1")
    assert layer.selected_label == 1
    assert widget.class_group.checkedId() == 1
    assert keys.press_key("Alt-0")
    assert layer.selected_label == 0

    assert layer.metadata["bloodseg"]["corrected"] is False
    assert keys.press_key("Shift-C")
    assert layer.metadata["bloodseg"]["corrected"] is True
    assert widget.corrected_check.isChecked()
    widget.corrected_check.setChecked(False)
    assert layer.metadata["bloodseg"]["corrected"] is False
    # the widget text documents the keys it binds
    assert "Alt+1" in widget.help_label.text() and "Shift+C" in widget.help_label.text()


def test_widget_follows_active_layer_and_its_schema(viewer, dock):
    wbc = _prediction(viewer, name="w [unet]")
    rbc = _prediction(viewer, schema="rbc", name="r [unet:rbc]")
    widget = dock("Correct")
    viewer.layers.selection.active = wbc
    assert len(widget._buttons) == WBC.num_classes
    viewer.layers.selection.active = rbc
    assert widget.target.name == rbc.name
    assert len(widget._buttons) == RBC.num_classes
    # flags are per layer
    widget.corrected_check.setChecked(True)
    assert rbc.metadata["bloodseg"]["corrected"] is True
    assert wbc.metadata["bloodseg"]["corrected"] is False
    # a layer added later gets the shortcuts too
    late = _prediction(viewer, name="late [unet]")
    viewer.layers.selection.active = late
    assert viewer.window._qt_viewer._key_map_handler.press_key("Alt-2")
    assert late.selected_label == 2


def test_a_blank_layer_takes_the_schema_of_images_its_size_and_can_be_switched(viewer, dock, notes):
    """A new empty Labels layer over a white-cell crop offered RBC's 'cell' (all zeros read as 0/1), and what
    was painted trained as cytoplasm; over a smear field it stays RBC. The Schema box changes it."""
    from napari_bloodseg.plugin.finetune_pairs import LayerPair, pair_samples

    widget = dock("Correct")
    crop = viewer.add_image(np.zeros((96, 96, 3), np.uint8), name="001", rgb=True)
    blank = viewer.add_labels(np.zeros((96, 96), np.uint8), name="001 labels")
    viewer.layers.selection.active = blank
    assert [btn.text() for btn in widget._buttons] == list(WBC.class_names)
    assert widget.schema_combo.currentData() == "wbc"
    keys = viewer.window._qt_viewer._key_map_handler
    assert keys.press_key("Alt-2") and blank.selected_label == 2
    blank.paint((40, 40), 2, refresh=True)
    assert blank.metadata["bloodseg"]["schema"] == "wbc"
    (sample,) = pair_samples([LayerPair(crop, blank)], "wbc", "wbc-unet")
    assert sample.labels.max() == 2

    field = viewer.add_labels(np.zeros((800, 1000), np.uint8), name="field labels")
    viewer.layers.selection.active = field
    assert [btn.text() for btn in widget._buttons] == list(RBC.class_names)

    # switching a layer that holds a nucleus to RBC is refused, an empty one switches
    viewer.layers.selection.active = blank
    widget.schema_combo.setCurrentIndex(widget.schema_combo.findData("rbc"))
    assert blank.metadata["bloodseg"]["schema"] == "wbc" and widget.schema_combo.currentData() == "wbc"
    assert any("stays WBC" in msg for msg in notes.warnings)
    blank.data = np.zeros_like(blank.data)
    widget.schema_combo.setCurrentIndex(widget.schema_combo.findData("rbc"))
    assert blank.metadata["bloodseg"]["schema"] == "rbc"
    assert [btn.text() for btn in widget._buttons] == list(RBC.class_names)
    blank.selected_label = 0
    keys.press_key("Alt-2")
    assert blank.selected_label == 0  # Alt+2 no longer picks a class the layer does not have
