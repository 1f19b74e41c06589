"""Correcting a segmentation by hand: class picker with names, a per-layer "corrected" flag, keyboard shortcuts.

Painting itself is napari's (brush, fill, eraser, undo); this widget makes the class values meaningful (buttons
say "nucleus", not "2") and records which layers a person has checked, so the batch export can write only those.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import QWidget

from ..schemas import IGNORE_INDEX, SCHEMAS, LabelSchema, get_schema
from .layers import apply_schema, labels_in_schema, layer_schema, level0, meta, too_big_to_load
from .scroll import ScrollPanel

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Labels

#: Layer-level shortcuts (napari's own: 1-7 and E/P/F/L/Z switch tools, [ ] brush size, Ctrl+Z undo).
CLASS_KEY = "Alt-{}"
CORRECTED_KEY = "Shift-C"

SHORTCUTS_HELP = (
    "Shortcuts on a segmentation layer: Alt+0 / Alt+1 / Alt+2 pick background / 1st / 2nd class and switch to "
    "the brush; Shift+C toggles 'corrected'. napari's own: P brush, F fill, E eraser, [ ] brush size, Ctrl+Z undo."
)


def is_corrected(layer: Labels) -> bool:
    return bool(meta(layer).get("corrected", False))


def set_corrected(layer: Labels, value: bool) -> None:
    """Record that a person has (or has not) checked this layer; listeners hear it as a metadata event."""
    meta(layer)["corrected"] = bool(value)
    layer.events.metadata()


def watch_edits(layer: Labels) -> None:
    """Note in the layer's metadata when a person paints on it (brush, fill, eraser, polygon: napari's ``paint``
    event), so re-running Segment does not replace hand edits that were never marked corrected."""
    meta(layer)["edited"] = False
    layer.events.paint.connect(_mark_edited)  # the same callback is connected once however often this runs


def _mark_edited(event: Any) -> None:
    meta(event.source)["edited"] = True


def is_edited(layer: Labels) -> bool:
    """Painted on since the network made it, or being painted on now (see :func:`stroke_in_progress`)."""
    return bool(meta(layer).get("edited", False)) or stroke_in_progress(layer)


def stroke_in_progress(layer: Labels) -> bool:
    """A brush stroke whose mouse button is still down: napari sends ``paint`` only when the stroke ends, so a
    result replacing the data now would wipe what was painted so far. napari has no public flag for it: while a
    stroke lasts the layer holds back its undo history (``_block_history``, names as of napari 0.9) and stages the
    changes (``_staged_history``)."""
    return bool(getattr(layer, "_block_history", False) or getattr(layer, "_staged_history", None))


def pick_class(layer: Labels, value: int) -> None:
    """Paint with class ``value`` from now on (brush tool, so the next stroke uses it)."""
    layer.selected_label = int(value)
    if layer.mode not in ("paint", "fill", "polygon"):
        layer.mode = "paint"


def bind_class_keys(layer: Labels, schema: LabelSchema | None = None) -> None:
    """Bind Alt+<class> and Shift+C on this layer only (so other Labels layers keep their own keys)."""
    sch = schema or layer_schema(layer)
    for value in range(min(sch.num_classes, 10)):

        def _pick(lyr: Labels, value: int = value) -> None:
            pick_class(lyr, value)

        layer.bind_key(CLASS_KEY.format(value), _pick, overwrite=True)
    for value in range(sch.num_classes, 10):  # a layer switched from WBC to RBC: Alt+2 no longer paints a class
        layer.bind_key(CLASS_KEY.format(value), None)  # unbinds (nothing when unbound)

    def _toggle(lyr: Labels) -> None:
        set_corrected(lyr, not is_corrected(lyr))

    layer.bind_key(CORRECTED_KEY, _toggle, overwrite=True)
    meta(layer)["keys_bound"] = True


def settle_schema(layer: Labels) -> None:
    """Give a blank Labels layer without a recorded schema the one of images its size, and record it.

    A layer made to paint from scratch is all background, which alone reads as RBC (0/1): over a white-cell crop
    the buttons offered 'cell', and what was painted trained as cytoplasm. Crops get WBC, smear fields RBC (the
    rule that picks Segment's model); the Schema box changes it. Layers with labels keep what their values say."""
    from ..models.zoo import schema_for_image

    info = meta(layer)
    data = level0(layer)
    if info.get("schema") or info.get("role") == "errors" or too_big_to_load(data) or len(data.shape) < 2:
        return
    if not np.asarray(data).any():
        apply_schema(layer, schema_for_image(*data.shape[-2:]))


def change_schema(layer: Labels, schema: str) -> None:
    """Record another schema for the layer; ValueError (nothing changed) when its labels are not that schema's."""
    data = level0(layer)
    if too_big_to_load(data):
        raise ValueError(f"{layer.name} is read from disk: its schema is the one it was made with")
    labels_in_schema(np.asarray(data), get_schema(schema))
    apply_schema(layer, schema)


def _swatch(rgba: tuple[int, int, int, int]):
    from qtpy.QtGui import QColor, QIcon, QPixmap

    pix = QPixmap(14, 14)
    r, g, b, a = rgba
    pix.fill(QColor(r, g, b, max(a, 60)))
    return QIcon(pix)


class EditWidget(ScrollPanel):
    """Class picker + corrected toggle for the active segmentation layer."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        from qtpy.QtWidgets import (
            QButtonGroup,
            QCheckBox,
            QComboBox,
            QFormLayout,
            QGridLayout,
            QLabel,
            QVBoxLayout,
        )

        super().__init__()
        self.viewer = napari_viewer
        self._target: Labels | None = None
        self._buttons: list[Any] = []
        #: paints IGNORE_INDEX (255): "not annotated", skipped by fine-tuning and evaluation
        self.unlabelled_btn: Any = None

        self.layer_combo = QComboBox()
        self.layer_combo.setToolTip("Labels layer to correct (follows the layer selected in the layer list)")
        self.schema_combo = QComboBox()
        for sch in SCHEMAS.values():
            self.schema_combo.addItem(f"{sch.name.upper()}: {', '.join(sch.class_names[1:])}", sch.name)
        self.schema_combo.setToolTip(
            "What the label values mean in this layer. A new blank layer starts as WBC over a single-cell crop and "
            "as RBC over a smear field; change it here before painting"
        )
        self.class_box = QWidget()
        self.class_grid = QGridLayout(self.class_box)
        self.class_grid.setContentsMargins(0, 0, 0, 0)
        self.class_group = QButtonGroup(self)
        self.class_group.setExclusive(True)
        self.corrected_check = QCheckBox("Marked as corrected")
        self.corrected_check.setToolTip(
            "Tick once you have checked and fixed this layer; Export can then write only corrected layers"
        )
        self.help_label = QLabel(SHORTCUTS_HELP)
        self.help_label.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Layer", self.layer_combo)
        form.addRow("Schema", self.schema_combo)
        form.addRow("Paint class", self.class_box)
        layout = QVBoxLayout(self.content)
        layout.addLayout(form)
        layout.addWidget(self.corrected_check)
        layout.addWidget(self.help_label)
        layout.addStretch(1)
        self.setMinimumHeight(190)  # class buttons and the shortcut text stay readable in a shared dock area

        self.layer_combo.currentIndexChanged.connect(self._on_combo)
        self.schema_combo.currentIndexChanged.connect(self._on_schema_combo)
        self.class_group.idClicked.connect(self._on_class_clicked)
        self.corrected_check.toggled.connect(self._on_corrected_toggled)
        self.viewer.layers.events.inserted.connect(self._on_inserted)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self.viewer.layers.events.reordered.connect(self._refresh_layers)
        self.viewer.layers.selection.events.active.connect(self._on_active)
        for layer in self._labels_layers():
            self._prepare(layer)
        self._refresh_layers()
        self._on_active()

    # -- layers -------------------------------------------------------------------------------------------------
    def _labels_layers(self) -> list[Labels]:
        from napari.layers import Labels

        return [layer for layer in self.viewer.layers if isinstance(layer, Labels)]

    def _prepare(self, layer: Labels) -> None:
        if meta(layer).get("role") == "errors":
            return
        settle_schema(layer)
        bind_class_keys(layer)
        layer.events.name.connect(self._refresh_layers)

    def _on_inserted(self, event: Any) -> None:
        from napari.layers import Labels

        if isinstance(event.value, Labels):
            self._prepare(event.value)
        self._refresh_layers()

    def _refresh_layers(self, *_: Any) -> None:
        current = self._target
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        layers = [lyr for lyr in self._labels_layers() if meta(lyr).get("role") != "errors"]
        for layer in layers:
            self.layer_combo.addItem(layer.name)
        self.layer_combo.blockSignals(False)
        if current in layers:
            self.layer_combo.setCurrentIndex(layers.index(current))
            return
        self.set_target(layers[-1] if layers else None)

    def _on_active(self, *_: Any) -> None:
        from napari.layers import Labels

        active = self.viewer.layers.selection.active
        if isinstance(active, Labels) and meta(active).get("role") != "errors":
            self.set_target(active)

    def _on_combo(self, index: int) -> None:
        name = self.layer_combo.itemText(index)
        for layer in self._labels_layers():
            if layer.name == name:
                self.set_target(layer)
                return

    # -- target -------------------------------------------------------------------------------------------------
    @property
    def target(self) -> Labels | None:
        return self._target

    def set_target(self, layer: Labels | None) -> None:
        """Show classes and the corrected flag of ``layer`` (rebuilding buttons for its schema)."""
        old = self._target
        if old is not None:
            for emitter, cb in ((old.events.selected_label, self._sync_class), (old.events.metadata, self._sync_meta)):
                try:
                    emitter.disconnect(cb)
                except (TypeError, ValueError, RuntimeError):
                    pass
        self._target = layer
        self._build_buttons()
        self._sync_schema()
        if layer is not None:
            idx = self.layer_combo.findText(layer.name)
            if idx >= 0 and idx != self.layer_combo.currentIndex():
                self.layer_combo.blockSignals(True)
                self.layer_combo.setCurrentIndex(idx)
                self.layer_combo.blockSignals(False)
            layer.events.selected_label.connect(self._sync_class)
            layer.events.metadata.connect(self._sync_meta)
        self._sync_class()
        self._sync_meta()

    def _build_buttons(self) -> None:
        from qtpy.QtWidgets import QPushButton

        for btn in [*self._buttons, *([self.unlabelled_btn] if self.unlabelled_btn is not None else [])]:
            self.class_group.removeButton(btn)
            btn.setParent(None)
            btn.deleteLater()
        self._buttons = []
        self.unlabelled_btn = None
        layer = self._target
        if layer is None:
            return
        sch = layer_schema(layer)
        for value, name in enumerate(sch.class_names):
            btn = QPushButton(name)
            btn.setCheckable(True)
            btn.setMinimumHeight(26)
            btn.setIcon(_swatch(sch.colors[value]))
            key = f" (Alt+{value})" if value < 10 else ""
            btn.setToolTip(f"Paint label value {value}: {name}{key}")
            self.class_group.addButton(btn, value)
            self.class_grid.addWidget(btn, value // 3, value % 3)
            self._buttons.append(btn)
        btn = QPushButton("unlabelled")
        btn.setCheckable(True)
        btn.setMinimumHeight(26)
        btn.setToolTip(
            f"Paint label value {IGNORE_INDEX}: not annotated (transparent). Fine-tuning and evaluation skip these "
            "pixels, so only part of an image needs correcting"
        )
        self.class_group.addButton(btn, IGNORE_INDEX)
        n = sch.num_classes
        self.class_grid.addWidget(btn, n // 3, n % 3)
        self.unlabelled_btn = btn

    def _sync_schema(self) -> None:
        layer = self._target
        self.schema_combo.setEnabled(layer is not None)
        if layer is not None:
            self.schema_combo.blockSignals(True)
            self.schema_combo.setCurrentIndex(self.schema_combo.findData(layer_schema(layer).name))
            self.schema_combo.blockSignals(False)

    def _on_schema_combo(self, index: int) -> None:
        from napari.utils.notifications import show_warning

        layer, schema = self._target, self.schema_combo.itemData(index)
        if layer is None or schema == layer_schema(layer).name:
            return
        try:
            change_schema(layer, schema)
        except ValueError as exc:
            show_warning(f"{layer.name} stays {layer_schema(layer).name.upper()}: {exc}")
            self._sync_schema()
            return
        bind_class_keys(layer)
        self._build_buttons()
        self._sync_class()

    def _sync_class(self, *_: Any) -> None:
        layer = self._target
        if layer is None:
            return
        btn = self.class_group.button(int(layer.selected_label))
        if btn is not None:
            btn.setChecked(True)

    def _sync_meta(self, *_: Any) -> None:
        layer = self._target
        self.corrected_check.setEnabled(layer is not None)
        self.corrected_check.blockSignals(True)
        self.corrected_check.setChecked(bool(layer is not None and is_corrected(layer)))
        self.corrected_check.blockSignals(False)

    def _on_class_clicked(self, value: int) -> None:
        if self._target is not None:
            pick_class(self._target, value)

    def _on_corrected_toggled(self, checked: bool) -> None:
        if self._target is not None:
            set_corrected(self._target, checked)
