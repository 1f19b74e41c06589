"""The Segment widget's *Estimate* button: measure the cell diameter in the chosen images (in a worker, with the
model Segment will use) and put it in *Cell size*, where the user sees it and may change it before segmenting."""

from __future__ import annotations

from typing import Any

from .devices import failure_message
from .layers import image_rgb
from .model_choices import ModelChoice
from .segment_work import Failure


class CellSizeEstimate:
    """Mixin for the Segment widget (after :class:`~.segment_run.SegmentRun`, whose guard and error slot it
    shares)."""

    def estimate_cell_size(self) -> Any:
        """Fill *Cell size* with the diameter measured on the chosen images, in a worker; returns the worker (None
        if nothing to measure). The user sees the number and may change it before segmenting."""
        from napari.utils.notifications import show_error, show_warning

        choice = self._idle_choice("The widget is busy; cancel the current run first", "No model to measure with")
        if choice is None:
            return None
        layers = self.selected_images()
        if not layers:
            show_warning("No image layer to measure: open an image or tick one in the list")
            return None
        images, names = [], []
        for layer in layers:
            try:
                images.append(image_rgb(layer, lazy=True))
                names.append(layer.name)
            except ValueError as exc:
                show_error(str(exc))
        if not images:
            return None
        what = names[0] if len(names) == 1 else f"{len(names)} images"
        return self._start_worker(
            self._estimate_work,
            images,
            what,
            choice,
            self.device_combo.device(),
            self._tile_size(),
            self.tta_combo.currentData(),
            str(self.edge_combo.currentData()),
            connect={"returned": self._on_estimated, "errored": self._on_error, "finished": self._worker_done},
            message=f"Measuring the cells of {what} with {choice.spec} …",
        )

    def _estimate_work(
        self, images: list[Any], what: str, choice: ModelChoice, device: str, tile: int, tta: Any, edge: str
    ) -> Any:
        """Worker thread: (what, CellSizeEstimate), a Failure with the reason, or None when cancelled. The
        predictor is the one Segment will use (cached: the weights load once)."""
        from ..inference import Cancelled
        from ..inference.cell_size import estimate_batch_cell_size
        from ..models import ModelFileError

        try:
            predictor = self._get_predictor(choice, device, tile, tta, edge)
            emit = self._signals.progress.emit
            est = estimate_batch_cell_size(
                predictor, images, progress=lambda done, total: emit(done / total), cancel=self._cancel.is_set
            )
        except Cancelled:
            return None
        except (ValueError, ModelFileError, OSError, MemoryError) as exc:  # CellSizeError is a ValueError
            return Failure(f"{what}: {failure_message(exc)}")
        return what, est

    def _on_estimated(self, result: Any) -> None:
        if result is None:
            self.status.setText("Cell size estimation cancelled")
            return
        if isinstance(result, Failure):
            from napari.utils.notifications import show_error

            self.status.setText(f"Failed: {result.message}")
            show_error(f"Cell size estimation failed: {result.message}")
            return
        what, est = result
        self.cell_spin.setValue(round(est.diameter_px))
        self.progress.setValue(1000)
        among = f"median of {est.n_images} images, " if est.n_images > 1 else ""
        self.status.setText(
            f"Cells of {what}: ~{est.diameter_px:.0f} px across ({among}{est.n_cells} cells measured), so this model "
            f"runs at scale {est.scale:.2f}. Segment uses it while Cell size says so."
        )
