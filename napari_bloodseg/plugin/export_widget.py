"""Batch export widget: write corrected (or all) segmentation layers as masks into a folder.

Files are named after the source image (``001.png`` for ``"001 [wbc-unet]"``), in the schema's grey convention,
atomically. Existing files are never replaced unless "Overwrite" is ticked; the notification lists what was skipped.
A file a layer came from (its image, an expert mask, the expert masks beside those images) is never replaced, even
with "Overwrite" ticked: that layer is not written, and an error says which file and why.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .layers import meta
from .writer import ExportResult, export_layers, layer_files, protected_files

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Labels


class ExportWidget(QWidget):
    """Folder + options + Export button over :func:`napari_bloodseg.plugin.writer.export_layers`."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.last_result: ExportResult | None = None

        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("folder for the masks")
        self.browse_btn = QPushButton("…")
        self.only_corrected = QCheckBox("Only layers marked corrected")
        self.only_corrected.setChecked(True)
        self.format_combo = QComboBox()
        self.format_combo.addItems([".png", ".tif"])
        self.overwrite_check = QCheckBox("Overwrite existing files")
        self.export_btn = QPushButton("Export masks")
        self.status = QLabel("Masks are named after their source image, in the schema's grey levels")
        self.status.setWordWrap(True)

        row = QHBoxLayout()
        row.addWidget(self.folder_edit, 1)
        row.addWidget(self.browse_btn)
        form = QFormLayout()
        form.addRow("Folder", row)
        form.addRow("Format", self.format_combo)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.only_corrected)
        layout.addWidget(self.overwrite_check)
        layout.addWidget(self.export_btn)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.browse_btn.clicked.connect(self._browse)
        self.export_btn.clicked.connect(self.export)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export masks to", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def layers_to_export(self) -> list[Labels]:
        """Segmentation and mask layers (never error maps), only the corrected ones when so ticked."""
        from napari.layers import Labels

        out = [lyr for lyr in self.viewer.layers if isinstance(lyr, Labels) and meta(lyr).get("role") != "errors"]
        if self.only_corrected.isChecked():
            out = [lyr for lyr in out if meta(lyr).get("corrected")]
        return out

    def export(self, *_: Any) -> ExportResult | None:
        """Write the layers; report written / skipped (exists) / failed files in a notification."""
        from napari.utils.notifications import show_error, show_info, show_warning

        folder = self.folder_edit.text().strip()
        if not folder:
            show_warning("Choose a folder to export to")
            return None
        layers = self.layers_to_export()
        if not layers:
            if self.only_corrected.isChecked():
                show_warning(
                    "No segmentation layers marked corrected: tick 'Marked as corrected' in the Correct widget, "
                    "or untick 'Only layers marked corrected'"
                )
            else:
                show_warning("No segmentation layers to export")
            return None
        from ..io.atomic import check_can_write_in

        try:  # a file where the folder should be was reported as 'skipped existing files'
            check_can_write_in(Path(folder).expanduser())
        except OSError as exc:
            self.status.setText(f"Not exported: {exc}")
            show_error(f"Cannot export to {folder}: {exc}")
            return None
        result = export_layers(
            layers,
            Path(folder).expanduser(),
            suffix=self.format_combo.currentText(),
            overwrite=self.overwrite_check.isChecked(),
            protected=protected_files(layer_files(self.viewer.layers)),
        )
        self.last_result = result
        parts = [f"Wrote {len(result.written)} mask(s) to {folder}"]
        if result.skipped:
            names = ", ".join(p.name for p in result.skipped[:5]) + (" …" if len(result.skipped) > 5 else "")
            parts.append(f"skipped {len(result.skipped)} existing file(s) ({names}): tick 'Overwrite' to replace")
        if result.refused:
            parts.append(f"refused {len(result.refused)} file(s) a layer came from (see the error)")
        if result.failed:
            parts.append(f"{len(result.failed)} failed (see the error)")
        self.status.setText("; ".join(parts))
        if result.refused:
            show_error(
                "Not written, even with 'Overwrite': " + "; ".join(result.refused) + ". Export to another folder"
            )
        if result.failed:
            show_error("Export failed for " + "; ".join(result.failed))
        if result.skipped:
            show_warning("; ".join(parts))
        else:
            show_info(parts[0])
        return result
