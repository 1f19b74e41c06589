"""The Segment button and what a run reports back (GUI thread): progress, results as they finish, the final status.

Cancel stops at the next tile: the image in progress is dropped whole, images already finished keep their layers;
a result finishing as Cancel is pressed, or for an image closed during the run, is dropped too.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..inference.defaults import DEFAULT_TILE_SIZE, MIN_TILE_SIZE
from .layers import image_file, image_rgb, is_lazy
from .model_choices import ModelChoice
from .segment_work import Failure, Job, Note

if TYPE_CHECKING:  # pragma: no cover
    from napari.layers import Image


class SegmentRun:
    """Mixin for the Segment widget (before :class:`~napari_bloodseg.plugin.background.BackgroundRun`): owns the
    run's bookkeeping, ``_run_stats``, ``_job_layers`` (the image layers of the run) and ``last_layers``."""

    @property
    def last_status(self) -> str:
        """``"running"``, ``"done"``, ``"cancelled"`` or ``"error"`` for the last run ("" before any)."""
        return str(self._run_stats.get("status", ""))

    def _idle_choice(self, busy: str, no_model: str) -> ModelChoice | None:
        """The chosen model when the widget is free to start work; None, after telling the user why, otherwise."""
        from napari.utils.notifications import show_error, show_warning

        if self.running:
            show_warning(busy)
            return None
        choice = self.current_choice()
        if choice is None:
            show_error(no_model)
        return choice

    def _tile_size(self) -> int:
        """*Tile size* as Segment and Estimate run it: 0 (whole image) or at least MIN_TILE_SIZE."""
        tile = int(self.tile_spin.value())
        return tile if tile == 0 else max(tile, MIN_TILE_SIZE)  # a typed 8 px tile made an all-background mask

    def run(self) -> Any:
        """Start segmenting the chosen images in a worker thread; returns the worker (None if nothing to do)."""
        from napari.utils.notifications import show_error, show_warning

        choice = self._idle_choice("A segmentation is already running; cancel it first", "No model to run")
        if choice is None:
            return None
        jobs = []
        sources: dict[str, Image] = {}
        for layer in self.selected_images():
            try:
                image = image_rgb(layer, lazy=True)
            except ValueError as exc:
                show_error(str(exc))
                continue
            jobs.append(
                Job(
                    layer.name,
                    image,
                    tuple(layer.scale[-2:]),
                    tuple(layer.translate[-2:]),
                    is_lazy(image),
                    image_file(layer),
                )
            )
            sources[layer.name] = layer
            if jobs[-1].lazy and self.uncertainty_check.isChecked():
                show_warning(f"{layer.name} is read from disk: no uncertainty layer (it would not fit in memory)")
        if not jobs:
            show_warning("No image layer to segment: open an image or tick one in the list")
            return None
        if choice.source == "untrained":
            show_warning(f"{choice.spec} is untrained (random weights): its output is meaningless until trained")
        device = self.device_combo.device()
        tile = self._tile_size()
        notes = []
        streamed = [job.name for job in jobs if job.lazy]
        if tile == 0 and streamed:
            # "whole image" over a slide: one pass over all of it (105 MP: 40 s, 4.75 GB, no Cancel); such images
            # are streamed tile by tile whatever the setting, the others still run whole
            what = f"{streamed[0]} is" if len(streamed) == 1 else f"{len(streamed)} images are"
            notes.append(
                f"{what} read from disk: segmented in {DEFAULT_TILE_SIZE} px tiles, not whole (memory stays bounded "
                "and Cancel works)"
            )
            show_warning(notes[-1])
        tta = self.tta_combo.currentData()
        edge = str(self.edge_combo.currentData())
        self.last_layers = []
        self._renamed = {}
        self._run_stats = {"n": len(jobs), "done": 0, "t0": time.perf_counter(), "status": "running", "notes": notes}
        self._job_layers = sources
        return self._start_worker(
            self._work,
            jobs,
            choice,
            device,
            tile,
            tta,
            edge,
            float(self.scale_spin.value()),
            float(self.cell_spin.value()),
            self.uncertainty_check.isChecked(),
            connect={"yielded": self._on_yielded, "errored": self._on_error, "finished": self._on_finished},
            message=f"Segmenting {len(jobs)} image(s) with {choice.spec} …",
        )

    def _set_running(self, on: bool) -> None:
        super()._set_running(on)
        self.estimate_btn.setEnabled(not on)

    def _on_progress(self, fraction: float) -> None:
        self.progress.setValue(int(round(1000 * min(max(fraction, 0.0), 1.0))))

    def _on_yielded(self, item: Any) -> None:
        if isinstance(item, str):
            self.device_used.setText(item)
            return
        if isinstance(item, Note):
            self._run_stats["notes"].append(item.message)
            return
        if isinstance(item, Failure):
            from napari.utils.notifications import show_error

            self._run_stats["status"] = "error"
            self.status.setText(f"Failed: {item.message}")
            show_error(f"Segmentation failed: {item.message}")
            return
        if self._cancel.is_set():  # finished just as Cancel was pressed: the user asked for nothing more to change
            self._label_files.remove(item.labels_file)
            return
        source = self._job_layers.get(item.image_name)
        if source is not None and not any(layer is source for layer in self.viewer.layers):
            # its image was closed during the run: labels over nothing, which the user had let go of
            self._label_files.remove(item.labels_file)
            self._run_stats["notes"].append(f"{item.image_name} was closed during the run: its result was dropped")
            return
        item.model = self._renamed.get(item.model, item.model)  # renamed mid-run: the same weights, a new name
        self.last_layers.append(self._commit(item))
        self._run_stats["done"] += 1

    def _on_error(self, exc: BaseException) -> None:
        """An unexpected error: napari's worker already shows it (with traceback); keep the widget usable."""
        self._run_stats["status"] = "error"
        self.status.setText(f"Failed: {type(exc).__name__}: {exc}")

    def _on_finished(self) -> None:
        stats = self._run_stats
        seconds = time.perf_counter() - stats.get("t0", time.perf_counter())
        done, n = stats.get("done", 0), stats.get("n", 0)
        if stats.get("status") == "error":
            pass
        elif self._cancel.is_set():
            stats["status"] = "cancelled"
            self.status.setText(f"Cancelled: {done} of {n} image(s) finished, the one in progress was dropped")
        else:
            stats["status"] = "done"
            notes = "".join(f"; {note}" for note in stats.get("notes", []))
            self.status.setText(f"Segmented {done} image(s) in {seconds:.1f} s on {self.device_used.text()}{notes}")
            self.progress.setValue(1000)
        self._worker_done()
