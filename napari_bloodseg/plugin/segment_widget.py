"""Segment widget: run a model on image layers in a worker thread, one Labels layer per image.

Results land in ``"<image> [<model>]"`` Labels layers in the schema's colours with class names; running again
updates that layer (unless "new layer" is ticked, or a person has painted on the layer or marked it corrected:
hand edits are never overwritten, the result goes to an untouched earlier result of that image or a new layer).
One :class:`~napari_bloodseg.inference.Predictor` is kept per (model, device, tile size, TTA, edge cells), up to
:data:`~.segment_work.MAX_PREDICTORS`, so weights load once (again when the model's file changes).
Cancel stops at the next tile: the image in progress is dropped whole, images already finished keep their layers.

A lazy image layer (a big TIFF the reader opened lazily, any dask/zarr/memory-mapped layer) is never loaded whole:
the Predictor reads it band by band and writes labels into a memory-mapped TIFF in a temporary folder
(``napari-bloodseg-*`` under the platform's temp dir), and the Labels layer is backed by that file. The file is
deleted when the run is cancelled or fails, and when its layer is removed (closing napari too) or re-segmented;
the folder goes with its last file.

The widget is put together from its parts: :mod:`.segment_controls` (the controls), :mod:`.segment_images` (the
Images list), :mod:`.segment_models` (the Model row, following renames and deletions), :mod:`.segment_run` (the
Segment button and what a run reports), :mod:`.segment_work` (the worker thread), :mod:`.segment_commit` (results
into layers), :mod:`.segment_files` (streamed label files) and :mod:`.segment_estimate` (the Estimate button).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from .background import BackgroundRun
from .model_choices import ModelChoice
from .model_events import model_events
from .scroll import ScrollPanel
from .segment_commit import ResultCommitting
from .segment_controls import SegmentControls
from .segment_estimate import CellSizeEstimate
from .segment_files import LabelFiles
from .segment_images import SegmentImages
from .segment_models import SegmentModels
from .segment_run import SegmentRun
from .segment_work import MAX_PREDICTORS, NAPARI_LAZY_IMPORTS, ProgressSignals, SegmentResult, SegmentWork

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Image, Labels

    from ..inference import Predictor

__all__ = ["MAX_PREDICTORS", "NAPARI_LAZY_IMPORTS", "SegmentResult", "SegmentWidget"]


class SegmentWidget(
    SegmentRun,
    CellSizeEstimate,
    SegmentWork,
    ResultCommitting,
    SegmentModels,
    SegmentImages,
    SegmentControls,
    BackgroundRun,
    ScrollPanel,
):
    """Dock widget: images → model → device/scale/tile → Run/Cancel → Labels layers. Cancel stops at the next
    tile; nothing of the image in progress is kept."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._predictors: OrderedDict[tuple[Any, ...], Predictor] = OrderedDict()
        self._lock = threading.Lock()
        self._init_background()
        self._signals = ProgressSignals()  # no Qt parent: a worker may still emit while Qt destroys the widget
        self._signals.progress.connect(self._on_progress)
        #: layers made or updated by the last run (for scripts and tests)
        self.last_layers: list[Labels] = []
        self._run_stats: dict[str, Any] = {}
        self._job_layers: dict[str, Image] = {}  # the image layers of the run, to tell when one was closed
        self._choices: list[ModelChoice] = []
        #: the user chose a model: stop suggesting one from the kind of image open
        self._model_picked = False
        #: labels of lazy images, in a temporary folder (created on first use)
        self._label_files = LabelFiles()
        #: models renamed during the current run (old name -> new): its results are committed under the new name
        self._renamed: dict[str, str] = {}
        self._build_controls()
        self.refresh_models()
        self.refresh_images()
        self._connect()
        self.suggest_model()  # for the images already open; after the connections, so the model info follows

    def _connect(self) -> None:
        self.all_images.toggled.connect(lambda on: self.image_list.setVisible(not on))
        self.all_images.toggled.connect(self.suggest_model)
        self.image_list.itemChanged.connect(self.suggest_model)
        self.image_list.setVisible(False)
        self.model_combo.currentIndexChanged.connect(self._show_model_info)
        self.model_combo.activated.connect(self._on_model_picked)  # the user's choice, not ours
        self.refresh_models_btn.clicked.connect(self.refresh_models)
        model_events().changed.connect(self._on_models_changed)  # fine-tuned, renamed, deleted, imported
        model_events().renamed.connect(self._on_model_renamed)
        self.run_btn.clicked.connect(self.run)
        self.estimate_btn.clicked.connect(self.estimate_cell_size)
        self.cancel_btn.clicked.connect(self.cancel)
        self.viewer.layers.events.inserted.connect(self._on_layers_changed)
        self.viewer.layers.events.removed.connect(self._on_layers_changed)
        self.viewer.layers.events.reordered.connect(self._on_layers_changed)
