"""The Fine-tune widget's training data: Layers (image ↔ segmentation pairs, ticked) or a folder of image + mask
pairs. Which layers pair, and their checks, are :mod:`.finetune_pairs`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFileDialog, QListWidgetItem

from .finetune_pairs import LayerPair, find_layer_pairs


class FinetuneSource:
    """Mixin for the Fine-tune widget: the source choice, the pair list and its ticks (``_pairs``, ``_ticks``,
    ``_seen_state``), the folder. A change of either lets an automatic base follow (:class:`.FinetuneModels`)."""

    def _on_source_toggled(self, *_: Any) -> None:
        """Show the chosen source's controls; an automatic base follows that source only (the layers' pairs must
        not move it away from the folder's schema, nor the folder from the pairs')."""
        layers = self.layers_radio.isChecked()
        self.pair_list.setVisible(layers)
        self.pairs_label.setVisible(layers)
        self.folder_box.setVisible(not layers)
        if layers:
            self._follow_pairs_model()
        elif text := self.folder_edit.text().strip():
            self._follow_folder_schema(Path(text))

    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of corrected image + mask pairs")
        if folder:
            self.set_folder(folder)

    def set_folder(self, folder: str | Path | None) -> None:
        """Train from a folder of image+mask pairs (None: from layers again)."""
        if folder is None:
            self.layers_radio.setChecked(True)
            return
        self.folder_edit.setText(str(folder))
        if self.folder_radio.isChecked():
            self._follow_folder_schema(Path(folder))
        else:
            self.folder_radio.setChecked(True)  # follows the folder's schema (_on_source_toggled)

    def _on_folder_typed(self) -> None:
        text = self.folder_edit.text().strip()
        if text:
            self._follow_folder_schema(Path(text))

    def _watch(self, layer: Any) -> None:
        layer.events.name.connect(self._on_layers_changed)
        layer.events.metadata.connect(self._on_layers_changed)

    def _on_layers_changed(self, event: Any = None) -> None:
        value = getattr(event, "value", None)
        if value is not None and getattr(event, "type", "") == "inserted":
            self._watch(value)
        self.refresh_pairs()

    def refresh_pairs(self) -> None:
        """Re-list pairs; a pair is ticked by default (and again when it becomes corrected) if it is corrected or
        an expert mask; the user's own ticks are kept otherwise."""
        self._pairs = find_layer_pairs(self.viewer)
        self.pair_list.blockSignals(True)
        self.pair_list.clear()
        for pair in self._pairs:
            state = pair.corrected or pair.is_mask
            if pair.key not in self._ticks or self._seen_state.get(pair.key) != state:
                self._ticks[pair.key] = state
            self._seen_state[pair.key] = state
            item = QListWidgetItem(pair.text)
            item.setData(Qt.ItemDataRole.UserRole, pair.key)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if self._ticks[pair.key] else Qt.CheckState.Unchecked)
            self.pair_list.addItem(item)
        self.pair_list.blockSignals(False)
        self._update_pairs_label()
        self._follow_pairs_model()

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        self._ticks[str(item.data(Qt.ItemDataRole.UserRole))] = item.checkState() == Qt.CheckState.Checked
        self._update_pairs_label()
        self._follow_pairs_model()

    def _update_pairs_label(self) -> None:
        if not self._pairs:
            self.pairs_label.setText("no image ↔ segmentation pairs (they pair by name: '001' and '001 [model]')")
            return
        n = len(self.ticked_pairs())
        corrected = sum(p.corrected for p in self._pairs)
        self.pairs_label.setText(f"{n} of {len(self._pairs)} pair(s) ticked; {corrected} marked corrected")

    def ticked_pairs(self) -> list[LayerPair]:
        return [p for p in self._pairs if self._ticks.get(p.key)]

    def select_pairs(self, labels_names: list[str]) -> None:
        """Tick exactly the pairs of these labels layers (scripts, tests)."""
        self.layers_radio.setChecked(True)
        for pair in self._pairs:
            self._ticks[pair.key] = pair.labels.name in labels_names
        self.refresh_pairs()
