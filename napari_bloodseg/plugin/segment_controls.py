"""The Segment panel's controls and their layout: images, model, device, scale, cell size, tile, TTA, edge cells,
output options, Segment/Cancel, progress and status. What they do is wired by the widget."""

from __future__ import annotations

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from ..inference.defaults import DEFAULT_TILE_SIZE
from .devices import DeviceCombo


class SegmentControls:
    """Mixin for the Segment widget (a :class:`~napari_bloodseg.plugin.scroll.ScrollPanel`): makes the controls,
    laid out on ``self.content``."""

    def _build_controls(self) -> None:
        # images
        self.all_images = QCheckBox("All image layers")
        self.all_images.setChecked(True)
        self.image_list = QListWidget()
        self.image_list.setMaximumHeight(110)
        self.image_list.setToolTip("Untick 'All image layers' and tick the images to segment")
        # model, device
        self.model_combo = QComboBox()
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setMinimumContentsLength(18)  # long model names must not widen the whole dock
        self.model_info = QLabel()
        self.model_info.setWordWrap(True)
        self.refresh_models_btn = QPushButton("Refresh")
        self.refresh_models_btn.setToolTip("Re-scan shipped and user models (bloodseg models install ...)")
        self.device_combo = DeviceCombo()
        self.device_used = QLabel("–")
        self._build_sizes()
        self._build_options()
        # output
        self.new_layer_check = QCheckBox("Add a new layer (keep earlier results)")
        self.uncertainty_check = QCheckBox("Uncertainty layer (1 − max probability)")
        # run
        self._build_run_controls("Segment", "Ready")
        self._lay_out()
        self.device_combo.setToolTip("auto picks cuda > mps > cpu; the label below says what was really used")

    def _build_sizes(self) -> None:
        """Scale, cell size (and its Estimate button), tile size."""
        self.scale_spin = QDoubleSpinBox()
        self.scale_spin.setRange(0.05, 8.0)
        self.scale_spin.setSingleStep(0.1)
        self.scale_spin.setDecimals(2)
        self.scale_spin.setValue(1.0)
        self.scale_spin.setToolTip("Resize factor before the network (0.4 turns 250 px cells into 100 px cells)")
        self.cell_spin = QDoubleSpinBox()
        self.cell_spin.setRange(0.0, 2000.0)
        self.cell_spin.setDecimals(0)
        self.cell_spin.setSpecialValueText("off")
        self.cell_spin.setSuffix(" px")
        self.cell_spin.setToolTip(
            "Typical cell diameter in your images; when the model knows its training cell size this sets the scale"
        )
        self.estimate_btn = QPushButton("Estimate")
        self.estimate_btn.setToolTip(
            "Measure the cell diameter in the chosen images (up to 8, their median: images at one magnification): "
            "the model segments each at a ladder of scales and keeps the one at which it sees cells of its own "
            "training size (seconds per image; Cancel stops it)"
        )
        self.tile_spin = QSpinBox()
        self.tile_spin.setRange(0, 8192)
        self.tile_spin.setSingleStep(128)
        self.tile_spin.setValue(DEFAULT_TILE_SIZE)
        self.tile_spin.setSpecialValueText("whole image")
        self.tile_spin.setToolTip(
            "Big images run tile by tile to bound memory; 0 = whole image at once (images read from disk still run "
            f"in {DEFAULT_TILE_SIZE} px tiles)"
        )

    def _build_options(self) -> None:
        """Test-time augmentation and edge cells."""
        self.tta_combo = QComboBox()
        for text, value in (("auto (as the model card says)", "auto"), ("on (8x slower)", True), ("off", False)):
            self.tta_combo.addItem(text, value)
        self.tta_combo.setToolTip(
            "Test-time augmentation: average the 8 rotations/flips of the image. Auto uses it where it was measured "
            "to pay: single-cell crops (up to 0.1 MP of network input) for every model, and whole smear fields up "
            "to 1 MP of network input (~4 MP images) for rbc-deconvnet (+0.009 IoU, 8x the time); never on huge "
            "images"
        )
        self.edge_combo = QComboBox()
        for text, value in (("as the model's masks (auto)", "auto"), ("keep every cell", "keep")):
            self.edge_combo.addItem(text, value)
        self.edge_combo.setToolTip(
            "Cells cut by the image edge. Auto follows the model card: rbc-deconvnet leaves out cells showing "
            "less than 0.45 of a typical cell, as its expert masks do (the counting convention); WBC models keep "
            "every cell. 'Keep every cell' keeps them all"
        )

    def _lay_out(self) -> None:
        form = QFormLayout()
        form.addRow("Model", _row(self.model_combo, self.refresh_models_btn))
        form.addRow("", self.model_info)
        form.addRow("Device", self.device_combo)
        form.addRow("Device used", self.device_used)
        form.addRow("Scale", self.scale_spin)
        form.addRow("Cell size", _row(self.cell_spin, self.estimate_btn))
        form.addRow("Tile size", self.tile_spin)
        form.addRow("Test-time aug.", self.tta_combo)
        form.addRow("Edge cells", self.edge_combo)
        layout = QVBoxLayout(self.content)
        layout.addWidget(QLabel("<b>Images</b>"))
        layout.addWidget(self.all_images)
        layout.addWidget(self.image_list)
        layout.addLayout(form)
        layout.addWidget(self.new_layer_check)
        layout.addWidget(self.uncertainty_check)
        layout.addLayout(self._run_buttons())
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch(1)


def _row(field, button) -> QHBoxLayout:
    """A field that takes the room, with its button beside it."""
    row = QHBoxLayout()
    row.addWidget(field, 1)
    row.addWidget(button)
    return row
