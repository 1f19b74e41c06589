"""The Segment widget's worker-thread side: the cached Predictors and the run itself, image by image.

What the worker hands to the GUI thread: the device name (a ``str``), :class:`Note`, :class:`Failure` and one
:class:`SegmentResult` per finished image. One :class:`~napari_bloodseg.inference.Predictor` is kept per (model,
device, tile size, TTA, edge cells, weights file), so weights load once. A lazy image is read band by band and its
labels written into a memory-mapped TIFF (:mod:`.segment_files`); Cancel stops at the next tile.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QObject, Signal

from ..inference.defaults import DEFAULT_OVERLAP, DEFAULT_TILE_SIZE
from .devices import failure_message
from .model_choices import ModelChoice, weights_stamp

if TYPE_CHECKING:  # pragma: no cover
    from ..inference import Predictor

#: Predictors kept per widget; each holds its own copy of the weights on its device.
MAX_PREDICTORS = 4
#: what napari imports on first use inside ``viewer.add_labels`` (the layer's features table, its transform, the
#: label colours), measured in a fresh interpreter: 0.5-1.5 s on the GUI thread at a session's first result
NAPARI_LAZY_IMPORTS = ("pandas", "scipy.linalg", "skimage.color")


def import_ahead() -> None:
    """Worker thread: import :data:`NAPARI_LAZY_IMPORTS` so the first result's ``add_labels`` finds them loaded.
    ``skimage.color`` loads lazily: napari's first use (``luv2rgb``) is touched too."""
    import importlib

    for name in NAPARI_LAZY_IMPORTS:
        try:
            module = importlib.import_module(name)
            if name == "skimage.color":
                _ = module.luv2rgb
        except (ImportError, AttributeError):  # napari's own import will say what is missing
            pass


@dataclass
class Job:
    name: str
    image: Any  # numpy array, or an array-like read band by band when ``lazy``
    scale: tuple[float, float]
    translate: tuple[float, float]
    lazy: bool = False
    image_file: str | None = None  # the image's file, when the reader recorded it (pairs the result with its mask)


@dataclass
class SegmentResult:
    """One finished image, handed from the worker thread to the GUI thread."""

    image_name: str
    model: str
    schema: str
    labels: np.ndarray
    uncertainty: np.ndarray | None
    device: str
    seconds: float
    scale: tuple[float, float]
    translate: tuple[float, float]
    labels_file: str | None = None  # the temporary file behind ``labels`` when the image was streamed
    image_file: str | None = None


@dataclass
class Failure:
    message: str


@dataclass
class Note:
    """Something the run did differently from what the widget shows, said in the status when it ends."""

    message: str


class ProgressSignals(QObject):
    """Progress from inside ``Predictor.predict`` (worker thread) → progress bar (GUI thread), queued by Qt."""

    progress = Signal(float)


class SegmentWork:
    """Mixin for the Segment widget: owns ``_predictors`` (guarded by ``_lock``); reports through ``_signals``,
    stops when ``_cancel`` is set, streams lazy images into ``_label_files``."""

    def _get_predictor(
        self, choice: ModelChoice, device: str, tile: int, tta: bool | str = "auto", edge: str = "auto"
    ) -> Predictor:
        """Cached per (model, device, tile, tta, edge) so weights are loaded and moved to the device once (worker
        thread)."""
        from ..inference import Predictor
        from ..models import UntrainedModelWarning, get_model

        key = (choice.spec, device, tile, tta, edge, weights_stamp(choice))
        with self._lock:
            pred = self._predictors.get(key)
            if pred is not None:
                self._predictors.move_to_end(key)
                return pred
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UntrainedModelWarning)
            model, card = get_model(choice.spec)
        # the zoo shares one cached model per file: the Predictor moves its copy, never the shared one
        overlap = min(DEFAULT_OVERLAP, tile // 4) if tile else 0
        pred = Predictor(
            copy.deepcopy(model), card, device=device, tile_size=tile, overlap=overlap, tta=tta, edge_cells=edge
        )
        with self._lock:
            self._predictors[key] = pred
            while len(self._predictors) > MAX_PREDICTORS:
                self._predictors.popitem(last=False)
        return pred

    def _work(
        self,
        jobs: list[Job],
        choice: ModelChoice,
        device: str,
        tile: int,
        tta: bool | str,
        edge: str,
        scale: float,
        cell: float,
        unc: bool,
    ):
        """Worker thread: yields the device name, then one SegmentResult per finished image.

        Expected failures (no such device, bad model file, out of memory) come back as a Failure so the user gets
        one clear notification; anything else propagates and napari shows it with its traceback. Images read from
        disk run in tiles of DEFAULT_TILE_SIZE when ``tile`` is 0 (whole image).
        """
        from ..inference import Cancelled
        from ..models import ModelFileError

        try:
            # off the GUI thread, before the first result: napari would import these in its first add_labels there
            import_ahead()
            predictors: dict[int, Predictor] = {}

            def predictor_for(job: Job) -> Predictor:
                t = tile or (DEFAULT_TILE_SIZE if job.lazy else 0)
                if t not in predictors:
                    predictors[t] = self._get_predictor(choice, device, t, tta, edge)
                return predictors[t]

            predictor = predictor_for(jobs[0])
            yield predictor.device_name
            if cell > 0 and predictor.card and predictor.card.cell_size_px:
                scale = predictor.scale_for_cell_size(cell)
            elif cell > 0:  # a typed cell size that changes nothing must not look as if it had been used
                why = "is untrained" if choice.source == "untrained" else "does not know its training cell size"
                yield Note(f"cell size {cell:g} px not used: {choice.spec} {why} (Scale was used)")
            n = len(jobs)
            emit = self._signals.progress.emit
            for i, job in enumerate(jobs):
                if self._cancel.is_set():
                    return

                def progress(done: int, total: int, i: int = i) -> None:
                    emit((i + done / max(total, 1)) / n)

                if job.lazy:
                    pred, labels_file = self._predict_to_disk(predictor_for(job), job, scale, progress)
                else:
                    pred = predictor_for(job).predict(
                        job.image, scale=scale, return_probs=unc, progress=progress, cancel=self._cancel.is_set
                    )
                    labels_file = None
                uncertainty = None
                if pred.probs is not None:
                    uncertainty = 1.0 - pred.probs.max(axis=0).astype(np.float32)
                yield SegmentResult(
                    job.name,
                    choice.spec,
                    choice.schema,
                    pred.labels,
                    uncertainty,
                    pred.device,
                    pred.seconds,
                    job.scale,
                    job.translate,
                    labels_file,
                    job.image_file,
                )
        except Cancelled:
            return
        except (ValueError, ModelFileError, OSError, MemoryError) as exc:
            yield Failure(failure_message(exc))

    def _predict_to_disk(self, predictor: Predictor, job: Job, scale: float, progress: Any) -> tuple[Any, str]:
        """Worker thread: stream a lazy image into a memory-mapped label TIFF; the file goes if the run stops."""
        from ..io.lazy import close_output, open_label_output

        path = self._label_files.new(job.name)
        try:
            out = open_label_output(path, job.image.shape[:2], overwrite=True)
            pred = predictor.predict(job.image, scale=scale, out=out, progress=progress, cancel=self._cancel.is_set)
            close_output(out)
        except BaseException:
            self._label_files.remove(str(path))
            raise
        return pred, str(path)
