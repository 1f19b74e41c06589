"""Batch export widget: write corrected (or all) segmentation layers as masks into a folder.

Files are named after the source image (``001.png`` for ``"001 [wbc-unet]"``), in the schema's grey convention,
atomically. Existing files are never replaced unless "Overwrite" is ticked; the notification lists what was skipped.
A file a layer came from (its image, an expert mask, the expert masks beside those images) is never replaced, even
with "Overwrite" ticked: that layer is not written, and an error says which file and why.

The files are written in a worker (a slide-sized PNG takes seconds), with a progress bar and Cancel: cancelling
keeps the files already written, drops the one being written (writes are atomic) and says which were not written.
In-memory layers are copied first; a layer too big to copy is read-only until its file is written.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .background import BackgroundRun
from .layers import meta
from .writer import ExportJob, ExportResult, layer_files, plan_export, protected_files, write_export

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Labels


class _Signals(QObject):
    """Progress from the writing (worker thread), queued to the GUI thread."""

    step = Signal(float)


class ExportWidget(BackgroundRun, QWidget):
    """Folder + options + Export button over :func:`~napari_bloodseg.plugin.writer.plan_export` (on the GUI
    thread) and :func:`~napari_bloodseg.plugin.writer.write_export` (in a worker)."""

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
        self._build_run_controls(
            "Export masks", "Masks are named after their source image, in the schema's grey levels", percent=False
        )
        self.export_btn = self.run_btn

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
        layout.addLayout(self._run_buttons())
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.browse_btn.clicked.connect(self._browse)
        self.export_btn.clicked.connect(self.export)
        self.cancel_btn.clicked.connect(self.cancel)
        self._init_background()
        self._signals = _Signals()  # no Qt parent: a worker may still emit while Qt destroys the widget
        self._signals.step.connect(self._on_progress)
        self._folder = ""
        self._locked: list[tuple[Any, bool]] = []  # big layers made read-only while their file is written

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

    def export(self, *_: Any) -> Any:
        """Check the folder and plan the files here; write them in a worker (returned; None when nothing starts).
        The result, in :attr:`last_result`, is reported in the status line and a notification."""
        from napari.utils.notifications import show_error, show_warning

        if self.running:
            return None
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
        jobs, result = plan_export(
            layers,
            Path(folder).expanduser(),
            suffix=self.format_combo.currentText(),
            protected=protected_files(layer_files(self.viewer.layers)),
        )
        self.last_result = None
        self._folder = folder
        # a disk-backed layer is read band by band while the worker writes: a stroke meanwhile would tear the file
        big = {job.name for job in jobs if job.big}
        self._locked = [(layer, layer.editable) for layer in layers if layer.name in big]
        for layer, _ in self._locked:
            layer.editable = False
        return self._start_worker(
            self._write,
            jobs,
            result,
            self.overwrite_check.isChecked(),
            self._signals,
            self._cancel,
            connect={
                "returned": self._report,
                "errored": self._on_error,
                "finished": self._finished,
            },
            message=f"Exporting {len(jobs)} mask(s) to {folder} …",
        )

    @staticmethod
    def _write(
        jobs: list[ExportJob], result: ExportResult, overwrite: bool, signals: _Signals, cancel: threading.Event
    ) -> ExportResult:
        """Worker thread: write the files; progress goes to the GUI thread as queued signals (every 0.5 %)."""
        last = [-1.0]

        def progress(fraction: float) -> None:
            if fraction - last[0] >= 0.005 or fraction >= 1.0:
                last[0] = fraction
                signals.step.emit(fraction)

        return write_export(jobs, result, overwrite=overwrite, progress=progress, cancel=cancel.is_set)

    def _finished(self) -> None:
        for layer, editable in self._locked:
            layer.editable = editable
        self._locked = []
        self._worker_done()

    def _on_progress(self, fraction: float) -> None:
        if self.running:
            self.progress.setValue(int(1000 * fraction))

    def _on_error(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error

        self.status.setText(f"Export failed: {exc}")
        show_error(f"Export failed: {exc}")

    def _report(self, result: ExportResult) -> None:
        """Status line and notifications: written / skipped (exists) / refused / failed / not written (cancelled)."""
        from napari.utils.notifications import show_error, show_info, show_warning

        self.last_result = result
        folder = self._folder
        parts = [f"Wrote {len(result.written)} mask(s) to {folder}"]
        if result.cancelled:
            names = _names(result.cancelled)
            parts.append(f"cancelled: {len(result.cancelled)} not written ({names})")
        if result.skipped:
            names = _names(result.skipped)
            parts.append(f"skipped {len(result.skipped)} existing file(s) ({names}): tick 'Overwrite' to replace")
        if result.refused:
            parts.append(f"refused {len(result.refused)} file(s) a layer came from (see the error)")
        if result.failed:
            parts.append(f"{len(result.failed)} failed (see the error)")
        self.status.setText("; ".join(parts))
        if not result.cancelled:
            self.progress.setValue(1000)
        if result.refused:
            show_error(
                "Not written, even with 'Overwrite': " + "; ".join(result.refused) + ". Export to another folder"
            )
        if result.failed:
            show_error("Export failed for " + "; ".join(result.failed))
        if result.skipped or result.cancelled:
            show_warning("; ".join(parts))
        else:
            show_info(parts[0])


def _names(paths: list[Path]) -> str:
    return ", ".join(p.name for p in paths[:5]) + (" …" if len(paths) > 5 else "")
