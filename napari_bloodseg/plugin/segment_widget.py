"""Segment widget: run a model on image layers in a worker thread, one Labels layer per image.

Results land in ``"<image> [<model>]"`` Labels layers in the schema's colours with class names; running again
updates that layer (unless "new layer" is ticked, or a person has painted on the layer or marked it corrected:
hand edits are never overwritten, the result goes to an untouched earlier result of that image or a new layer).
One :class:`~napari_bloodseg.inference.Predictor` is kept per (model, device, tile size), so weights load once.
Cancel stops at the next tile: the image in progress is dropped whole, images already finished keep their layers.

A lazy image layer (a big TIFF the reader opened lazily, any dask/zarr/memory-mapped layer) is never loaded whole:
the Predictor reads it band by band and writes labels into a memory-mapped TIFF in a temporary folder
(``napari-bloodseg-*`` under the platform's temp dir), and the Labels layer is backed by that file. The file is
deleted when the run is cancelled or fails, and when its layer is removed (closing napari too) or re-segmented;
the folder goes with its last file.
"""

from __future__ import annotations

import copy
import os
import re
import tempfile
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from ..inference.defaults import DEFAULT_OVERLAP, DEFAULT_TILE_SIZE, MIN_TILE_SIZE
from .background import BackgroundRun
from .devices import DeviceCombo, failure_message
from .layers import META_KEY, find_layer, image_file, image_rgb, is_lazy, meta, schema_layer_kwargs
from .model_choices import ModelChoice, default_choice, image_kind, model_choices, weights_stamp
from .model_events import gone_message, model_events
from .scroll import ScrollPanel

if TYPE_CHECKING:  # pragma: no cover
    import napari
    from napari.layers import Image, Labels

    from ..inference import Predictor

#: Predictors kept per widget; each holds its own copy of the weights on its device.
MAX_PREDICTORS = 4
#: what napari imports on first use inside ``viewer.add_labels`` (the layer's features table, its transform, the
#: label colours), measured in a fresh interpreter: 0.5-1.5 s on the GUI thread at a session's first result
NAPARI_LAZY_IMPORTS = ("pandas", "scipy.linalg", "skimage.color")


def _import_ahead() -> None:
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


def _still_there(spec: str) -> bool:
    """Whether a model chosen by its file path can still be found."""
    from ..models import ModelFileError, find_model

    try:
        find_model(spec)
    except (ModelFileError, OSError, ValueError):
        return False
    return True


@dataclass
class _Job:
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
class _Failure:
    message: str


@dataclass
class _Note:
    """Something the run did differently from what the widget shows, said in the status when it ends."""

    message: str


class _Signals(QObject):
    """Progress from inside ``Predictor.predict`` (worker thread) → progress bar (GUI thread), queued by Qt."""

    progress = Signal(float)


class SegmentWidget(BackgroundRun, ScrollPanel):
    """Dock widget: images → model → device/scale/tile → Run/Cancel → Labels layers. Cancel stops at the next
    tile; nothing of the image in progress is kept."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._predictors: OrderedDict[tuple[str, str, int, float], Predictor] = OrderedDict()
        self._lock = threading.Lock()
        self._init_background()
        self._signals = _Signals()  # no Qt parent: a worker may still emit while Qt destroys the widget
        self._signals.progress.connect(self._on_progress)
        #: layers made or updated by the last run (for scripts and tests)
        self.last_layers: list[Labels] = []
        self._run_stats: dict[str, Any] = {}
        self._job_layers: dict[str, Image] = {}  # the image layers of the run, to tell when one was closed
        self._choices: list[ModelChoice] = []
        #: the user chose a model: stop suggesting one from the kind of image open
        self._model_picked = False
        #: temporary folder for labels of lazy images (created on first use)
        self._tmpdir: Path | None = None
        #: models renamed during the current run (old name -> new): its results are committed under the new name
        self._renamed: dict[str, str] = {}

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
        # scale, tile
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
        # output
        self.new_layer_check = QCheckBox("Add a new layer (keep earlier results)")
        self.uncertainty_check = QCheckBox("Uncertainty layer (1 − max probability)")
        # run
        self.run_btn = QPushButton("Segment")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.status = QLabel("Ready")
        self.status.setWordWrap(True)

        form = QFormLayout()
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.refresh_models_btn)
        form.addRow("Model", model_row)
        form.addRow("", self.model_info)
        form.addRow("Device", self.device_combo)
        form.addRow("Device used", self.device_used)
        form.addRow("Scale", self.scale_spin)
        cell_row = QHBoxLayout()
        cell_row.addWidget(self.cell_spin, 1)
        cell_row.addWidget(self.estimate_btn)
        form.addRow("Cell size", cell_row)
        form.addRow("Tile size", self.tile_spin)
        form.addRow("Test-time aug.", self.tta_combo)
        form.addRow("Edge cells", self.edge_combo)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_btn)
        buttons.addWidget(self.cancel_btn)
        layout = QVBoxLayout(self.content)
        layout.addWidget(QLabel("<b>Images</b>"))
        layout.addWidget(self.all_images)
        layout.addWidget(self.image_list)
        layout.addLayout(form)
        layout.addWidget(self.new_layer_check)
        layout.addWidget(self.uncertainty_check)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.device_combo.setToolTip("auto picks cuda > mps > cpu; the label below says what was really used")
        self.refresh_models()
        self.refresh_images()
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
        self.suggest_model()  # for the images already open; after the connections, so the model info follows

    # -- choices ------------------------------------------------------------------------------------------------
    def refresh_models(self, keep: str | None = None) -> None:
        """Re-list models, keeping the current choice (or ``keep``) when it still exists, and saying so when the
        chosen model went away rather than switching to another model without a word."""
        current = keep or (self.model_spec() if self._choices else None)
        earlier, self._choices = self._choices, model_choices()
        listed = {c.spec for c in self._choices}
        # a model file chosen by its path (set_model) is not an installed model: it stays while the file is there
        self._choices += [c for c in earlier if c.source == "file" and c.spec not in listed and _still_there(c.spec)]
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for choice in self._choices:
            self.model_combo.addItem(choice.label, choice.spec)
        self.model_combo.blockSignals(False)
        specs = [c.spec for c in self._choices]
        if current in specs:
            self.model_combo.setCurrentIndex(specs.index(current))
        elif current is None:
            self.model_combo.setCurrentIndex(default_choice(self._choices))
        else:
            self.model_combo.setCurrentIndex(default_choice(self._choices, image_kind(self.selected_images()) or "wbc"))
            self._say_model_gone(current)
        self._show_model_info()

    def _say_model_gone(self, gone: str) -> None:
        """The chosen model was deleted (or renamed by another program): a notification names it and the model
        chosen now, so the next Segment does not quietly run another model; during a run it is also added to the
        status line the run ends with (the run goes on with the weights it loaded)."""
        from napari.utils.notifications import show_warning

        message = gone_message(gone, self.model_spec() if self._choices else None)
        show_warning(message)
        if self.running:
            self._run_stats.setdefault("notes", []).append(message)
        else:
            self.status.setText(message)

    def _on_models_changed(self, *_: Any) -> None:
        self.refresh_models()

    def _on_model_renamed(self, old: str, new: str) -> None:
        if self.running:  # results still to come from ``old`` land under its new name
            self._renamed = {k: new if v == old else v for k, v in self._renamed.items()} | {old: new}
        if self._choices and self.model_spec() == old:
            self.refresh_models(keep=new)

    def _on_model_picked(self, *_: Any) -> None:
        self._model_picked = True

    def suggest_model(self, *_: Any) -> None:
        """Until the user picks a model, follow the images open: smear fields get the RBC default
        (``rbc-deconvnet``), single-cell crops the WBC one, and the status line says why."""
        if self._model_picked or self.running or not self._choices:
            return
        kind = image_kind(self.selected_images())
        if kind is None:
            return
        idx = default_choice(self._choices, kind)
        if idx == self.model_combo.currentIndex() or self._choices[idx].schema != kind:
            return
        self.model_combo.setCurrentIndex(idx)
        what = "smear fields" if kind == "rbc" else "single-cell crops"
        self.status.setText(
            f"Model set to {self._choices[idx].spec} for {what}; choose another above to keep your own choice"
        )

    def _show_model_info(self, *_: Any) -> None:
        from ..schemas import get_schema

        choice = self.current_choice()
        if choice is None:
            self.model_info.setText("")
            return
        names = ", ".join(get_schema(choice.schema).class_names)
        text = f"schema <b>{choice.schema}</b> ({names}); {choice.architecture}, version {choice.version}"
        if choice.source == "untrained":
            text += "<br><span style='color:#e0a040'>untrained: random weights, output is meaningless</span>"
        self.model_info.setText(text)

    def current_choice(self) -> ModelChoice | None:
        i = self.model_combo.currentIndex()
        return self._choices[i] if 0 <= i < len(self._choices) else None

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

    def model_spec(self) -> str:
        return str(self.model_combo.currentData())

    def set_model(self, spec: str) -> None:
        """Choose a model by spec (name, path or architecture); a path not yet listed is added."""
        idx = self.model_combo.findData(spec)
        if idx < 0:
            from ..models import find_model

            info = find_model(spec)
            choice = ModelChoice(spec, info.schema, info.architecture, info.source, str(info.version))
            self._choices.append(choice)
            self.model_combo.addItem(choice.label, spec)
            idx = self.model_combo.count() - 1
        self.model_combo.setCurrentIndex(idx)
        self._model_picked = True

    def set_device(self, name: str) -> None:
        self.device_combo.set_device(name)

    # -- images -------------------------------------------------------------------------------------------------
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
            self._remove_label_file(meta(value).get("labels_file"))
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

    # -- running (running, cancel: BackgroundRun) ----------------------------------------------------------------
    @property
    def last_status(self) -> str:
        """``"running"``, ``"done"``, ``"cancelled"`` or ``"error"`` for the last run ("" before any)."""
        return str(self._run_stats.get("status", ""))

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
                _Job(
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
        tile = int(self.tile_spin.value())
        tile = tile if tile == 0 else max(tile, MIN_TILE_SIZE)  # a typed 8 px tile made an all-background mask
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
        jobs: list[_Job],
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

        Expected failures (no such device, bad model file, out of memory) come back as a _Failure so the user gets
        one clear notification; anything else propagates and napari shows it with its traceback. Images read from
        disk run in tiles of DEFAULT_TILE_SIZE when ``tile`` is 0 (whole image).
        """
        from ..inference import Cancelled
        from ..models import ModelFileError

        try:
            # off the GUI thread, before the first result: napari would import these in its first add_labels there
            _import_ahead()
            predictors: dict[int, Predictor] = {}

            def predictor_for(job: _Job) -> Predictor:
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
                yield _Note(f"cell size {cell:g} px not used: {choice.spec} {why} (Scale was used)")
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
            yield _Failure(failure_message(exc))

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
            int(self.tile_spin.value()),
            self.tta_combo.currentData(),
            str(self.edge_combo.currentData()),
            connect={"returned": self._on_estimated, "errored": self._on_error, "finished": self._worker_done},
            message=f"Measuring the cells of {what} with {choice.spec} …",
        )

    def _estimate_work(
        self, images: list[Any], what: str, choice: ModelChoice, device: str, tile: int, tta: Any, edge: str
    ) -> Any:
        """Worker thread: (what, CellSizeEstimate), a _Failure with the reason, or None when cancelled. The
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
            return _Failure(f"{what}: {failure_message(exc)}")
        return what, est

    def _on_estimated(self, result: Any) -> None:
        if result is None:
            self.status.setText("Cell size estimation cancelled")
            return
        if isinstance(result, _Failure):
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

    def _set_running(self, on: bool) -> None:
        super()._set_running(on)
        self.estimate_btn.setEnabled(not on)

    def _predict_to_disk(self, predictor: Predictor, job: _Job, scale: float, progress: Any) -> tuple[Any, str]:
        """Worker thread: stream a lazy image into a memory-mapped label TIFF; the file goes if the run stops."""
        from ..io.lazy import close_output, open_label_output

        path = self._new_label_file(job.name)
        try:
            out = open_label_output(path, job.image.shape[:2], overwrite=True)
            pred = predictor.predict(job.image, scale=scale, out=out, progress=progress, cancel=self._cancel.is_set)
            close_output(out)
        except BaseException:
            self._remove_label_file(str(path))
            raise
        return pred, str(path)

    def _new_label_file(self, image_name: str) -> Path:
        """A new, uniquely named file in this widget's temporary folder, named after the image."""
        if self._tmpdir is None or not self._tmpdir.is_dir():
            self._tmpdir = Path(tempfile.mkdtemp(prefix="napari-bloodseg-"))
        stem = re.sub(r"[^\w.-]+", "_", image_name).strip("._") or "image"
        fd, name = tempfile.mkstemp(prefix=f"{stem}-", suffix=".labels.tif", dir=self._tmpdir)
        os.close(fd)
        return Path(name)

    def _remove_label_file(self, path: str | None) -> None:
        """Delete a label file this widget made (never anything else); an open memory map keeps its pages."""
        if not path or self._tmpdir is None or Path(path).parent != self._tmpdir:
            return
        try:
            Path(path).unlink(missing_ok=True)
            self._tmpdir.rmdir()  # only when it is empty: the last streamed result is gone
        except OSError:  # not empty, or still mapped on Windows: the temp dir is the OS's to clean
            pass

    # -- GUI-thread handlers ------------------------------------------------------------------------------------
    def _on_progress(self, fraction: float) -> None:
        self.progress.setValue(int(round(1000 * min(max(fraction, 0.0), 1.0))))

    def _on_yielded(self, item: Any) -> None:
        if isinstance(item, str):
            self.device_used.setText(item)
            return
        if isinstance(item, _Note):
            self._run_stats["notes"].append(item.message)
            return
        if isinstance(item, _Failure):
            from napari.utils.notifications import show_error

            self._run_stats["status"] = "error"
            self.status.setText(f"Failed: {item.message}")
            show_error(f"Segmentation failed: {item.message}")
            return
        if self._cancel.is_set():  # finished just as Cancel was pressed: the user asked for nothing more to change
            self._remove_label_file(item.labels_file)
            return
        source = self._job_layers.get(item.image_name)
        if source is not None and not any(layer is source for layer in self.viewer.layers):
            # its image was closed during the run: labels over nothing, which the user had let go of
            self._remove_label_file(item.labels_file)
            self._run_stats["notes"].append(f"{item.image_name} was closed during the run: its result was dropped")
            return
        item.model = self._renamed.get(item.model, item.model)  # renamed mid-run: the same weights, a new name
        self.last_layers.append(self._commit(item))
        self._run_stats["done"] += 1

    def _commit(self, res: SegmentResult) -> Labels:
        """Add or update ``"<image> [<model>]"`` (and its uncertainty layer) from one finished image."""

        from .editing import bind_class_keys, watch_edits

        name = f"{res.image_name} [{res.model}]"
        kwargs = schema_layer_kwargs(res.schema, name, role="prediction", source=res.image_name, model=res.model)
        kwargs["metadata"][META_KEY].update(device=res.device, seconds=round(res.seconds, 3))
        if res.labels_file:
            kwargs["metadata"][META_KEY]["labels_file"] = res.labels_file
        if res.image_file:
            kwargs["metadata"][META_KEY]["image_path"] = res.image_file
        existing = None if self.new_layer_check.isChecked() else self._layer_to_update(name, res)
        layer: Labels
        if existing is not None:
            layer = existing
            layer.data = res.labels
            layer.colormap = kwargs["colormap"]
            layer.features = kwargs["features"]
            old_file = meta(layer).pop("labels_file", None)
            meta(layer).update(kwargs["metadata"][META_KEY])
            if old_file != res.labels_file:
                self._remove_label_file(old_file)
            layer.events.metadata()
        else:
            layer = self.viewer.add_labels(res.labels, scale=res.scale, translate=res.translate, **kwargs)
            bind_class_keys(layer)
        watch_edits(layer)  # these labels are the network's: later painting marks them edited
        if res.uncertainty is not None:
            self._commit_uncertainty(res, layer.name)
        elif existing is not None:  # an earlier run's uncertainty would no longer describe these labels
            stale = find_layer(self.viewer, f"{layer.name} uncertainty")
            if stale is not None and meta(stale).get("role") == "uncertainty":
                self.viewer.layers.remove(stale)
        return layer

    def _layer_to_update(self, name: str, res: SegmentResult) -> Labels | None:
        """The layer a re-run replaces: ``name`` unless a person changed it (marked it corrected, or painted on
        it, perhaps while this run went on), else an earlier result of the same image and model that nobody
        changed; None (said, with why) when the result must go to a new layer so nothing of theirs is lost."""
        from napari.layers import Labels
        from napari.utils.notifications import show_info

        from .editing import is_corrected, is_edited, stroke_in_progress

        first = find_layer(self.viewer, name)
        if not isinstance(first, Labels):
            return None

        def untouched(layer: Labels) -> bool:
            return not is_corrected(layer) and not is_edited(layer)

        if untouched(first):
            return first
        for layer in reversed(list(self.viewer.layers)):
            info = meta(layer)
            key = (info.get("role"), info.get("source"), info.get("model"))
            same = key == ("prediction", res.image_name, res.model)
            if isinstance(layer, Labels) and layer is not first and same and untouched(layer):
                return layer
        why = (
            "is marked corrected"
            if is_corrected(first)
            else "is being painted on"
            if stroke_in_progress(first)
            else "has hand edits"
        )
        show_info(f"{name} {why}: the new result goes to a new layer instead, so they are kept")
        return None

    def _commit_uncertainty(self, res: SegmentResult, labels_name: str) -> None:
        from napari.layers import Image

        name = f"{labels_name} uncertainty"
        existing = find_layer(self.viewer, name)
        if isinstance(existing, Image) and not self.new_layer_check.isChecked():
            existing.data = res.uncertainty
            return
        self.viewer.add_image(
            res.uncertainty,
            name=name,
            colormap="magma",
            contrast_limits=(0.0, 1.0),
            blending="additive",
            opacity=0.7,
            visible=False,
            scale=res.scale,
            translate=res.translate,
            metadata={META_KEY: {"role": "uncertainty", "source": res.image_name, "model": res.model}},
        )

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
