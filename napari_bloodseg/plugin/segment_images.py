"""The Segment widget's Images list: the viewer's image layers (all of them, or the ones ticked), kept in step
with the layer list."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QListWidgetItem

from .layers import meta

if TYPE_CHECKING:  # pragma: no cover
    from napari.layers import Image


class SegmentImages:
    """Mixin for the Segment widget: ``all_images`` and ``image_list`` follow the viewer's layers."""

    def _image_layers(self) -> list[Image]:
        from napari.layers import Image

        return [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, Image) and meta(layer).get("role") not in ("uncertainty",)
        ]

    def _on_layers_changed(self, event: Any = None) -> None:
        value = getattr(event, "value", None)
        if value is not None and getattr(event, "type", "") == "inserted":
            value.events.name.connect(self._on_layers_changed)
        if value is not None and getattr(event, "type", "") == "removed":
            self._label_files.remove(meta(value).get("labels_file"))
        self.refresh_images()
        self.suggest_model()

    def refresh_images(self) -> None:
        """Re-list image layers, keeping ticks by name."""
        ticked = set(self._ticked_names())
        self.image_list.clear()
        for layer in self._image_layers():
            item = QListWidgetItem(layer.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if layer.name in ticked else Qt.CheckState.Unchecked)
            self.image_list.addItem(item)

    def _ticked_names(self) -> list[str]:
        out = []
        for i in range(self.image_list.count()):
            item = self.image_list.item(i)
            if item.checkState() == Qt.CheckState.Checked:
                out.append(item.text())
        return out

    def select_images(self, names: list[str] | None) -> None:
        """Tick these image layers (None: all image layers)."""
        self.all_images.setChecked(names is None)
        for i in range(self.image_list.count()):
            item = self.image_list.item(i)
            on = names is None or item.text() in names
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def selected_images(self) -> list[Image]:
        layers = self._image_layers()
        if self.all_images.isChecked():
            return layers
        ticked = set(self._ticked_names())
        return [layer for layer in layers if layer.name in ticked]
